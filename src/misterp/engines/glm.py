"""Binomial-logit GLM fitted by IRLS on cells, as R's ``glm(family = binomial)``.

Example
-------
>>> import pandas as pd
>>> from misterp import Survey, collapse
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 1], "g": ["a", "a", "b", "b", "b", "b"]})
>>> GlmEngine().fit(collapse(Survey(data, "y"), "y ~ g")).coef.round(4).tolist()
[0.0, 1.0986]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, cho_solve

from ..cells import Cells
from ..errors import MisterpInputError
from ..frame import Frame
from ..poststrat import CellDraws


@dataclass(frozen=True)
class GlmEngine:
    """IRLS settings: relative deviance tolerance and iteration cap."""

    tol: float = 1e-12
    max_iter: int = 100

    def fit(self, cells: Cells) -> "GlmFit":
        if cells.design.group_terms:
            raise MisterpInputError(
                f"The glm engine fits fixed effects only, but the formula has grouping terms "
                f"{cells.design.group_names}. Use the laplace engine, or write them as fixed effects."
            )
        beta, cov, converged = irls(cells.X, cells.stats, cells.offset, cells.family, self.tol, self.max_iter)
        eta = cells.offset + cells.X @ beta
        loglik = float(cells.family.loglik(cells.stats, eta).sum())
        return GlmFit(cells, beta, cov, loglik, converged)


def irls(X, stats, offset, family, tol=1e-12, max_iter=100):
    """Newton/IRLS for the fixed-effects model; returns (beta, cov, converged)."""
    s, n = stats["successes"], stats["trials"]
    eta = np.log((s + 0.5) / (n - s + 0.5))  # R's binomial mustart, on the logit scale
    beta = np.zeros(X.shape[1])
    dev_old = np.inf
    for _ in range(max_iter):
        mu, w, _, _ = family.working(stats, eta)
        z = eta - offset + (s - n * mu) / np.maximum(w, 1e-300)
        xtwx = X.T @ (w[:, None] * X)
        factor = cho_factor(xtwx)
        beta = cho_solve(factor, X.T @ (w * z))
        eta = offset + X @ beta
        dev = -2.0 * family.loglik(stats, eta).sum()
        if abs(dev - dev_old) <= tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    else:
        warnings.warn("glm did not converge: fitted probabilities may be 0 or 1 (separation)", stacklevel=3)
        return beta, np.linalg.inv(xtwx), False
    _, w, _, _ = family.working(stats, eta)
    cov = cho_solve(cho_factor(X.T @ (w[:, None] * X)), np.eye(X.shape[1]))
    return beta, cov, True


@dataclass(frozen=True)
class GlmFit:
    """A fitted GLM: coefficients, their covariance, predictions with SEs."""

    cells: Cells
    beta: np.ndarray
    cov: np.ndarray
    loglik: float
    converged: bool

    @property
    def design(self):
        return self.cells.design

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
        response scale the SE is the delta method's mu(1-mu) * se(eta).
        """
        X = self.design.fixed_matrix(newdata)
        eta = self.design.offset(newdata) + X @ self.beta
        se_eta = np.sqrt(np.einsum("ij,jk,ik->i", X, self.cov, X))
        if type == "link":
            return (eta, se_eta) if se_fit else eta
        mu = self.cells.family.mean(eta)
        return (mu, mu * (1 - mu) * se_eta) if se_fit else mu

    def cell_draws(self, frame: Frame, n_draws: int = 0, seed=None) -> CellDraws:
        """Cell predictions for ``frame``: point, SEs and the delta-method pieces."""
        X = self.design.fixed_matrix(frame.data)
        eta = self.design.offset(frame.data) + X @ self.beta
        mu = self.cells.family.mean(eta)
        se = mu * (1 - mu) * np.sqrt(np.einsum("ij,jk,ik->i", X, self.cov, X))
        return CellDraws(point=mu, se=se, delta=((mu * (1 - mu))[:, None] * X, self.cov), method="delta")
