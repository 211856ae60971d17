"""MixedFit: a fitted multilevel model with lme4's vocabulary.

``fixef``, ``ranef``, ``coef``, ``varcorr``, ``vcov``, ``loglik``,
``predict`` and ``cell_draws`` (the prediction path shared with the
bootstrap and :func:`misterp.poststratify`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cells import Cells
from .family import log_choose
from .frame import Frame
from .poststrat import CellDraws, LinearDraws


@dataclass(frozen=True)
class MixedFit:
    """A Laplace (glmer-equivalent) fit on cells.

    Attributes
    ----------
    cells : Cells
    theta : (n_terms,) array
        Relative covariance factors; for intercept-only terms, the sds.
    beta : (n_fixed,) array
    u : (q,) array
        Spherical conditional modes; the random effects are b = theta * u.
    objective : float
        The Laplace deviance on cells (with log C(n, s)).
    info : dict
        Optimizer report: converged, message, evaluations, max_abs_gradient.
    cov : (n_fixed + q, n_fixed + q) array
        Joint covariance of (beta, u) from the curvature at the mode.
    singular : bool
        Some theta below 1e-4 ("boundary (singular) fit" in lme4).
    """

    cells: Cells
    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    objective: float
    info: dict
    cov: np.ndarray
    singular: bool

    # -- lme4 accessors --------------------------------------------------------
    @property
    def design(self):
        return self.cells.design

    @property
    def lam(self) -> np.ndarray:
        """Lambda's diagonal: theta of each level's term, shape (q,)."""
        return np.repeat(self.theta, self.design.n_levels)

    @property
    def b(self) -> np.ndarray:
        """Random effects on the linear-predictor scale, shape (q,)."""
        return self.lam * self.u

    @property
    def loglik(self) -> float:
        """glmer's logLik on the input rows: the cell log-likelihood minus sum log C(n, s)
        over cells, plus sum log C(n_i, s_i) over rows (0 for 0/1 respondents)."""
        s, n = self.cells.stats["successes"], self.cells.stats["trials"]
        return -0.5 * self.objective - float(log_choose(n, s).sum()) + self.cells.row_log_choose

    @property
    def deviance(self) -> float:
        return -2.0 * self.loglik

    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=self.design.fixed_names)

    def varcorr(self) -> pd.DataFrame:
        """sd of each grouping term, in lme4's term order."""
        return pd.DataFrame({"term": self.design.group_names, "effect": "(Intercept)", "sd": self.theta})

    def ranef(self) -> dict[str, pd.Series]:
        """Conditional modes b per term, indexed by level."""
        out, starts = {}, np.concatenate([[0], np.cumsum(self.design.n_levels)])
        for k, name in enumerate(self.design.group_names):
            out[name] = pd.Series(self.b[starts[k]:starts[k + 1]], index=self.design.level_labels(k))
        return out

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per level: the fixed effects with that level's b added to the intercept."""
        fe = self.fixef()
        out = {}
        for name, re in self.ranef().items():
            table = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            if "(Intercept)" in table:
                table["(Intercept)"] += re.to_numpy()
            out[name] = table
        return out

    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects (lme4's ``vcov(use.hessian = FALSE)``)."""
        p = len(self.beta)
        names = self.design.fixed_names
        return pd.DataFrame(self.cov[:p, :p], index=names, columns=names)

    # -- prediction ------------------------------------------------------------
    def predict(self, newdata: pd.DataFrame, type: str = "response") -> np.ndarray:
        """lme4's ``predict(newdata, allow.new.levels = TRUE)``: unseen levels get b = 0."""
        M, _, _ = self.design.linear_map(newdata)
        eta = self.design.offset(newdata) + M @ np.concatenate([self.beta, self.b])
        return eta if type == "link" else self.cells.family.mean(eta)

    def cell_draws(self, frame: Frame, n_draws: int = 1000, seed=None) -> CellDraws:
        """Point predictions and normal-approximation draws for the frame's cells.

        (beta, u) are drawn jointly from N(mode, cov), as arm::sim does with the
        Laplace curvature; a level the survey never saw gets one N(0, theta^2)
        draw per term, level and simulation, and b = 0 in the point prediction.
        """
        M, extra_term, unseen = self.design.linear_map(frame.data, unseen="level")
        offset = self.design.offset(frame.data)
        mode = np.concatenate([self.beta, self.b])
        rng = np.random.default_rng(seed)
        p = len(self.beta)
        z = rng.standard_normal((n_draws, len(mode)))
        draws = np.concatenate([self.beta, self.u]) + z @ np.linalg.cholesky(self.cov).T
        draws[:, p:] *= self.lam  # u -> b
        new = self.theta[extra_term] * rng.standard_normal((n_draws, len(extra_term)))
        point = self.cells.family.mean(offset + M[:, : len(mode)] @ mode)
        return CellDraws(point=point, draws=LinearDraws(np.hstack([draws, new]), M, offset),
                         method="normal-approx", unseen=unseen)

    def summary(self) -> str:
        """A short lme4-style printout."""
        lines = [f"Generalized linear mixed model fit by maximum likelihood (Laplace) [misterp]",
                 f" Family: binomial (logit)",
                 f" Formula: {self.design.formula.text}",
                 f" logLik: {self.loglik:.4f}   deviance: {self.deviance:.4f}",
                 "Random effects:"]
        for _, row in self.varcorr().iterrows():
            lines.append(f"  {row['term']:<20} (Intercept)  sd = {row['sd']:.6f}")
        lines.append("Fixed effects:")
        se = np.sqrt(np.diag(self.vcov().to_numpy()))
        for (name, value), s in zip(self.fixef().items(), se):
            lines.append(f"  {name:<20} {value: .6f}  (se {s:.6f})")
        lines.append(f"Cells: {self.cells.n_cells}, respondents: {int(self.cells.stats['trials'].sum())}")
        if self.singular:
            lines.append("boundary (singular) fit: some sd is 0")
        if not self.info.get("converged", True):
            lines.append(f"warning: the optimizer did not converge ({self.info.get('message')})")
        return "\n".join(lines)
