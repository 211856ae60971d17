"""Families: the only place that knows the outcome's distribution and link.

Engines, the prediction path and the comparisons reach the outcome only
through the :class:`Family` protocol: how respondent rows become cell
statistics, the mean function, IRLS/PIRLS working weights and residuals,
the log-likelihood, simulation and the NumPyro likelihood. A gaussian family
(cell statistics n, sum y, sum y^2) or a multinomial one is a new class here,
not an edit of every engine. Three families are here: binomial (logit) for
yes/no answers, poisson (log) for counts with an exposure, and gaussian
(identity) for continuous outcomes, whose dispersion (the residual variance)
engines estimate: its mixed model is lmer's, with the exact profiled deviance.

Example
-------
>>> import numpy as np
>>> stats = BINOMIAL.cell_stats(RowOutcome(np.array([1., 0., 1.]), np.ones(3), 0.0), np.array([0, 0, 1]), 2)
>>> stats["successes"].tolist(), stats["trials"].tolist()
([1.0, 1.0], [2.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit, gammaln, logit

from ..data.tables import describe_rows, require_columns
from ..errors import MisterpInputError
from .formula import Formula

# A survey cell whose fitted mean expects fewer answers of its rarer kind than this is
# numerically at the edge of the mean's range: no survey supports such a value, so it
# comes from separation (a coefficient running off towards infinity), not from data.
EDGE_COUNT = 1e-6


class RowOutcome(NamedTuple):
    """The outcome of each input row.

    Attributes
    ----------
    total : (n_rows,) array
        The row's outcome summed over its respondents (a 0/1 answer, or the
        successes of a row given as cells).
    count : (n_rows,) array
        Respondents behind the row (1 for a respondent).
    constant : float
        The likelihood's constant over the input rows that the cells do not
        carry (binomial: sum of log C(n_i, s_i); poisson: sum of
        y_i log e_i - log y_i!); lme4's logLik includes it.
    exposure : (n_rows,) array, optional
        The row's exposure summed into its cell (a count family's
        person-time); by default its respondents.
    per_unit : (n_rows,) array, optional
        What the row's raw mean is per: its exposure, also when an
        ``offset(log(e))`` carries it into the model instead.
    """

    total: np.ndarray
    count: np.ndarray
    constant: float
    exposure: np.ndarray | None = None
    per_unit: np.ndarray | None = None

    @property
    def denominator(self) -> np.ndarray:
        """What a raw mean divides by: the row's exposure, else its respondents."""
        for values in (self.per_unit, self.exposure):
            if values is not None:
                return values
        return self.count


class Quadratic(NamedTuple):
    """A log-likelihood that is quadratic in the linear predictor, as a family states it.

    With eta (n_cells,) and dispersion phi,

        loglik(eta, phi) = -(residual + sum_c weight_c (target_c - eta_c)^2) / (2 phi)
                           - count / 2 log(2 pi phi),

    so on eta = offset + A theta it needs only A' W A, A' W (target - offset) and
    sum W (target - offset)^2, whatever the columns of A: an engine may sum the
    cells into those moments once instead of visiting every cell at each evaluation.

    Attributes
    ----------
    weight, target : (n_cells,) arrays
    residual : float
        The part of the sum of squares no eta can change (within-cell squares).
    count : float
        The observations behind the normalising term.
    """

    weight: np.ndarray
    target: np.ndarray
    residual: float
    count: float

    def numpyro_factor(self, squares, dispersion) -> None:
        """The observed site ``y`` of a NumPyro model, given ``squares`` = sum_c weight_c (target_c - eta_c)^2."""
        import jax.numpy as jnp
        import numpyro

        numpyro.factor("y", -0.5 * (self.residual + squares) / dispersion
                       - 0.5 * self.count * jnp.log(2 * jnp.pi * dispersion))


