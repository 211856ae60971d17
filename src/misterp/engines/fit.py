"""The Fit protocol: what every engine's result offers the stages after it.

A fit carries its cells (and through them its design and family), the point
estimate of the coefficients, draws of them (normal approximation, refits or
posterior), its rule for grouping levels the survey never saw, the interval
its draws call for, and ``problems()``. The one prediction path,
:func:`misterp.cell_draws`, reads nothing else, so it serves every engine;
:func:`misterp.save_fit` stores what ``saved_state`` returns.

Coefficients are always laid out as the fixed effects (the design's
``fixed_names``) followed by the random effects b of every grouping term,
level by level, on the linear-predictor scale: the columns of
``Design.linear_map``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..errors import MisterpInputError, MisterpWarning
from ..model.cells import Cells

UNSEEN_POLICIES = {
    "zero": "b = 0 for a level the survey never saw, in the point and in every draw (lme4's "
            "allow.new.levels inside bootMer)",
    "level": "one N(0, sd^2) draw per unseen level, term and draw (arm::sim on a Laplace fit)",
    "term": "one N(0, sd^2) draw per term and draw, shared by the term's unseen levels "
            "(rstanarm's posterior_epred)",
}


@dataclass(frozen=True)
class ParameterDraws:
    """Draws of a fit's coefficients.

    Attributes
    ----------
    coef : (n_draws, n_fixed + q) array
        Fixed effects, then random effects b.
    scale : list of (n_draws, K, K) arrays
        Per grouping term, a factor F of its effects' covariance F F' in each
        draw (for a random intercept, K = 1 and F is its sd): the effects of
        an unseen level are F z, z ~ N(0, I).
    """

    coef: np.ndarray
    scale: list

    @classmethod
    def from_sds(cls, coef: np.ndarray, sd: np.ndarray) -> "ParameterDraws":
        """Draws whose terms are random intercepts with sds ``sd`` (n_draws, n_terms)."""
        return cls(coef, [sd[:, k, None, None] for k in range(sd.shape[1])])


class Fit:
    """Base of every engine's fit; subclasses are frozen dataclasses with a ``cells`` field.

    Class attributes
    ----------------
    kind : str
        Names the fit in saved files ("glm", "laplace", "bootstrap", "bayes").
    method : str
        How the draws are made; the interval label starts with it
        ("normal-approx ±2sd").
    interval : {"delta", "draws", "quantile"}
        The interval :func:`misterp.poststratify` gives by default.
    unseen : {"zero", "level", "term"}
        The unseen-level policy of the draws (see ``UNSEEN_POLICIES``); the
        point prediction always gives an unseen level b = 0.
    point : {"mode", "mean"}
        Cell predictions at ``point_coef()`` (lme4's ``predict``), or the mean
        of the draws' predictions (rstanarm's ``posterior_epred``).
    """

    kind: ClassVar[str]
    method: ClassVar[str]
    interval: ClassVar[str]
    unseen: ClassVar[str]
    point: ClassVar[str] = "mode"
    cells: Cells

    @property
    def draw_seed(self) -> int | None:
        """The seed of ``cell_draws`` when none is given: None (fresh entropy) for fits made
        without one; a fit from a seeded sampler gives one, so its predictions repeat."""
        return None

    @property
    def design(self):
        return self.cells.design

    @property
    def family(self):
        return self.cells.family

    def point_coef(self) -> np.ndarray:
        """The coefficients of the point prediction, (n_fixed + q,)."""
        raise NotImplementedError

    def coef_cov(self) -> np.ndarray | None:
        """Covariance of ``point_coef()`` for the delta method, or None where it does not apply."""
        return None

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws | None:
        """Draws of the coefficients; ``n_draws=None`` gives the fit's default number (None: no draws)."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        """What the user should know before trusting the fit, with the remedy (empty when all is well)."""
        return []

    def dispersion_draws(self, n_draws: int) -> np.ndarray:
        """The outcome's dispersion (a gaussian's sigma^2; 1 otherwise) for each of ``n_draws``
        replicates, (n_draws, 1): the point estimate's, repeated."""
        return np.full((n_draws, 1), float(getattr(self, "sigma", 1.0)) ** 2)

    def warn_problems(self, stacklevel: int = 3) -> None:
        """Each of ``problems()`` as a :class:`MisterpWarning`."""
        for message in self.problems():
            warnings.warn(message, MisterpWarning, stacklevel=stacklevel)

    def saved_state(self) -> tuple[dict, dict]:
        """(JSON-able metadata, named arrays) from which ``from_saved_state`` rebuilds the fit."""
        raise NotImplementedError

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "Fit":
        raise NotImplementedError

    def __repr__(self) -> str:
        problems = self.problems()
        note = f", {len(problems)} problem(s); see .problems()" if problems else ""
        return (f"<{type(self).__name__} {self.design.formula.text!r}: {self.family.name}, "
                f"{self.cells.n_cells} cells{note}>")

def require_one_predictor(cells: Cells, engine: str) -> None:
    """Refuse, with the engines that fit it, a family whose linear predictors sit on a category axis, for an
    engine that fits one linear predictor per cell."""
    if cells.family.categories is not None:
        raise MisterpInputError(
            f"The {engine} engine fits one linear predictor per cell; a {cells.family.name} outcome has one per "
            "category. Fit it with --engine laplace (maximum likelihood, the group effects integrated out by "
            "the Laplace approximation, normal-approximation intervals), --engine bayes (brms's categorical() "
            "model) or --engine glm (fixed effects only).")


