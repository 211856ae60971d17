"""The mixed-model engine: ``lme4::glmer`` with nAGQ = 1, or ``lme4::lmer`` for a gaussian outcome.

For binomial and poisson outcomes it minimises the Laplace deviance
(:mod:`.deviance`) over (theta, beta) with L-BFGS-B and the exact gradient
(:mod:`.optimize`), reaching lme4's optimum (or a slightly better one) in a
few dozen PIRLS solves. For a gaussian outcome the likelihood is exact: the
profiled deviance of :mod:`.lmm`, REML by default as lmer. The fit speaks lme4's
vocabulary: ``fixef``, ``ranef``, ``coef``, ``varcorr``, ``vcov``,
``loglik``, ``predict``.

Example
-------
>>> import pandas as pd
>>> from misterp import Survey, collapse
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5})
>>> fit = LaplaceEngine().fit(collapse(Survey(data, "y"), "y ~ (1|g)"))
>>> fit.varcorr()["term"].tolist(), fit.fixef().index.tolist()
(['g'], ['(Intercept)'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from ..model.cells import Cells
from .deviance import Problem, joint_covariance
from .fit import (Fit, ParameterDraws, correlations, normal_draws, one_blas_thread, rank_problems,
                  separation_problems, varcorr_frame)
from .optimize import optimize, start_values
from .linalg import PrecisionCovariance
from .structure import Structure

SINGULAR_TOL = 1e-4  # lme4's isSingular default


@dataclass(frozen=True)
class LaplaceEngine:
    """glmer-equivalent fits (Laplace approximation).

    Parameters
    ----------
    singular_tol : float
        A theta below this is reported as a singular (boundary) fit, as lme4's
        ``isSingular`` does with its default tolerance.
    reml : bool
        For a gaussian outcome: REML (lmer's default), or maximum likelihood.
        Other families have no REML criterion.
    """

    singular_tol: float = SINGULAR_TOL
    reml: bool = True

    def fit(self, cells: Cells, start: np.ndarray | None = None, u0: np.ndarray | None = None) -> "MixedFit":
        """Fit; a :class:`misterp.MisterpWarning` for each of the fit's ``problems()``."""
        if not cells.design.group_terms:
            raise MisterpInputError(
                "The laplace engine needs at least one grouping term such as '(1|g)' in the "
                "formula; for fixed effects only, use the glm engine."
            )
        with one_blas_thread():
            fit = self._fit(cells, start, u0)
        fit.warn_problems()
        return fit

    def _fit(self, cells: Cells, start: np.ndarray | None, u0: np.ndarray | None) -> "MixedFit":
        if cells.family.categories is not None:  # a categorical outcome's K - 1 linear predictors
            from .stacked import stacked_fit

            return stacked_fit(cells)
        if any(g.structured for g in cells.design.group_terms):
            return structured_fit(cells)
        if cells.family.profiled:
            return lmm_fit(cells, self.reml, self.singular_tol, start)
        if not Structure.of(cells.design).simple:
            from .slopes import slopes_fit

            return slopes_fit(cells, self.singular_tol, start, u0)
        prob = Problem(cells)
        if start is None:
            start, u0 = start_values(cells, prob)
        params, state, info = optimize(prob, start, u0)
        T = prob.n_terms
        return MixedFit(cells=cells, theta=params[:T], beta=params[T:], u=state.u[0],
                        objective=float(state.objective[0]), info=info,
                        cov=joint_covariance(prob, state), singular_tol=self.singular_tol, reml=False)


def structured_fit(cells: Cells):
    """A model with structured terms (``rw1(age)``, ``bym2(state)``), which lme4 cannot fit: the mode of the
    hyperparameters' Laplace-approximated posterior under the bayes engine's priors (every sd exponential(1),
    rho's priors, :mod:`misterp.engines.terms`), the effects integrated out, and draws from the normal
    approximation of the effects there. It is the inla engine's posterior at its mode alone (R-INLA's
    empirical Bayes), so that the two engines share one hyperparameter posterior; the priors keep every
    mode off a zero variance and off rho = 0 or 1."""
    from .inla import InlaEngine

    return InlaEngine(design="mode", correction=False, skew=False).fit_unwarned(cells)


def lmm_fit(cells: Cells, reml: bool, singular_tol: float = SINGULAR_TOL,
            start: np.ndarray | None = None) -> "MixedFit":
    """lmer's fit on gaussian cells, as a MixedFit (no warnings: the caller tells the problems)."""
    from .lmm_optimize import fit_lmm

    found = fit_lmm(cells, reml, start)
    return MixedFit(cells=cells, theta=found["theta"], beta=found["beta"], u=found["u"],
                    objective=found["objective"], info=found["info"], cov=found["cov"],
                    singular_tol=singular_tol, sigma=found["sigma"], reml=reml)


@dataclass(frozen=True, repr=False)
class MixedFit(Fit):
    """A Laplace (glmer-equivalent) fit on cells.

    Attributes
    ----------
    cells : Cells
    theta : (n_terms,) array
        lme4's theta: each term's lower-triangular factor T, column by column
        (see :mod:`.structure`); for intercept-only terms, the sds.
    beta : (n_fixed,) array
    u : (q,) array
        Spherical conditional modes; the random effects are b = Lambda(theta) u.
    objective : float
        The Laplace deviance on cells (with the family's constant); for a
        gaussian outcome lmer's REML criterion, or its ML deviance.
    info : dict
        Optimizer report: converged, message, evaluations, max_abs_gradient.
    cov : (n_fixed + q, n_fixed + q) array, or PrecisionCovariance
        Joint covariance of (beta, u) from the curvature at the mode; for large q
        (a sparse fit) its precision, factorised, never dense.
    singular_tol : float
        The engine's threshold for a singular (boundary) fit.
    sigma : float
        The residual sd of a gaussian outcome (then the term sds are
        theta * sigma, as in lmer); 1 for other families.
    reml : bool
        Whether a gaussian fit maximised the REML criterion.
    """

    cells: Cells
    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    objective: float
    info: dict
    cov: np.ndarray | PrecisionCovariance
    singular_tol: float = field(default=SINGULAR_TOL, kw_only=True)
    sigma: float = field(default=1.0, kw_only=True)
    reml: bool = field(default=False, kw_only=True)

    kind = "laplace"
    method = "normal-approx"
    interval = "draws"
    unseen = "level"

    # -- lme4 accessors --------------------------------------------------------
    @cached_property
    def structure(self) -> Structure:
        return Structure.of(self.design)

    @property
    def lam(self) -> np.ndarray:
        """Lambda's diagonal when every term is a random intercept: theta of each level's term, (q,)."""
        if not self.structure.simple:
            raise ValueError("Lambda is not diagonal: the model has varying slopes; use .structure")
        return np.repeat(self.theta, self.design.n_levels)

    @property
    def b(self) -> np.ndarray:
        """Random effects on the linear-predictor scale, shape (q,)."""
        return self.lam * self.u if self.structure.simple else self.structure.apply(self.theta, self.u)

    @property
    def singular(self) -> bool:
        """A diagonal entry of some T below the engine's threshold (lme4's isSingular)."""
        return bool(self.structure.singular_terms(self.theta, self.singular_tol))

    def singular_terms(self) -> list[str]:
        names = self.design.group_names
        return [names[k] for k in self.structure.singular_terms(self.theta, self.singular_tol)]

    def term_covariances(self) -> list[np.ndarray]:
        """Each term's covariance of its effects, sigma^2 T T', (K, K)."""
        return [self.sigma ** 2 * T @ T.T for T in self.structure.factors(self.theta)]

    @property
    def loglik(self) -> float:
        """glmer's logLik on the input rows: the cell log-likelihood less the family's constant
        over cells, plus its constant over the input rows (0 for respondents)."""
        return -0.5 * self.objective - float(self.family.log_constant(self.cells.stats).sum()) \
            + self.cells.row_constant

    @property
    def deviance(self) -> float:
        return -2.0 * self.loglik

    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=self.design.fixed_names)

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(fit))``, one row per sd and per correlation, in lme4's term
        order: term, effect, other (the second effect of a correlation), sd, cor. A gaussian fit
        adds the residual sd."""
        design = self.design
        pairs = [correlations(cov) for cov in self.term_covariances()]
        return varcorr_frame(design.group_names, [design.effect_names(k) for k in range(len(pairs))],
                             [sd for sd, _ in pairs], [cor for _, cor in pairs],
                             self.sigma if self.family.profiled else None)

    @property
    def reml_criterion(self) -> float:
        """lmer's REMLcrit of a REML fit."""
        if not self.reml:
            raise ValueError("this fit maximised the likelihood, not the REML criterion")
        return self.objective

    def ranef(self) -> dict:
        """Conditional modes b per term, indexed by level: a Series for a random intercept, a table
        (levels x effects) for a term with slopes."""
        design = self.design
        out, starts = {}, np.concatenate([[0], np.cumsum(design.n_levels * design.n_effects)])
        for k, name in enumerate(design.group_names):
            block = self.b[starts[k]:starts[k + 1]].reshape(design.n_levels[k], design.n_effects[k])
            labels = design.level_labels(k)
            out[name] = (pd.Series(block[:, 0], index=labels) if design.n_effects[k] == 1 and
                         design.group_terms[k].intercept else pd.DataFrame(block, index=labels,
                                                                           columns=design.effect_names(k)))
        return out

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per level: the fixed effects with that level's b added to the intercept."""
        fe = self.fixef()
        out = {}
        for name, re in self.ranef().items():
            table = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            effects = re if isinstance(re, pd.DataFrame) else re.to_frame("(Intercept)")
            for effect in effects.columns:
                if effect in table:
                    table[effect] += effects[effect].to_numpy()
                else:
                    table[effect] = effects[effect].to_numpy()
            out[name] = table
        return out

    def vcov(self, use_hessian: bool = False) -> pd.DataFrame:
        """Covariance of the fixed effects: lme4's ``vcov(use.hessian = FALSE)`` (the penalized
        system's, which the normal-approximation draws use), or with ``use_hessian`` for a glmer
        fit, the beta block of twice the inverse of the deviance's Hessian in (theta, beta), as
        lme4's default ``vcov`` and ``summary`` report; where that is not positive definite (at some
        boundaries), the penalized system's, as lme4 falls back."""
        p = len(self.beta)
        names = self.design.fixed_names
        cov = self.cov.block(p) if isinstance(self.cov, PrecisionCovariance) else self.cov[:p, :p]
        if use_hessian and not self.family.profiled:
            with np.errstate(all="ignore"):
                try:
                    full = np.linalg.inv(self._deviance_hessian())[-p:, -p:]
                except np.linalg.LinAlgError:
                    full = np.full((p, p), np.nan)
            hess = full + full.T
            if np.all(np.isfinite(hess)) and np.all(np.linalg.eigvalsh(hess) > 0):
                cov = hess
        return pd.DataFrame(cov, index=names, columns=names)

    def _deviance_hessian(self) -> np.ndarray:
        """The Laplace deviance's Hessian in (theta, beta) at the optimum, by central differences
        of its exact gradient."""
        params = np.concatenate([self.theta, self.beta])
        if self.structure.simple:
            from .optimize import hessian_at

            return hessian_at(Problem(self.cells), params, self.u)
        from .slopes import hessian_at as slopes_hessian

        return slopes_hessian(self.cells, params, self.u)

    def refit(self, cells: Cells) -> "MixedFit":
        """The same model fitted again to other statistics on the same cells, from this fit's
        optimum (for the bootstrap); no warnings, the caller counts failures."""
        if self.family.profiled:
            return lmm_fit(cells, self.reml, self.singular_tol, start=self.theta)
        from .slopes import slopes_fit

        refit = slopes_fit(cells, self.singular_tol, np.concatenate([self.theta, self.beta]), self.u)
        if not refit.info["converged"]:
            raise FloatingPointError("the refit did not converge")
        return refit

    def predict(self, newdata: pd.DataFrame, type: str = "response") -> np.ndarray:
        """lme4's ``predict(newdata, allow.new.levels = TRUE)``: unseen levels get b = 0."""
        M, _, _ = self.design.linear_map(newdata)
        eta = self.design.offset(newdata) + M @ self.point_coef()
        return eta if type == "link" else self.family.mean(eta)

    # -- the Fit protocol --------------------------------------------------------
    def point_coef(self) -> np.ndarray:
        return np.concatenate([self.beta, self.b])

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        """(beta, u) drawn jointly from N(mode, cov), as arm::sim does with the Laplace
        curvature, then b = theta * u; 1,000 draws by default."""
        n_draws = 1000 if n_draws is None else n_draws
        mean = np.concatenate([self.beta, self.u])
        if isinstance(self.cov, PrecisionCovariance):
            draws = self.cov.draws(mean, n_draws, rng)  # sparse back-substitution, no dense covariance
        else:
            draws = normal_draws(mean, self.cov, n_draws, rng)
        p = len(self.beta)
        if self.structure.simple:
            draws[:, p:] *= self.lam  # u -> b
        else:
            draws[:, p:] = self.structure.apply(self.theta, draws[:, p:])
        scale = [np.broadcast_to(self.sigma * T, (n_draws,) + T.shape) for T in self.structure.factors(self.theta)]
        return ParameterDraws(draws, scale)

    def problems(self) -> list[str]:
        messages = []
        if not self.info.get("converged", True):
            messages.append(f"the optimizer did not converge ({self.info.get('message')}; largest gradient "
                            f"{self.info.get('max_abs_gradient', float('nan')):.2g}): check the model for "
                            "redundant terms, or compare with another engine.")
        if self.singular:
            messages.append(f"boundary (singular) fit: in {', '.join(self.singular_terms())} a variance is 0 or a "
                            "correlation is +-1 (lme4's isSingular), so those effects are not separately identified. "
                            "Simplify those terms (drop a slope, or the term).")
        return rank_problems(self.cells) + messages + separation_problems(self.cells, self._fitted_eta())

    def _fitted_eta(self) -> np.ndarray:
        """The linear predictor of the fit's own cells, (n_cells,): for random intercepts straight
        from the cells' level codes, else as :meth:`predict` gives it."""
        if not self.structure.simple:
            return self.predict(self.cells.table, type="link")
        starts = np.concatenate([[0], np.cumsum(self.design.n_levels)])[:-1]
        return self.cells.offset + self.cells.X @ self.beta + self.b[self.cells.groups + starts[:, None]].sum(axis=0)

    def saved_state(self) -> tuple[dict, dict]:
        meta = {"objective": self.objective, "info": self.info, "singular_tol": self.singular_tol,
                "sigma": self.sigma, "reml": self.reml}
        arrays = {"theta": self.theta, "beta": self.beta, "u": self.u}
        if isinstance(self.cov, PrecisionCovariance):  # the sparse precision, factorised again on loading
            arrays.update({f"precision.{k}": v for k, v in self.cov.arrays().items()})
        else:
            arrays["cov"] = self.cov
        return meta, arrays

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "MixedFit":
        if "cov" in arrays:
            cov = arrays["cov"]
        else:
            cov = PrecisionCovariance.from_arrays({k[len("precision."):]: v for k, v in arrays.items()
                                                   if k.startswith("precision.")})
        return cls(cells, arrays["theta"], arrays["beta"], arrays["u"], meta["objective"], meta["info"],
                   cov, singular_tol=meta["singular_tol"], sigma=meta["sigma"], reml=meta["reml"])

    def summary(self) -> str:
        """lme4's printed ``summary(merMod)``: the fit criterion (AIC, BIC, logLik, deviance,
        df.resid, or the REML criterion), random effects with variances, sds and correlations,
        fixed effects with SEs and z (or t) values, and the problems."""
        from .summaries import mixed_summary

        return mixed_summary(self)
