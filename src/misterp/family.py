"""Families: how respondents become cell statistics, and the likelihood of a cell.

Engines talk to a family only through this interface, so a gaussian family
(cell statistics n, sum y, sum y^2) or a multinomial one can be added without
touching them. The binomial-logit family is the one MRP needs first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, gammaln

from .errors import MisterpInputError


@dataclass(frozen=True)
class Binomial:
    """Binomial response with the logit link.

    A cell's statistics are ``successes`` and ``trials`` (respondent counts).
    """

    name: str = "binomial"
    stats: tuple[str, ...] = ("successes", "trials")

    def check_outcome(self, y: np.ndarray, column: str) -> None:
        """Raise unless every respondent outcome is 0 or 1."""
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            values = sorted(set(np.asarray(y)[bad].tolist()), key=str)[:5]
            raise MisterpInputError(
                f"Outcome column {column!r} must hold only 0 and 1, but it has "
                f"{int(bad.sum())} other value(s), such as {values}. Recode it to 0/1 "
                "(for example yes -> 1, no -> 0) before fitting."
            )

    def check_counts(self, successes: np.ndarray, trials: np.ndarray, names: tuple[str, str]) -> None:
        """Raise unless 0 <= successes <= trials, all whole numbers, trials > 0 (rows given as cells)."""
        s, n = (np.asarray(pd.to_numeric(pd.Series(v), errors="coerce"), float) for v in (successes, trials))
        bad = ~(np.isfinite(s) & np.isfinite(n) & (s == np.round(s)) & (n == np.round(n)) & (s >= 0) & (s <= n) & (n > 0))
        if bad.any():
            rows = np.flatnonzero(bad)[:8] + 1
            raise MisterpInputError(
                f"Columns {names[0]!r} (successes) and {names[1]!r} (trials) must be whole numbers with "
                f"0 <= successes <= trials and trials > 0; rows {rows.tolist()} are not. Fix those rows."
            )

    def cell_stats(self, y: np.ndarray, cell: np.ndarray, n_cells: int,
                   trials: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Collapse rows by ``cell`` index (n,) into (n_cells,) arrays.

        ``y`` holds 0/1 outcomes, or successes when ``trials`` gives each
        row's trials (a survey given as cells).
        """
        weights = None if trials is None else np.asarray(trials, float)
        return {"successes": np.bincount(cell, weights=np.asarray(y, float), minlength=n_cells),
                "trials": np.bincount(cell, weights=weights, minlength=n_cells).astype(float)}

    @staticmethod
    def mean(eta: np.ndarray) -> np.ndarray:
        """Inverse link: probabilities from the linear predictor."""
        return expit(eta)

    @staticmethod
    def loglik(stats: dict[str, np.ndarray], eta: np.ndarray, constant: bool = True) -> np.ndarray:
        """Cell log-likelihoods, shape of ``eta``; with log C(n, s) unless ``constant=False``.

        Optimizers that evaluate often add the constant once themselves.
        """
        s, n = stats["successes"], stats["trials"]
        # s log mu + (n - s) log(1 - mu) = s eta - n log(1 + e^eta); logaddexp keeps it stable
        kernel = s * eta - n * np.logaddexp(0.0, eta)
        return kernel + log_choose(n, s) if constant else kernel

    @staticmethod
    def working(stats: dict[str, np.ndarray], eta: np.ndarray):
        """IRLS pieces: (mu, weights n*mu*(1-mu), residual s - n*mu, dW/deta)."""
        s, n = stats["successes"], stats["trials"]
        mu = expit(eta)
        var = mu * (1.0 - mu)
        return mu, n * var, s - n * mu, n * var * (1.0 - 2.0 * mu)

    @staticmethod
    def simulate(stats: dict[str, np.ndarray], mu: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """New cell statistics drawn at means ``mu`` (..., n_cells), same trials."""
        n = stats["trials"]
        return {"successes": rng.binomial(n.astype(np.int64), mu).astype(float), "trials": np.broadcast_to(n, np.shape(mu))}


def log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log C(n, k), elementwise."""
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


BINOMIAL = Binomial()