def stacked_eta(matrix, coef: np.ndarray, offset: np.ndarray, m: int) -> np.ndarray:
    """Linear predictors of m stacked coefficient blocks: ``coef`` (n_draws, m k) predictor-major, ``matrix``
    (n_cells, k); returns (n_draws, n_cells, m), or (n_cells, m) for one coefficient vector (m k,)."""
    single = coef.ndim == 1
    coef = np.atleast_2d(coef)
    n_draws = coef.shape[0]
    eta = np.asarray(matrix @ coef.reshape(n_draws * m, -1).T)  # (n_cells, n_draws m)
    eta = eta.reshape(-1, n_draws, m).transpose(1, 0, 2) + offset[:, None]
    return eta[0] if single else eta


def stacked_names(names: list[str], family) -> list[str]:
    """Coefficient names for a family's stacked linear predictors: ``names`` for one, else
    "<predictor>:<name>" per predictor (a category), predictor-major.

    >>> import pandas as pd
    >>> from misterp.model.family import CATEGORICAL
    >>> stacked_names(["(Intercept)", "x"], CATEGORICAL.bind(pd.Series(list("abc"), name="y")))
    ['b:(Intercept)', 'b:x', 'c:(Intercept)', 'c:x']
    """
    if family.n_predictors == 1:
        return list(names)
    return [f"{k}:{name}" for k in family.predictor_names for name in names]


def varcorr_frame(names: list[str], effects: list[list[str]], sds: list[np.ndarray], cors: list[np.ndarray],
                  residual: float | None = None):
    """lme4's ``as.data.frame(VarCorr(fit))``: a row per sd and per correlation (term, effect, other,
    sd, cor); the short form (term, effect, sd) when every term is one effect.

    ``sds[k]`` is (K,), ``cors[k]`` (K, K) for term k; ``residual`` adds a gaussian's sd.
    """
    import pandas as pd

    rows = []
    for name, labels, sd, cor in zip(names, effects, sds, cors):
        rows += [(name, e, "", s, np.nan) for e, s in zip(labels, sd)]
        rows += [(name, labels[i], labels[j], np.nan, cor[i, j]) for j in range(len(labels))
                 for i in range(j + 1, len(labels))]
    if residual is not None:
        rows.append(("Residual", "", "", residual, np.nan))
    table = pd.DataFrame(rows, columns=["term", "effect", "other", "sd", "cor"])
    return table if (table["other"] != "").any() else table[["term", "effect", "sd"]]


def correlations(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sds (..., K) and correlations (..., K, K) of covariances (..., K, K); NaN where an sd is 0."""
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    outer = sd[..., :, None] * sd[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sd, np.where(outer > 0, cov / np.where(outer > 0, outer, 1.0), np.nan)


def normal_draws(mean: np.ndarray, cov: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """(n_draws, k) draws of N(mean, cov) from the Cholesky factor of ``cov``, or, where rounding
    has left ``cov`` numerically indefinite (a separated fit's huge variances), from its
    eigendecomposition with negative eigenvalues taken as 0."""
    z = rng.standard_normal((n_draws, len(mean)))
    try:
        factor = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(cov)
        factor = vectors * np.sqrt(np.maximum(values, 0.0))
    return mean + z @ factor.T


def spd_solve(a: np.ndarray, b: np.ndarray, lower: bool = False) -> np.ndarray:
    """a^-1 b for a symmetric positive (semi)definite ``a``, by Cholesky.

    Where weights near 0 (separation) have left ``a`` numerically indefinite,
    by its eigenvalues kept at least eps times the largest instead: a
    direction the data cannot identify gets a huge variance, not an error.
    """
    try:
        return cho_solve(cho_factor(a, lower=lower), b)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(a)
        values = np.maximum(values, np.finfo(float).eps * max(values.max(), np.finfo(float).tiny))
        return vectors @ ((vectors.T @ b) / (values[:, None] if np.ndim(b) == 2 else values))


def rank_problems(cells: Cells) -> list[str]:
    """The problem to report when the survey cannot estimate some fixed-effect columns (the design
    dropped them, as lme4 does: "fixed-effect model matrix is rank deficient")."""
    dropped = cells.design.dropped
    if not dropped:
        return []
    return [f"fixed-effect model matrix is rank deficient, so {len(dropped)} column(s) were dropped, as lme4 does: "
            f"{', '.join(dropped)}. The survey has no respondents that tell them apart from the other columns (a "
            "combination nobody answered in, or one column a sum of others), so frame cells that need them are "
            "predicted with those coefficients at 0. Replace a fixed interaction by a grouping term such as "
            "(1|a:b), which predicts unsampled combinations, or drop the column."]


def separation_problems(cells: Cells, eta: np.ndarray) -> list[str]:
    """The problem to report when fitted means on the survey's cells (linear predictor ``eta``)
    sit numerically at the edge of their range: a sign of separation, which no engine without
    priors can fit (its coefficients run off towards infinity)."""
    note = cells.family.boundary(cells.stats, eta)
    if not note:
        return []
    return [f"{note}: a predictor separates the answers (perfect or quasi-complete separation), so its "
            "coefficients run off towards infinity and their SEs and intervals are not reliable. Merge the "
            "sparse categories or drop the separating term; the bayes engine's priors keep such effects finite."]


def one_blas_thread():
    """A context that runs BLAS on one thread. The engines make many small LAPACK calls, for which
    a second thread gains nothing when the machine is idle and, when another process holds a core,
    makes OpenBLAS's waiting threads spin: a CCES glmer took 1.8-4.7 s instead of 0.14 s, a
    q = 4,000 lmer 18-21 s instead of 0.6 s (bench/RESULTS.md)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")