class Family(Protocol):
    """What engines may ask of an outcome model; every array is (..., n_cells)."""

    name: str
    link: str
    stats: tuple[str, ...]
    response: str  # the statistic a simulation redraws; the others stay fixed
    profiled: bool  # a linear model: the mixed engine is lmer's profiled deviance, not the Laplace one
    # linear predictors per cell, m: eta is (..., n_cells) for one, (..., n_cells, m) for more
    n_predictors: int
    # the outcome's categories, whose shares the mean gives on a last axis (..., n_cells, K); None for a
    # family whose mean is one number per cell
    categories: tuple | None
    predictor_names: tuple  # the linear predictors' labels ("" for the only one)
    scores: np.ndarray | None  # an ordinal outcome's levels as numbers, when they are: the mean score's weights
    # whether the predictors share the model's slopes and group effects, each with its own intercept (an ordinal
    # outcome's cut points: eta_j = theta_j - x'beta - z'b), rather than each having its own (a categorical one's)
    shares_slopes: bool

    def bind(self, values: pd.Series) -> "Family": ...
    def state(self) -> dict: ...
    def sum_cells(self, stats: dict, group: np.ndarray, n_groups: int) -> dict: ...

    def rows(self, data: pd.DataFrame, formula: Formula, *, trials: str | None = None,
             exposure: str | None = None) -> RowOutcome: ...
    def cell_stats(self, rows: RowOutcome, cell: np.ndarray, n_cells: int) -> dict[str, np.ndarray]: ...
    def check_cell_stats(self, stats: dict, response: str) -> None: ...
    def count(self, stats: dict) -> np.ndarray: ...
    def observed_mean(self, stats: dict) -> np.ndarray: ...
    def mean(self, eta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...
    def link_function(self, mu: np.ndarray) -> np.ndarray: ...
    def mean_deriv(self, eta: np.ndarray) -> np.ndarray: ...
    def initial_eta(self, stats: dict) -> np.ndarray: ...
    def working(self, stats: dict, eta: np.ndarray) -> tuple: ...
    def higher_derivatives(self, stats: dict, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def loglik(self, stats: dict, eta: np.ndarray, constant: bool = True, dispersion: float = 1.0) -> np.ndarray: ...
    def log_constant(self, stats: dict) -> np.ndarray: ...
    def dispersion(self, stats: dict, eta: np.ndarray, n_params: int) -> float: ...
    def outcome_scale(self, stats: dict) -> tuple[float, float] | None: ...
    def simulate(self, stats: dict, mu: np.ndarray, rng: np.random.Generator, dispersion: float = 1.0) -> dict: ...
    def numpyro_likelihood(self, stats: dict, eta, dispersion=1.0) -> None: ...
    def quadratic(self, stats: dict) -> Quadratic | None: ...
    def boundary(self, stats: dict, eta: np.ndarray) -> str | None: ...


class OnePredictor:
    """What the one-number-per-cell families share: one linear predictor, a mean with no category axis,
    and nothing learned from the outcome's values."""

    n_predictors = 1
    categories = None
    predictor_names = ("",)
    shares_slopes = False
    scores = None

    def bind(self, values: pd.Series) -> "Family":
        """The family for this outcome column: itself (its checks come with ``rows``)."""
        return self

    def state(self) -> dict:
        """What a saved fit records beside the family's name to rebuild it: nothing."""
        return {}

    @staticmethod
    def sum_cells(stats: dict, group: np.ndarray, n_groups: int) -> dict:
        """The statistics of groups of cells: each (..., n_cells) array summed by ``group`` (n_cells,) into
        (..., n_groups)."""
        return {k: sum_by_group(v, group, n_groups, axis=-1) for k, v in stats.items()}


@dataclass(frozen=True)
class Binomial(OnePredictor):
    """Binomial response with the logit link.

    A cell's statistics are ``successes`` and ``trials`` (respondent counts).
    """

    name: str = "binomial"
    link: str = "logit"
    stats: tuple[str, ...] = ("successes", "trials")
    response: str = "successes"
    profiled: bool = False

    # -- respondents -> cells ------------------------------------------------
    def rows(self, data: pd.DataFrame, formula: Formula, *, trials: str | None = None,
             exposure: str | None = None) -> RowOutcome:
        """Successes and trials of each row: 0/1 answers, ``cbind(s, n - s)``,
        ``cbind(s, f)``, or successes with a trials column (``--trials``)."""
        if exposure:
            raise MisterpInputError(
                f"An exposure column ({exposure!r}) goes with a count outcome; fit counts with --family poisson "
                "(family=POISSON in Python), or drop --exposure.")
        y = data[formula.response]
        if formula.failures:
            failures = pd.to_numeric(data[formula.failures], errors="coerce").to_numpy(float)
            n, names = y.to_numpy(float) + failures, (formula.response, f"{formula.response} + {formula.failures}")
        elif formula.trials or trials:
            column = formula.trials or trials
            require_columns(data, [column], "survey", "Name the survey's trials column (--trials).")
            n, names = pd.to_numeric(data[column], errors="coerce").to_numpy(float), (formula.response, column)
        else:
            self._check_answers(y.to_numpy(), formula.response)
            return RowOutcome(y.to_numpy(float), np.ones(len(y)), 0.0)
        self._check_counts(y.to_numpy(), n, names)
        s = y.to_numpy(float)
        return RowOutcome(s, n, float(log_choose(n, s).sum()))

    @staticmethod
    def _check_answers(y: np.ndarray, column: str) -> None:
        bad = ~np.isin(y, (0, 1))
        if not bad.any():
            return
        values = sorted(set(np.asarray(y).tolist()), key=str)
        if len(values) == 2:
            # two codes other than 0/1 (1/2, yes/no): which one is "yes" is the user's to say
            texts = [str(v) for v in values]
            yes = next((v for v in texts if v.strip().lower() in ("yes", "y", "true")), None)
            if yes:
                example, which = f"{column}: {{'{yes}': 1, '{next(v for v in texts if v != yes)}': 0}}", ""
            elif "0" in texts:
                other = next(v for v in texts if v != "0")
                example, which = f"{column}: {{{other}: 1}}", f" (if {other} is the answer to model)"
            else:
                example, which = f"{column}: {{{texts[0]}: 1, {texts[1]}: 0}}", f" (if {texts[0]} means yes)"
            raise MisterpInputError(
                f"Outcome column {column!r} must hold only 0 and 1, but it holds the two values {texts[0]!r} and "
                f"{texts[1]!r}; misterp does not guess which one is the answer to model. Recode it to 1 for that "
                f"answer and 0 for the other, for example with --map and a YAML file holding \"{example}\"{which} "
                "(recode= in Python)."
            )
        raise MisterpInputError(
            f"Outcome column {column!r} must hold only 0 and 1, but it has "
            f"{int(bad.sum())} other value(s), such as {values[:5]}. Recode it to 0/1 "
            "(for example yes -> 1, no -> 0) before fitting; for a continuous outcome, use --family gaussian; "
            "for counts, use --family poisson."
        )

    @staticmethod
    def _check_counts(successes: np.ndarray, trials: np.ndarray, names: tuple[str, str]) -> None:
        s, n = (np.asarray(pd.to_numeric(pd.Series(v), errors="coerce"), float) for v in (successes, trials))
        bad = ~(np.isfinite(s) & np.isfinite(n) & (s == np.round(s)) & (n == np.round(n)) & (s >= 0) & (s <= n) & (n > 0))
        if bad.any():
            rows = np.flatnonzero(bad)[:8] + 1
            raise MisterpInputError(
                f"Columns {names[0]!r} (successes) and {names[1]!r} (trials) must be whole numbers with "
                f"0 <= successes <= trials and trials > 0; rows {rows.tolist()} are not. Fix those rows."
            )

    def cell_stats(self, rows: RowOutcome, cell: np.ndarray, n_cells: int) -> dict[str, np.ndarray]:
        """Rows summed by ``cell`` index (n_rows,) into (n_cells,) arrays."""
        return {"successes": np.bincount(cell, weights=rows.total, minlength=n_cells),
                "trials": np.bincount(cell, weights=rows.count, minlength=n_cells)}

    def check_cell_stats(self, stats: dict, response: str) -> None:
        """Raise when the outcome never varies: nothing to model."""
        successes, total = stats["successes"].sum(), stats["trials"].sum()
        if successes == 0 or successes == total:
            value = "0" if successes == 0 else "1"
            raise MisterpInputError(
                f"The outcome {response!r} is {value} for every one of the {int(total)} respondents, so "
                f"there is nothing to model (the estimate would be {value} everywhere). Check the outcome "
                "coding, or the rows selected."
            )

    @staticmethod
    def count(stats: dict) -> np.ndarray:
        """Respondents per cell, (n_cells,)."""
        return stats["trials"]

    @staticmethod
    def observed_mean(stats: dict) -> np.ndarray:
        """Each cell's raw proportion, (n_cells,)."""
        return stats["successes"] / stats["trials"]

    # -- link --------------------------------------------------------------
    @staticmethod
    def mean(eta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Inverse link: probabilities from the linear predictor (in place with ``out``)."""
        return expit(eta, out=out) if out is not None else expit(eta)

    @staticmethod
    def link_function(mu: np.ndarray) -> np.ndarray:
        """The link: log(mu / (1 - mu))."""
        return logit(mu)

    @staticmethod
    def mean_deriv(eta: np.ndarray) -> np.ndarray:
        """d mu / d eta = mu (1 - mu)."""
        mu = expit(eta)
        return mu * (1.0 - mu)

    @staticmethod
    def initial_eta(stats: dict) -> np.ndarray:
        """R's binomial ``mustart`` on the link scale."""
        s, n = stats["successes"], stats["trials"]
        return np.log((s + 0.5) / (n - s + 0.5))

    # -- likelihood ----------------------------------------------------------
    @staticmethod
    def loglik(stats: dict, eta: np.ndarray, constant: bool = True, dispersion: float = 1.0) -> np.ndarray:
        """Cell log-likelihoods, shape of ``eta``; with log C(n, s) unless ``constant=False``.

        Optimizers that evaluate often add the constant once themselves.
        """
        s, n = stats["successes"], stats["trials"]
        # s log mu + (n - s) log(1 - mu) = s eta - n log(1 + e^eta); logaddexp keeps it stable
        kernel = s * eta - n * np.logaddexp(0.0, eta)
        return kernel + log_choose(n, s) if constant else kernel

    @staticmethod
    def log_constant(stats: dict) -> np.ndarray:
        """The part of ``loglik`` free of eta: log C(n, s), shape of the statistics."""
        return log_choose(stats["trials"], stats["successes"])

    @staticmethod
    def working(stats: dict, eta: np.ndarray):
        """IRLS pieces: (mu, weights n*mu*(1-mu), residual s - n*mu, dW/deta)."""
        s, n = stats["successes"], stats["trials"]
        mu = expit(eta)
        var = mu * (1.0 - mu)
        return mu, n * var, s - n * mu, n * var * (1.0 - 2.0 * mu)

    @staticmethod
    def higher_derivatives(stats: dict, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cell log-likelihood's third and fourth derivatives in eta: -n v (1 - 2 mu) and
        -n v (1 - 6 v), v = mu (1 - mu) (for the Laplace approximation's next-order correction)."""
        mu = expit(eta)
        var = stats["trials"] * mu * (1.0 - mu)
        return -var * (1.0 - 2.0 * mu), -var * (1.0 - 6.0 * mu * (1.0 - mu))

    @staticmethod
    def dispersion(stats: dict, eta: np.ndarray, n_params: int) -> float:
        """1: the binomial variance is fixed by its mean."""
        return 1.0

    @staticmethod
    def outcome_scale(stats: dict) -> None:
        """None: rstanarm scales no binomial prior by the outcome."""
        return None

    @staticmethod
    def simulate(stats: dict, mu: np.ndarray, rng: np.random.Generator, dispersion: float = 1.0) -> dict:
        """New cell statistics drawn at means ``mu`` (..., n_cells), same trials."""
        n = stats["trials"]
        return {"successes": rng.binomial(n.astype(np.int64), mu).astype(float), "trials": np.broadcast_to(n, np.shape(mu))}

    @staticmethod
    def numpyro_likelihood(stats: dict, eta, dispersion=1.0) -> None:
        """The observed site ``y`` of a NumPyro model at linear predictor ``eta`` (n_cells,)."""
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist

        numpyro.sample("y", dist.Binomial(total_count=jnp.asarray(stats["trials"]), logits=eta),
                       obs=jnp.asarray(stats["successes"]))

    @staticmethod
    def quadratic(stats: dict) -> None:
        """None: this log-likelihood is not quadratic in eta."""
        return None

    @staticmethod
    def boundary(stats: dict, eta: np.ndarray) -> str | None:
        """How many survey cells are fitted numerically at 0 or 1 (fewer than ``EDGE_COUNT``
        expected answers of the rarer kind), or None."""
        rarer = stats["trials"] * expit(-np.abs(eta))  # n min(mu, 1 - mu), without 1 - mu's rounding
        k = int(np.sum(rarer < EDGE_COUNT))
        return f"fitted probabilities numerically 0 or 1 occurred in {k} of {len(rarer)} survey cells" if k else None


@dataclass(frozen=True)
class Poisson(OnePredictor):
    """Poisson counts with the log link, and an exposure.

    A cell's statistics are ``count`` (the outcome summed over its
    respondents), ``exposure`` (their summed exposure: person-time, or one
    per respondent) and ``respondents``. Its mean ``exp(eta)`` is the
    expected count per unit of exposure; ``offset(log(e))`` in the formula
    puts a per-row exposure into eta instead, as lme4 does.
    """

    name: str = "poisson"
    link: str = "log"
    stats: tuple[str, ...] = ("count", "exposure", "respondents")
    response: str = "count"
    profiled: bool = False

    # -- respondents -> cells ------------------------------------------------
    def rows(self, data: pd.DataFrame, formula: Formula, *, trials: str | None = None,
             exposure: str | None = None) -> RowOutcome:
        """Counts of each row, with the exposure column's values (ones without one)."""
        if formula.trials or formula.failures or trials:
            raise MisterpInputError(
                "cbind(successes, failures) and --trials describe binomial cells; a count outcome takes one "
                "column of counts, with --exposure or offset(log(e)) for the time each row was observed.")
        y = _numbers(data, formula.response)
        bad = ~(np.isfinite(y) & (y >= 0) & (y == np.round(y)))
        if bad.any():
            raise MisterpInputError(
                f"Outcome column {formula.response!r} must hold counts (whole numbers >= 0) for --family poisson, "
                f"but rows {describe_rows(np.flatnonzero(bad) + 1)} hold "
                f"{sorted(set(data[formula.response][bad].astype(str)))[:5]}. Fix those rows.")
        e = np.ones(len(y))
        if exposure and formula.offset_log:
            raise MisterpInputError(
                f"The exposure comes once: either as --exposure {exposure} or as offset(log({formula.offset})) in "
                "the formula, not both (it would count twice). Drop one of them.")
        if exposure:
            require_columns(data, [exposure], "survey", "Name the survey's exposure column (--exposure).")
            e = _numbers(data, exposure)
            bad = ~(np.isfinite(e) & (e > 0))
            if bad.any():
                raise MisterpInputError(
                    f"Exposure column {exposure!r} must hold positive numbers (the time each row was observed), "
                    f"but rows {describe_rows(np.flatnonzero(bad) + 1)} hold "
                    f"{sorted(set(data[exposure][bad].astype(str)))[:5]}. Fix or drop those rows.")
        constant = float(np.sum(y * np.log(e)) - np.sum(gammaln(y + 1.0)))
        per_unit = _numbers(data, formula.offset) if formula.offset_log and not exposure else None
        return RowOutcome(y, np.ones(len(y)), constant, exposure=e, per_unit=per_unit)

    def cell_stats(self, rows: RowOutcome, cell: np.ndarray, n_cells: int) -> dict[str, np.ndarray]:
        """Rows summed by ``cell`` index (n_rows,) into (n_cells,) arrays."""
        return {"count": np.bincount(cell, weights=rows.total, minlength=n_cells),
                "exposure": np.bincount(cell, weights=rows.exposure, minlength=n_cells),
                "respondents": np.bincount(cell, weights=rows.count, minlength=n_cells)}

    def check_cell_stats(self, stats: dict, response: str) -> None:
        """Raise when every count is 0: nothing to model."""
        if stats["count"].sum() == 0:
            raise MisterpInputError(
                f"The outcome {response!r} is 0 for every one of the {int(stats['respondents'].sum())} respondents, "
                "so there is nothing to model. Check the outcome column, or the rows selected.")

    @staticmethod
    def count(stats: dict) -> np.ndarray:
        """Respondents per cell, (n_cells,)."""
        return stats["respondents"]

    @staticmethod
    def observed_mean(stats: dict) -> np.ndarray:
        """Each cell's raw rate: counts per unit of exposure, (n_cells,)."""
        return stats["count"] / stats["exposure"]

    # -- link --------------------------------------------------------------
    @staticmethod
    def mean(eta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Inverse link: the expected count per unit of exposure (in place with ``out``)."""
        return np.exp(eta, out=out) if out is not None else np.exp(eta)

    @staticmethod
    def link_function(mu: np.ndarray) -> np.ndarray:
        """The link: log(mu)."""
        return np.log(mu)

    @staticmethod
    def mean_deriv(eta: np.ndarray) -> np.ndarray:
        """d mu / d eta = mu."""
        return np.exp(eta)

    @staticmethod
    def initial_eta(stats: dict) -> np.ndarray:
        """R's poisson ``mustart`` (y + 0.1) on the link scale, per unit of exposure."""
        return np.log((stats["count"] + 0.1) / stats["exposure"])

    # -- likelihood ----------------------------------------------------------
    @staticmethod
    def loglik(stats: dict, eta: np.ndarray, constant: bool = True, dispersion: float = 1.0) -> np.ndarray:
        """Cell log-likelihoods: count * eta - exposure * exp(eta), shape of ``eta``.

        The rest of the row likelihood (sum of y log e - log y!) is not a
        function of the cell statistics; it is the rows' constant.
        """
        return stats["count"] * eta - stats["exposure"] * np.exp(eta)

    @staticmethod
    def log_constant(stats: dict) -> np.ndarray:
        """Zero: a count family's constant lives with the rows (``RowOutcome.constant``)."""
        return np.zeros(np.shape(stats["count"]))

    @staticmethod
    def working(stats: dict, eta: np.ndarray):
        """IRLS pieces: (mu, weights m, residual count - m, dW/deta = m), m = exposure * exp(eta)."""
        mu = np.exp(eta)
        m = stats["exposure"] * mu
        return mu, m, stats["count"] - m, m

    @staticmethod
    def higher_derivatives(stats: dict, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cell log-likelihood's third and fourth derivatives in eta: both -exposure * exp(eta)."""
        m = stats["exposure"] * np.exp(eta)
        return -m, -m

    @staticmethod
    def dispersion(stats: dict, eta: np.ndarray, n_params: int) -> float:
        """1: the Poisson variance is its mean."""
        return 1.0

    @staticmethod
    def outcome_scale(stats: dict) -> None:
        """None: rstanarm scales no poisson prior by the outcome."""
        return None

    @staticmethod
    def simulate(stats: dict, mu: np.ndarray, rng: np.random.Generator, dispersion: float = 1.0) -> dict:
        """New counts at rates ``mu`` (..., n_cells): a sum of Poisson rows is Poisson."""
        shape = np.shape(mu)
        return {"count": rng.poisson(stats["exposure"] * mu).astype(float),
                "exposure": np.broadcast_to(stats["exposure"], shape),
                "respondents": np.broadcast_to(stats["respondents"], shape)}

    @staticmethod
    def numpyro_likelihood(stats: dict, eta, dispersion=1.0) -> None:
        """The observed site ``y`` of a NumPyro model at linear predictor ``eta`` (n_cells,)."""
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist

        rate = jnp.exp(eta + jnp.log(jnp.asarray(stats["exposure"])))
        numpyro.sample("y", dist.Poisson(rate), obs=jnp.asarray(stats["count"]))

    @staticmethod
    def quadratic(stats: dict) -> None:
        """None: this log-likelihood is not quadratic in eta."""
        return None

    @staticmethod
    def boundary(stats: dict, eta: np.ndarray) -> str | None:
        """How many survey cells are fitted at a numerically zero mean (fewer than ``EDGE_COUNT``
        expected counts), or None."""
        k = int(np.sum(stats["exposure"] * np.exp(eta) < EDGE_COUNT))
        return f"fitted means numerically 0 occurred in {k} of {len(eta)} survey cells" if k else None


@dataclass(frozen=True)
class Gaussian(OnePredictor):
    """Continuous outcomes with the identity link and a residual sd sigma.

    A cell's statistics are ``n`` (respondents), ``total`` (sum of y) and
    ``within`` (the within-cell sum of squares, from the cell's own mean, so
    that no precision is lost to a large mean): the cell mean and the within-cell sum of
    squares, which is all a linear model's likelihood needs. Its
    ``dispersion`` is sigma^2.
    """

    name: str = "gaussian"
    link: str = "identity"
    stats: tuple[str, ...] = ("n", "total", "within")
    response: str = "total"
    profiled: bool = True

    # -- respondents -> cells ------------------------------------------------
    def rows(self, data: pd.DataFrame, formula: Formula, *, trials: str | None = None,
             exposure: str | None = None) -> RowOutcome:
        """Each row's outcome, a finite number."""
        if formula.trials or formula.failures or trials or exposure:
            raise MisterpInputError(
                "cbind(), --trials and --exposure describe binomial cells or counts; a continuous outcome takes "
                "one numeric column (--family gaussian).")
        y = _numbers(data, formula.response)
        bad = ~np.isfinite(y)
        if bad.any():
            raise MisterpInputError(
                f"Outcome column {formula.response!r} must hold finite numbers for --family gaussian, but rows "
                f"{describe_rows(np.flatnonzero(bad) + 1)} hold "
                f"{sorted(set(data[formula.response][bad].astype(str)))[:5]}. Fix or drop those rows.")
        return RowOutcome(y, np.ones(len(y)), 0.0)

    def cell_stats(self, rows: RowOutcome, cell: np.ndarray, n_cells: int) -> dict[str, np.ndarray]:
        """Rows summed by ``cell`` index (n_rows,) into (n_cells,) arrays."""
        return {"n": np.bincount(cell, weights=rows.count, minlength=n_cells),
                "total": np.bincount(cell, weights=rows.total, minlength=n_cells),
                "within": _within_squares(rows.total, cell, n_cells)}

    def check_cell_stats(self, stats: dict, response: str) -> None:
        """Raise when the outcome never varies: nothing to model."""
        if _within(stats).sum() + np.sum(stats["n"] * (stats["total"] / stats["n"]
                                                       - stats["total"].sum() / stats["n"].sum()) ** 2) <= 0:
            raise MisterpInputError(
                f"The outcome {response!r} takes one value for all {int(stats['n'].sum())} respondents, so there "
                "is nothing to model. Check the outcome column, or the rows selected.")

    @staticmethod
    def count(stats: dict) -> np.ndarray:
        """Respondents per cell, (n_cells,)."""
        return stats["n"]

    @staticmethod
    def observed_mean(stats: dict) -> np.ndarray:
        """Each cell's raw mean, (n_cells,)."""
        return stats["total"] / stats["n"]

    # -- link --------------------------------------------------------------
    @staticmethod
    def mean(eta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Identity: the mean is the linear predictor."""
        if out is None:
            return np.array(eta, dtype=float)
        out[...] = eta
        return out

    @staticmethod
    def link_function(mu: np.ndarray) -> np.ndarray:
        """The identity link."""
        return np.array(mu, dtype=float)

    @staticmethod
    def mean_deriv(eta: np.ndarray) -> np.ndarray:
        return np.ones(np.shape(eta))

    @staticmethod
    def initial_eta(stats: dict) -> np.ndarray:
        return stats["total"] / stats["n"]

    # -- likelihood ----------------------------------------------------------
    @staticmethod
    def loglik(stats: dict, eta: np.ndarray, constant: bool = True, dispersion: float = 1.0) -> np.ndarray:
        """The rows' log-likelihood per cell at residual variance ``dispersion``, shape of ``eta``:
        -(within SS + n (ybar - eta)^2) / (2 sigma^2) - n/2 log(2 pi sigma^2) (no further constant)."""
        n = stats["n"]
        squares = _within(stats) + n * (stats["total"] / n - eta) ** 2
        return -0.5 * squares / dispersion - 0.5 * n * np.log(2.0 * np.pi * dispersion)

    @staticmethod
    def log_constant(stats: dict) -> np.ndarray:
        return np.zeros(np.shape(stats["total"]))

    @staticmethod
    def dispersion(stats: dict, eta: np.ndarray, n_params: int) -> float:
        """sigma^2 estimated as the residual sum of squares over N - n_params (R's glm and lm)."""
        n = stats["n"]
        rss = np.sum(_within(stats) + n * (stats["total"] / n - eta) ** 2)
        return float(rss / (n.sum() - n_params))

    @staticmethod
    def outcome_scale(stats: dict) -> tuple[float, float]:
        """The outcome's mean and sd over respondents (N - 1), by which rstanarm centres and
        scales a gaussian model's priors."""
        n = stats["n"]
        N = n.sum()
        mean = stats["total"].sum() / N
        between = np.sum(n * (stats["total"] / n - mean) ** 2)
        return float(mean), float(np.sqrt((stats["within"].sum() + between) / (N - 1)))

    @staticmethod
    def working(stats: dict, eta: np.ndarray):
        """IRLS pieces: (mu, weights n, residual total - n eta, dW/deta = 0); one step is least squares."""
        n = stats["n"]
        return eta, n, stats["total"] - n * eta, np.zeros(np.shape(eta))

    @staticmethod
    def higher_derivatives(stats: dict, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0 and 0: the log-likelihood is quadratic in eta."""
        return np.zeros(np.shape(eta)), np.zeros(np.shape(eta))

    @staticmethod
    def simulate(stats: dict, mu: np.ndarray, rng: np.random.Generator, dispersion: float = 1.0) -> dict:
        """New cell statistics of rows y ~ N(mu, sigma^2): the cell mean is N(mu, sigma^2 / n) and,
        independently, the within-cell sum of squares sigma^2 chi^2(n - 1)."""
        shape = np.shape(mu)
        n = np.broadcast_to(stats["n"], shape)
        sd = np.sqrt(dispersion)
        mean = mu + sd / np.sqrt(n) * rng.standard_normal(shape)
        within = dispersion * np.where(n > 1, rng.chisquare(np.maximum(n - 1, 1)), 0.0)
        return {"n": n, "total": n * mean, "within": within}

    @staticmethod
    def numpyro_likelihood(stats: dict, eta, dispersion=1.0) -> None:
        """The rows' gaussian log-likelihood at ``eta`` (n_cells,) and residual variance ``dispersion``."""
        import jax.numpy as jnp

        quadratic = Gaussian.quadratic(stats)
        squares = jnp.sum(jnp.asarray(quadratic.weight) * (jnp.asarray(quadratic.target) - eta) ** 2)
        quadratic.numpyro_factor(squares, dispersion)

    @staticmethod
    def quadratic(stats: dict) -> Quadratic:
        """The rows' log-likelihood as a quadratic in eta: weights n, targets the cell means, the
        within-cell squares as its fixed part and N respondents."""
        n = stats["n"]
        return Quadratic(n, stats["total"] / n, float(np.sum(_within(stats))), float(np.sum(n)))

    @staticmethod
    def boundary(stats: dict, eta: np.ndarray) -> None:
        """None: an identity link's mean has no edge."""
        return None


@dataclass(frozen=True)
class Categorical:
    """Baseline-category multinomial logit, as nnet's ``multinom`` and brms's ``categorical()``.

    The outcome column holds category names. Category k other than the reference has its own linear
    predictor eta_k (its own fixed effects, group effects and group sds); the reference's is 0, and a
    cell's shares are softmax(0, eta_1, ..., eta_m). A cell's statistics are ``counts`` (n_cells, K), its
    respondents per category in ``categories`` order, and ``trials`` (n_cells,).

    ``Categorical()`` is unbound; :meth:`bind` learns the categories from the outcome column (sorted,
    or in the order given) and checks the reference, by default the first.
    """

    categories: tuple | None = None
    reference: str | None = None
    name: str = "categorical"
    link: str = "logit"
    stats: tuple[str, ...] = ("counts", "trials")
    response: str = "counts"
    profiled: bool = False
    shares_slopes = False
    scores = None  # categories are names, whatever they look like

    @property
    def n_predictors(self) -> int:
        return len(self.categories) - 1

    @property
    def reference_index(self) -> int:
        return self.categories.index(self.reference)

    @property
    def predictor_names(self) -> tuple:
        """The non-reference categories, in order: each names a linear predictor."""
        return tuple(c for c in self.categories if c != self.reference)

    def bind(self, values: pd.Series) -> "Categorical":
        """This family for an outcome column: its categories (the column's distinct values, sorted, unless
        given) and its reference category, checked."""
        present = sorted({str(v) for v in values.dropna()})
        categories = tuple(str(c) for c in self.categories) if self.categories else tuple(present)
        unknown = sorted(set(present) - set(categories))
        if unknown:
            raise MisterpInputError(
                f"The outcome {values.name!r} holds {unknown}, which the categories given ({list(categories)}) "
                "lack. Name every category, or recode those answers.")
        if len(categories) < 2:
            raise MisterpInputError(
                f"The outcome {values.name!r} holds a single category, {categories[0] if categories else 'none'!r}: "
                "a categorical model needs at least two. Check the outcome column, or the rows selected.")
        reference = categories[0] if self.reference is None else str(self.reference)
        if reference not in categories:
            raise MisterpInputError(
                f"--reference {reference!r} names no category of the outcome {values.name!r}, whose categories are "
                f"{list(categories)}. Name one of them.")
        return replace(self, categories=categories, reference=reference)

    def state(self) -> dict:
        return {"categories": list(self.categories), "reference": self.reference}

    @staticmethod
    def sum_cells(stats: dict, group: np.ndarray, n_groups: int) -> dict:
        """The statistics of groups of cells: counts (..., n_cells, K) and trials (..., n_cells) summed by
        ``group`` (n_cells,) over the cells' axis."""
        counts = sum_by_group(stats["counts"], group, n_groups, axis=-2)
        return {"counts": counts, "trials": counts.sum(axis=-1)}

    def _bound(self) -> None:
        if self.categories is None:
            raise ValueError("bind the categorical family to an outcome column first (Categorical.bind)")

    # -- respondents -> cells ------------------------------------------------
    def rows(self, data: pd.DataFrame, formula: Formula, *, trials: str | None = None,
             exposure: str | None = None) -> RowOutcome:
        """Each row's category, as its index in ``categories`` (the RowOutcome's ``total``)."""
        self._bound()
        if formula.trials or formula.failures or trials or exposure:
            raise MisterpInputError(
                "A categorical outcome takes one column of category names, a row per respondent; cbind(), "
                "--trials and --exposure describe binomial and count outcomes. Drop them.")
        values = data[formula.response].astype(str)
        codes = pd.Categorical(values, categories=self.categories).codes
        if (codes < 0).any():
            bad = sorted(set(values[codes < 0]))[:5]
            raise MisterpInputError(
                f"Outcome column {formula.response!r} holds {bad}, which are not among the categories "
                f"{list(self.categories)}. Recode those rows.")
        return RowOutcome(codes.astype(float), np.ones(len(codes)), 0.0)

    def cell_stats(self, rows: RowOutcome, cell: np.ndarray, n_cells: int) -> dict[str, np.ndarray]:
        """Rows summed by ``cell`` index (n_rows,) into counts (n_cells, K) and trials (n_cells,)."""
        K = len(self.categories)
        index = cell * K + rows.total.astype(np.int64)
        counts = np.bincount(index, weights=rows.count, minlength=n_cells * K).reshape(n_cells, K)
        return {"counts": counts, "trials": counts.sum(axis=1)}

    def check_cell_stats(self, stats: dict, response: str) -> None:
        """Raise when only one category was answered: nothing to model."""
        answered = [c for c, n in zip(self.categories, stats["counts"].sum(axis=0)) if n > 0]
        if len(answered) < 2:
            raise MisterpInputError(
                f"Every respondent answered {answered[0]!r} to {response!r}, so there is nothing to model. Check "
                "the outcome coding, or the rows selected.")

    @staticmethod
    def count(stats: dict) -> np.ndarray:
        """Respondents per cell, (n_cells,)."""
        return stats["trials"]

    @staticmethod
    def observed_mean(stats: dict) -> np.ndarray:
        """Each cell's raw shares, (..., n_cells, K)."""
        return stats["counts"] / stats["trials"][..., None]

    # -- link --------------------------------------------------------------
    def _full(self, eta: np.ndarray) -> np.ndarray:
        """The linear predictors with the reference's 0 in its place, (..., K)."""
        return np.insert(np.asarray(eta, float), self.reference_index, 0.0, axis=-1)

    def mean(self, eta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Shares (..., n_cells, K) from linear predictors (..., n_cells, m): the softmax with the reference
        at 0 (``out`` is not used: the shares have another shape)."""
        full = self._full(eta)
        full -= full.max(axis=-1, keepdims=True)
        np.exp(full, out=full)
        full /= full.sum(axis=-1, keepdims=True)
        return full

    def link_function(self, mu: np.ndarray) -> np.ndarray:
        """log(mu_k / mu_reference) for each non-reference category, (..., m)."""
        mu = np.asarray(mu, float)
        logs = np.log(mu)
        return np.delete(logs - logs[..., [self.reference_index]], self.reference_index, axis=-1)

    def mean_deriv(self, eta: np.ndarray) -> np.ndarray:
        """d mu_k / d eta_j = mu_k (delta - mu_j), with j the category of predictor j, (..., n_cells, K, m)."""
        mu = self.mean(eta)
        others = np.delete(np.arange(len(self.categories)), self.reference_index)
        return mu[..., :, None] * (np.eye(len(self.categories))[:, others] - mu[..., None, others])

    def initial_eta(self, stats: dict) -> np.ndarray:
        """log((n_k + 1/2) / (n_reference + 1/2)), (n_cells, m)."""
        return self.link_function(stats["counts"] + 0.5)

    # -- likelihood ----------------------------------------------------------
    def _log_shares(self, eta: np.ndarray) -> np.ndarray:
        full = self._full(eta)
        return full - np.logaddexp.reduce(full, axis=-1, keepdims=True)

    def loglik(self, stats: dict, eta: np.ndarray, constant: bool = True, dispersion: float = 1.0) -> np.ndarray:
        """Cell log-likelihoods sum_k n_k log mu_k, (..., n_cells); with the multinomial coefficient unless
        ``constant=False``."""
        kernel = np.sum(stats["counts"] * self._log_shares(eta), axis=-1)
        return kernel + self.log_constant(stats) if constant else kernel

    @staticmethod
    def log_constant(stats: dict) -> np.ndarray:
        """log(n! / prod n_k!), (n_cells,)."""
        return gammaln(stats["trials"] + 1.0) - gammaln(stats["counts"] + 1.0).sum(axis=-1)

    def working(self, stats: dict, eta: np.ndarray):
        """Newton pieces: (shares (n_cells, K), weights n (diag(p) - p p') over the non-reference shares p
        (n_cells, m, m), the score n_k - n p_k (n_cells, m), None)."""
        mu = self.mean(eta)
        p = np.delete(mu, self.reference_index, axis=-1)
        n = stats["trials"][:, None]
        weights = n[:, :, None] * (p[:, :, None] * np.eye(p.shape[1]) - p[:, :, None] * p[:, None, :])
        residual = np.delete(stats["counts"], self.reference_index, axis=-1) - n * p
        return mu, weights, residual, None

    def higher_derivatives(self, stats: dict, eta: np.ndarray):
        raise NotImplementedError("the Laplace approximation's next-order terms take one linear predictor")

    @staticmethod
    def dispersion(stats: dict, eta: np.ndarray, n_params: int) -> float:
        """1: the multinomial variance is fixed by its shares."""
        return 1.0

    @staticmethod
    def outcome_scale(stats: dict) -> None:
        return None

    def simulate(self, stats: dict, mu: np.ndarray, rng: np.random.Generator, dispersion: float = 1.0) -> dict:
        """New counts drawn at shares ``mu`` (..., n_cells, K), same trials."""
        n = np.broadcast_to(stats["trials"].astype(np.int64), mu.shape[:-1])
        counts = rng.multinomial(n, mu / mu.sum(axis=-1, keepdims=True)).astype(float)
        return {"counts": counts, "trials": np.broadcast_to(stats["trials"], mu.shape[:-1])}

    def numpyro_likelihood(self, stats: dict, eta, dispersion=1.0) -> None:
        """The observed site ``y`` of a NumPyro model at linear predictors ``eta`` (n_cells, m)."""
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist

        full = jnp.insert(eta, self.reference_index, 0.0, axis=-1)
        numpyro.sample("y", dist.Multinomial(total_count=jnp.asarray(stats["trials"]), logits=full),
                       obs=jnp.asarray(stats["counts"]))

    @staticmethod
    def quadratic(stats: dict) -> None:
        return None

    def boundary(self, stats: dict, eta: np.ndarray) -> str | None:
        """How many survey cells expect fewer than ``EDGE_COUNT`` answers of some category, or None."""
        expected = stats["trials"][:, None] * np.exp(self._log_shares(eta))
        k = int(np.sum(expected.min(axis=-1) < EDGE_COUNT))
        return f"fitted shares numerically 0 occurred in {k} of {len(expected)} survey cells" if k else None


@dataclass(frozen=True)
class Ordinal(Categorical):
    """Cumulative logit for ordered levels, as ``ordinal::clmm`` and brms's ``cumulative()``.

    P(Y <= j) = F(theta_j - eta) for the K - 1 cut points theta_1 < ... < theta_{K-1}, F the logistic cdf and
    eta = x'beta + z'b without an intercept (the cut points take its place). As linear predictors, eta_j =
    theta_j - eta (``shares_slopes``: every eta_j has the slopes and group effects with sign -1 and its own
    cut point), and a cell's shares are F(eta_j) - F(eta_{j-1}), with F(eta_0) = 0 and F(eta_K) = 1. The cell
    statistics are a categorical outcome's: ``counts`` (n_cells, K) in the levels' order, and ``trials``.

    ``Ordinal()`` is unbound; :meth:`bind` takes the order from ``categories`` (``--levels``), else from the
    values' numeric order, and refuses text levels without an order.
    """

    name: str = "ordinal"
    shares_slopes = True

    @property
    def scores(self) -> np.ndarray | None:
        """The levels as numbers when every one is a number (the mean score's weights), else None."""
        numbers = pd.to_numeric(pd.Series(self.categories), errors="coerce")
        return None if numbers.isna().any() else numbers.to_numpy(float)

    @property
    def predictor_names(self) -> tuple:
        """The cut points, "<level>|<next level>"."""
        return tuple(f"{a}|{b}" for a, b in zip(self.categories[:-1], self.categories[1:]))

    @property
    def reference_index(self) -> int:
        raise AttributeError("an ordinal outcome has cut points, not a reference category")

    def bind(self, values: pd.Series) -> "Ordinal":
        present = list(pd.unique(values.dropna()))
        texts = sorted({str(v) for v in present})
        if self.categories:
            order = tuple(str(c) for c in self.categories)
            missing, extra = sorted(set(texts) - set(order)), sorted(set(order) - set(texts))
            if missing or extra or len(set(order)) != len(order):
                raise MisterpInputError(
                    f"--levels {','.join(order)} must name each level of the outcome {values.name!r} once, in order; "
                    + (f"it misses {missing}" if missing else "") + ("; " if missing and extra else "")
                    + (f"it names {extra}, which the outcome never holds" if extra else "")
                    + ("it repeats a level" if not (missing or extra) else "") + f". The outcome holds {texts}.")
        else:
            numbers = pd.to_numeric(pd.Series(present, dtype=object), errors="coerce")
            if numbers.isna().any():
                raise MisterpInputError(
                    f"The ordinal outcome {values.name!r} holds the levels {texts}, whose order misterp does not "
                    "guess: give it with --levels (for example --levels " + ",".join(texts[:3]) + ").")
            order = tuple(str(present[i]) for i in np.argsort(numbers.to_numpy(float), kind="stable"))
        if len(order) < 2:
            raise MisterpInputError(
                f"The outcome {values.name!r} holds a single level, {order[0] if order else 'none'!r}: an ordinal "
                "model needs at least two. Check the outcome column, or the rows selected.")
        return replace(self, categories=order, reference=None)

    def state(self) -> dict:
        return {"categories": list(self.categories)}

    # -- link --------------------------------------------------------------
    @staticmethod
    def _cumulative(eta: np.ndarray) -> np.ndarray:
        """F(eta_j) with F(eta_0) = 0 and F(eta_K) = 1 around them, (..., K + 1)."""
        eta = np.asarray(eta, float)
        edge = eta.shape[:-1] + (1,)
        return np.concatenate([np.zeros(edge), expit(eta), np.ones(edge)], axis=-1)

    def mean(self, eta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Shares (..., n_cells, K) from the K - 1 linear predictors eta_j = theta_j - eta."""
        return np.diff(self._cumulative(eta), axis=-1)

    def link_function(self, mu: np.ndarray) -> np.ndarray:
        """logit of the cumulative shares, (..., K - 1)."""
        return logit(np.cumsum(np.asarray(mu, float), axis=-1)[..., :-1])

    def mean_deriv(self, eta: np.ndarray) -> np.ndarray:
        """d mu_k / d eta_j: f_j where k = j, -f_j where k = j + 1 (f = F'), (..., n_cells, K, m)."""
        g = expit(np.asarray(eta, float))
        f = g * (1.0 - g)
        K = f.shape[-1] + 1
        out = np.zeros(f.shape[:-1] + (K, K - 1))
        index = np.arange(K - 1)
        out[..., index, index] = f
        out[..., index + 1, index] = -f
        return out

    def initial_eta(self, stats: dict) -> np.ndarray:
        """logit of each cell's cumulative shares, with 1/2 added to every count, (n_cells, m)."""
        counts = stats["counts"] + 0.5
        return self.link_function(counts / counts.sum(axis=-1, keepdims=True))

    def _log_shares(self, eta: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self.mean(eta), np.finfo(float).tiny))

    def working(self, stats: dict, eta: np.ndarray):
        """Newton pieces: (shares (n_cells, K), the negative Hessian of the log-likelihood in the K - 1 eta_j
        (tridiagonal, (n_cells, m, m)), the score (n_cells, m), None)."""
        g = expit(eta)
        f = g * (1.0 - g)
        mu = np.maximum(self.mean(eta), np.finfo(float).tiny)
        n = stats["counts"]
        below, above = n[:, :-1] / mu[:, :-1], n[:, 1:] / mu[:, 1:]  # n_j / p_j and n_{j+1} / p_{j+1}
        score = f * (below - above)
        m = eta.shape[-1]
        weights = np.zeros((len(eta), m, m))
        index = np.arange(m)
        weights[:, index, index] = -(f * (1.0 - 2.0 * g) * (below - above)) + f * f * (
            below / mu[:, :-1] + above / mu[:, 1:])
        beside = -f[:, :-1] * f[:, 1:] * n[:, 1:-1] / mu[:, 1:-1] ** 2
        weights[:, index[:-1], index[1:]] = beside
        weights[:, index[1:], index[:-1]] = beside
        return mu, weights, score, None

    def numpyro_likelihood(self, stats: dict, eta, dispersion=1.0) -> None:
        """The observed site ``y`` of a NumPyro model at linear predictors eta_j = theta_j - eta (n_cells, m)."""
        import jax.numpy as jnp
        import jax.scipy.special as jsp
        import numpyro
        import numpyro.distributions as dist

        cumulative = jsp.expit(eta)
        ones = jnp.ones(eta.shape[:-1] + (1,))
        shares = jnp.diff(jnp.concatenate([0.0 * ones, cumulative, ones], axis=-1), axis=-1)
        numpyro.sample("y", dist.Multinomial(total_count=jnp.asarray(stats["trials"]), probs=shares),
                       obs=jnp.asarray(stats["counts"]))


def sum_by_group(values, group: np.ndarray, n_groups: int, axis: int) -> np.ndarray:
    """``values`` summed over its cells' ``axis`` by ``group`` (n_cells,), that axis becoming n_groups long."""
    cells_first = np.moveaxis(np.asarray(values, float), axis, 0)
    out = np.zeros((n_groups,) + cells_first.shape[1:])
    np.add.at(out, group, cells_first)
    return np.moveaxis(out, 0, axis)


def _within(stats: dict) -> np.ndarray:
    """Within-cell sums of squares about each cell's mean."""
    return stats["within"]


def _within_squares(y: np.ndarray, cell: np.ndarray, n_cells: int) -> np.ndarray:
    """Sum over each cell's rows of (y - the cell's mean)^2, (n_cells,): two passes, no cancellation."""
    n = np.bincount(cell, minlength=n_cells)
    mean = np.bincount(cell, weights=y, minlength=n_cells) / np.maximum(n, 1)
    return np.bincount(cell, weights=(y - mean[cell]) ** 2, minlength=n_cells)


def _numbers(data: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(data[column], errors="coerce").to_numpy(float)


def log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log C(n, k), elementwise."""
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


BINOMIAL = Binomial()
POISSON = Poisson()
GAUSSIAN = Gaussian()
CATEGORICAL = Categorical()  # unbound: prepare() binds it to the outcome's categories
ORDINAL = Ordinal()  # unbound: prepare() binds it to the outcome's levels in order
DEFAULT_FAMILY = BINOMIAL  # yes/no survey answers: what MRP models first
FAMILIES = {f.name: f for f in (BINOMIAL, POISSON, GAUSSIAN, CATEGORICAL, ORDINAL)}


def family_named(name: str, state: dict | None = None) -> Family:
    """The family of that name, with the ``state`` a saved fit records (:meth:`Family.state`)."""
    if name not in FAMILIES:
        raise MisterpInputError(f"Unknown family {name!r}; misterp knows {sorted(FAMILIES)}.")
    family = FAMILIES[name]
    if state:
        family = replace(family, **{k: tuple(v) if isinstance(v, list) else v for k, v in state.items()})
    return family


def as_family(family: "Family | str") -> Family:
    """A Family, given one or its name: every function that takes a family takes ``"gaussian"`` too.

    >>> as_family("gaussian") is GAUSSIAN, as_family(POISSON) is POISSON
    (True, True)
    """
    if isinstance(family, str):
        return family_named(family.strip().lower())
    if not hasattr(family, "cell_stats"):
        raise MisterpInputError(f"family takes a family's name ({', '.join(sorted(FAMILIES))}) or a misterp Family, "
                                f"not {family!r}.")
    return family
