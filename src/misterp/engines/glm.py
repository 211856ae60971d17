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
from .fit import (Fit, ParameterDraws, normal_draws, one_blas_thread, rank_problems, separation_problems, spd_solve,
                  stacked_eta, stacked_names)


@dataclass(frozen=True)
class GlmEngine:
    """IRLS settings: relative deviance tolerance and iteration cap."""

    tol: float = 1e-12
    max_iter: int = 100

    def fit(self, cells: Cells) -> "Fit":
        """Fit; a :class:`misterp.MisterpWarning` when IRLS does not converge."""
        if cells.design.group_terms:
            raise MisterpInputError(
                f"The glm engine fits fixed effects only, but the formula has grouping terms "
                f"{cells.design.group_names}. Use the laplace engine, or write them as fixed effects."
            )
        family, stats = cells.family, cells.stats
        if family.shares_slopes:  # cut points and shared slopes (ordinal::clm): the multi-predictor Newton
            from .stacked import stacked_fit

            return stacked_fit(cells)
        with one_blas_thread():  # small solves: a second BLAS thread only spins
            beta, cov, converged = irls(cells.X, stats, cells.offset, family, self.tol, self.max_iter)
        eta = stacked_predictor(cells.X, beta, cells.offset, family)
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

    With m linear predictors (a categorical family's), beta stacks one coefficient vector per
    predictor, (m * p,), and the working weights are (n_cells, m, m) blocks; one predictor is the
    case m = 1, R's ``glm.fit``. Under separation the fitted means run to the edge of their range
    and the working weights underflow to 0; as ``glm.fit`` (whose ``mu.eta`` is at least
    DBL_EPSILON) each weight is kept at least ``eps`` per respondent, so the steps stay finite and
    the separated coefficients end large with huge SEs, which ``GlmFit.problems`` reports.
    """
    floor = np.finfo(float).eps * family.count(stats)
    eta = family.initial_eta(stats)
    m = family.n_predictors
    beta = np.zeros(X.shape[1] * m)
    dev_old = np.inf
    for _ in range(max_iter):
        _, w, r, _ = family.working(stats, eta)
        w = floor_weights(w, floor)
        # the working response's normal equations: X'W X beta = X'(W (eta - offset) + r)
        gram = weighted_gram(X, w)
        working = times_weights(w, predictors(eta, m) - offset[:, None]) + predictors(r, m)
        beta = spd_solve(gram, weighted_sum(X, working))
        eta = stacked_predictor(X, beta, offset, family)
        dev = -2.0 * family.loglik(stats, eta).sum()
        if abs(dev - dev_old) <= tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    else:
        return beta, spd_solve(gram, np.eye(len(beta))), False
    _, w, _, _ = family.working(stats, eta)
    cov = spd_solve(weighted_gram(X, floor_weights(w, floor)), np.eye(len(beta)))
    return beta, cov, True


def predictors(eta: np.ndarray, m: int) -> np.ndarray:
    """Linear predictors as (n_cells, m), whether one (n_cells,) or m."""
    return eta.reshape(len(eta), m)


def stacked_predictor(X, beta: np.ndarray, offset: np.ndarray, family) -> np.ndarray:
    """offset + X beta_k for each of the family's m stacked coefficient vectors: (n_cells, m) for a family with
    categories (whose predictors sit on a last axis, even one), else (n_cells,)."""
    eta = stacked_eta(X, beta, offset, family.n_predictors)
    return eta[:, 0] if family.categories is None else eta


def floor_weights(w: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Working weights kept at least ``floor`` per cell (on a block's diagonal)."""
    if w.ndim == 1:
        return np.maximum(w, floor)
    diagonal = np.einsum("cii->ci", w)
    return w + np.einsum("ci,ij->cij", np.maximum(floor[:, None] - diagonal, 0.0), np.eye(w.shape[1]))


def times_weights(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each cell's weight (block) times its (n_cells, m) vector."""
    return w[:, None] * v if w.ndim == 1 else np.einsum("cij,cj->ci", w, v)


def weighted_gram(X, w: np.ndarray) -> np.ndarray:
    """(X ⊗ I_m)' W (X ⊗ I_m) in predictor-major order, (m p, m p): X'WX for weights (n_cells,)."""
    if w.ndim == 1:
        return X.T @ (w[:, None] * X)
    m, p = w.shape[1], X.shape[1]
    return np.einsum("ca,ckl,cb->kalb", X, w, X).reshape(m * p, m * p)


def weighted_sum(X, v: np.ndarray) -> np.ndarray:
    """X' v_k for each column of ``v`` (n_cells, m), stacked predictor-major, (m p,)."""
    return (X.T @ v).T.ravel()


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
        return pd.Series(self.beta, index=stacked_names(self.design.fixed_names, self.family))

    def fixef(self) -> pd.Series:
        return self.coef

    def vcov(self) -> pd.DataFrame:
        names = stacked_names(self.design.fixed_names, self.family)
        return pd.DataFrame(self.cov, index=names, columns=names)

    def _eta(self) -> np.ndarray:
        cells = self.cells
        return stacked_predictor(cells.X, self.beta, cells.offset, self.family)

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
        return np.full((n_draws, 1), cells.family.dispersion(cells.stats, self._eta(), len(self.beta)))

    def problems(self) -> list[str]:
        eta = self._eta()
        messages = [] if self.converged else [
            "glm did not converge: fitted means may be at the edge of their range (separation); "
            "merge sparse categories or use the laplace engine with those terms as grouping terms."]
        return rank_problems(self.cells) + messages + separation_problems(self.cells, eta)

    def saved_state(self) -> tuple[dict, dict]:
        return {"loglik": self.loglik, "converged": self.converged}, {"beta": self.beta, "cov": self.cov}

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "GlmFit":
        return cls(cells, arrays["beta"], arrays["cov"], meta["loglik"], meta["converged"])
