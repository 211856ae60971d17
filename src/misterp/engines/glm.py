"""A GLM fitted by IRLS on cells, as R's ``glm`` with the cells' family.

Example
-------
>>> import pandas as pd
>>> from misterp import Survey, collapse
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 1], "g": ["a", "a", "b", "b", "b", "b"]})
>>> GlmEngine().fit(collapse(Survey(data, "y"), "y ~ g")).coef.round(4).tolist()
[0.0, 1.0986]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from ..model.cells import Cells
from .fit import Fit, ParameterDraws, normal_draws, one_blas_thread, rank_problems, separation_problems, spd_solve


@dataclass(frozen=True)
class GlmEngine:
    """IRLS settings: relative deviance tolerance and iteration cap."""

    tol: float = 1e-12
    max_iter: int = 100

    def fit(self, cells: Cells) -> "GlmFit":
        """Fit; a :class:`misterp.MisterpWarning` when IRLS does not converge."""
        if cells.design.group_terms:
            raise MisterpInputError(
                f"The glm engine fits fixed effects only, but the formula has grouping terms "
                f"{cells.design.group_names}. Use the laplace engine, or write them as fixed effects."
            )
        family, stats = cells.family, cells.stats
        with one_blas_thread():  # small solves: a second BLAS thread only spins
            beta, cov, converged = irls(cells.X, stats, cells.offset, family, self.tol, self.max_iter)
        eta = cells.offset + cells.X @ beta
        # R's summary.glm: a gaussian's covariance scales by sigma^2 = RSS / (N - p)
        cov = cov * family.dispersion(stats, eta, len(beta))
        # R's logLik on the input rows: the cells' likelihood (sigma^2 by maximum likelihood) plus the rows' constant
        ml = family.dispersion(stats, eta, 0)
        loglik = float(family.loglik(stats, eta, constant=False, dispersion=ml).sum()) + cells.row_constant
        fit = GlmFit(cells, beta, cov, loglik, converged)
        fit.warn_problems()
        return fit


def irls(X, stats, offset, family, tol=1e-12, max_iter=100):
    """Newton/IRLS for the fixed-effects model; returns (beta, cov, converged).

    Under separation the fitted means run to the edge of their range and the
    working weights underflow to 0; as R's ``glm.fit`` (whose ``mu.eta`` is at
    least DBL_EPSILON) each weight is kept at least ``eps`` per respondent, so
    the steps stay finite and the separated coefficients end large with huge
    SEs, which ``GlmFit.problems`` reports.
    """
    floor = np.finfo(float).eps * family.count(stats)
    eta = family.initial_eta(stats)
    beta = np.zeros(X.shape[1])
    dev_old = np.inf
    for _ in range(max_iter):
        _, w, r, _ = family.working(stats, eta)
        w = np.maximum(w, floor)
        z = eta - offset + r / np.maximum(w, 1e-300)
        xtwx = X.T @ (w[:, None] * X)
        beta = spd_solve(xtwx, X.T @ (w * z))
        eta = offset + X @ beta
        dev = -2.0 * family.loglik(stats, eta).sum()
        if abs(dev - dev_old) <= tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    else:
        return beta, spd_solve(xtwx, np.eye(X.shape[1])), False
    _, w, _, _ = family.working(stats, eta)
    cov = spd_solve(X.T @ (np.maximum(w, floor)[:, None] * X), np.eye(X.shape[1]))
    return beta, cov, True


@dataclass(frozen=True, repr=False)
class GlmFit(Fit):
    """A fitted GLM: coefficients, their covariance, predictions with SEs.

    Its cell predictions carry the delta method's pieces, the default
    interval; ``cell_draws(fit, frame, n_draws=k)`` adds normal draws.
    """

    cells: Cells
    beta: np.ndarray
    cov: np.ndarray
    loglik: float
    converged: bool

    kind = "glm"
    method = "normal-approx"
    interval = "delta"
    unseen = "zero"

    @property
    def coef(self) -> pd.Series:
        return pd.Series(self.beta, index=self.design.fixed_names)

    def fixef(self) -> pd.Series:
        return self.coef

    def vcov(self) -> pd.DataFrame:
        names = self.design.fixed_names
        return pd.DataFrame(self.cov, index=names, columns=names)

    def predict(self, newdata: pd.DataFrame, type: str = "response", se_fit: bool = False):
        """Predictions for ``newdata`` rows, as R's ``predict.glm``.

        Returns an array (n_rows,), or (fit, se) with ``se_fit=True``; on the
        response scale the SE is the delta method's dmu/deta * se(eta).
        """
        X = self.design.fixed_matrix(newdata)
        eta = self.design.offset(newdata) + X @ self.beta
        se_eta = np.sqrt(np.einsum("ij,jk,ik->i", X, self.cov, X))
        if type == "link":
            return (eta, se_eta) if se_fit else eta
        mu = self.family.mean(eta)
        return (mu, self.family.mean_deriv(eta) * se_eta) if se_fit else mu

    def summary(self) -> str:
        """summary.glm's coefficients table, with the log-likelihood and AIC."""
        from .summaries import glm_summary

        return glm_summary(self)

    # -- the Fit protocol --------------------------------------------------------
    def point_coef(self) -> np.ndarray:
        return self.beta

    def coef_cov(self) -> np.ndarray:
        return self.cov

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws | None:
        """Normal draws of the coefficients when asked for; none by default (the delta method)."""
        if not n_draws:
            return None
        return ParameterDraws(normal_draws(self.beta, self.cov, n_draws, rng), [])

    def dispersion_draws(self, n_draws: int) -> np.ndarray:
        """A gaussian's sigma^2 = RSS / (N - p), as R's glm (1 for binomial and poisson), repeated
        for each of ``n_draws`` replicates, (n_draws, 1)."""
        cells = self.cells
        eta = cells.offset + cells.X @ self.beta
        return np.full((n_draws, 1), cells.family.dispersion(cells.stats, eta, len(self.beta)))

    def problems(self) -> list[str]:
        eta = self.cells.offset + self.cells.X @ self.beta
        messages = [] if self.converged else [
            "glm did not converge: fitted means may be at the edge of their range (separation); "
            "merge sparse categories or use the laplace engine with those terms as grouping terms."]
        return rank_problems(self.cells) + messages + separation_problems(self.cells, eta)

    def saved_state(self) -> tuple[dict, dict]:
        return {"loglik": self.loglik, "converged": self.converged}, {"beta": self.beta, "cov": self.cov}

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "GlmFit":
        return cls(cells, arrays["beta"], arrays["cov"], meta["loglik"], meta["converged"])
