"""brms's ``categorical()`` model with random intercepts, as a NumPyro function, and its fit.

brms 2.18.0's default priors for this family (R/priors.R; prior_summary() on the fit agrees): each linear
predictor mu_k has an intercept of the centred predictors ~ student_t(3, 0, 2.5) (prior_fe, line 667, whose
prior def_dprior gives through def_scale_prior.brmsterms, lines 1105-1140: a logit link keeps the default
student_t(3, 0, 2.5)); its coefficients are flat (class "b" takes no prior, line 671); every group sd is
student_t(3, 0, 2.5) truncated at 0 (line 896-897, lb = "0"). Each predictor has its own group effects and sds,
independent across predictors (``(1|g)``, not ``(1|ID|g)``), sampled non-centred as brms does: b = sd z.

The samples carry a leading predictor axis: ``alpha`` (m,), ``beta`` (m, p - 1), ``sigma`` (m, n_terms),
``z`` (m, q).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..fit import ParameterDraws, stacked_names
from .fit import BayesFit
from .model import uncentring

# brms's default prior scale for an intercept and a group sd under a logit link (see the module's notes)
STUDENT_DF, STUDENT_SCALE = 3.0, 2.5


def stacked_model(Xc, offset, has_intercept, cols, term_of_level, n_terms, stats, family, prior_only=False,
                  **unused):
    """brms's categorical() with random intercepts: ``family.n_predictors`` linear predictors."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    m, p = family.n_predictors, Xc.shape[1]
    eta = jnp.broadcast_to(jnp.asarray(offset)[:, None], (len(offset), m))
    if has_intercept:
        alpha = numpyro.sample("alpha", dist.StudentT(STUDENT_DF, 0.0, STUDENT_SCALE).expand([m]).to_event(1))
        eta = eta + alpha
    if p:
        beta = numpyro.sample("beta", dist.ImproperUniform(dist.constraints.real, (), (m, p)))
        eta = eta + jnp.asarray(Xc) @ beta.T
    if n_terms:
        half_t = dist.FoldedDistribution(dist.StudentT(STUDENT_DF, 0.0, STUDENT_SCALE))
        sigma = numpyro.sample("sigma", half_t.expand([m, n_terms]).to_event(2))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([m, len(term_of_level)]).to_event(2))
        b = sigma[:, jnp.asarray(term_of_level)] * z
        eta = eta + b[:, jnp.asarray(cols)].sum(axis=1).T  # (n_cells, m)
    if not prior_only:
        family.numpyro_likelihood(stats, eta)


@dataclass(frozen=True, repr=False)
class StackedBayesFit(BayesFit):
    """Posterior draws of brms's categorical() model: per linear predictor, its fixed effects, group effects
    and sds; the Fit protocol's coefficients stacked predictor-major."""

    kind = "bayes-stacked"

    @property
    def m(self) -> int:
        return self.family.n_predictors

    def _blocks(self, name: str, width: int) -> np.ndarray:
        """Draws of a site with a predictor axis, (n_draws, m, width); zeros for an absent site."""
        if name not in self.samples:
            return np.zeros((self.n_draws, self.m, width))
        return self._flat(name).reshape(self.n_draws, self.m, width)

    def coef_draws(self) -> np.ndarray:
        """Draws of each predictor's fixed effects as reported (uncentred intercept), (n_draws, m, p)."""
        names = self.design.fixed_names
        has_intercept = "(Intercept)" in names
        alpha = self._blocks("alpha", 1)[:, :, :int(has_intercept)]
        beta = self._blocks("beta", len(names) - int(has_intercept))
        return np.concatenate([alpha, beta], axis=2) @ uncentring(names, self.xbar)

    def b_draws(self) -> np.ndarray:
        """Draws of each predictor's group effects, (n_draws, m, q)."""
        q = int(self.design.n_random)
        if not q:
            return np.zeros((self.n_draws, self.m, 0))
        term = np.repeat(np.arange(len(self.design.group_terms)), self.design.n_levels)
        return self._blocks("sigma", len(self.design.group_terms))[:, :, term] * self._blocks("z", q)

    def fixef(self) -> pd.Series:
        """Posterior medians of the fixed effects, "<category>:<name>"."""
        return pd.Series(np.median(self.coef_draws(), axis=0).ravel(),
                         index=stacked_names(self.design.fixed_names, self.family))

    def varcorr(self) -> pd.DataFrame:
        """Posterior medians of each predictor's group sds (term, predictor, sd)."""
        sd = np.median(self._blocks("sigma", len(self.design.group_terms)), axis=0)
        return pd.DataFrame([(name, k, sd[i, t]) for i, k in enumerate(self.family.predictor_names)
                             for t, name in enumerate(self.design.group_names)], columns=["term", "predictor", "sd"])

    def summary(self) -> str:
        draws = self.coef_draws().reshape(self.n_draws, -1)
        mad = 1.4826 * np.median(np.abs(draws - np.median(draws, axis=0)), axis=0)
        fixed = pd.DataFrame({"Median": self.fixef().to_numpy(), "MAD_SD": mad}, index=self.fixef().index)
        return "\n".join([
            f"Bayesian multinomial-logit model [{self.family.name}], brms's categorical() priors",
            f" formula: {self.design.formula.text}   reference category: {self.family.reference}",
            f" draws: {self.n_draws} ({self.engine.chains} chains), divergences: {self.divergences}", "",
            "Fixed effects:", fixed.to_string(float_format=lambda v: f"{v:.3f}"), "",
            "Group sds (posterior medians):", self.varcorr().to_string(index=False)])

    # -- the Fit protocol --------------------------------------------------------
    def point_coef(self) -> np.ndarray:
        return self._stacked().mean(axis=0)

    def _stacked(self) -> np.ndarray:
        return np.concatenate([self.coef_draws(), self.b_draws()], axis=2).reshape(self.n_draws, -1)

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        """The posterior draws, chains one after another; per predictor, its terms' sds."""
        sigma = self._blocks("sigma", len(self.design.group_terms))[:n_draws]
        scale = [[sigma[:, k, t, None, None] for t in range(sigma.shape[2])] for k in range(self.m)]
        return ParameterDraws(self._stacked()[:n_draws], scale)
