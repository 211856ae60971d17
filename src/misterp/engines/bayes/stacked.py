"""brms's ``categorical()`` and ``cumulative()`` models with random intercepts, as a NumPyro function, and
their fit.

brms 2.18.0's default priors for these families (R/priors.R; prior_summary() on the fits agrees): every
intercept of the centred predictors (a categorical predictor's, or an ordinal outcome's cut point) ~
student_t(3, 0, 2.5) (prior_fe, line 667, and prior_thres for the cut points; def_scale_prior.brmsterms, lines
1105-1140, keeps that default under a logit link); the coefficients are flat (class "b" takes no prior, line
671); every group sd is student_t(3, 0, 2.5) truncated at 0 (lines 896-897, lb = "0"). A categorical outcome's
predictors each have their own group effects and sds, independent across predictors (``(1|g)``, not
``(1|ID|g)``); an ordinal outcome's cut points are ordered (Stan's ``ordered``) and its predictors share the
slopes and effects: eta_j = theta_j - x_c'beta - z'b. Effects are sampled non-centred, as brms does: b = sd z.

The samples: ``alpha`` (m,) intercepts or cut points, ``beta`` ((m, p - 1) per predictor, or (p - 1,) shared),
``sigma`` ((m, n_terms) or (n_terms,)), ``z`` ((m, q) or (q,)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..fit import ParameterDraws
from ..stacked import Layout
from .fit import BayesFit

# brms's default prior scale for an intercept, a cut point and a group sd under a logit link (see above)
STUDENT_DF, STUDENT_SCALE = 3.0, 2.5


def stacked_pilot(cells, data: dict) -> dict:
    """The whitened coordinates' pieces for :func:`stacked_model`: the layout's design A (m, n_cells, d) with
    unit sds, and H and r = H x^ + g of the log-likelihood's expansion at the laplace engine's mode x^ (its
    fixed part and group effects), as :mod:`misterp.engines.whitening` explains for one predictor."""
    import warnings

    from ...errors import MisterpWarning
    from ..stacked import stacked_fit

    layout = Layout(cells)
    A = layout.design(cells.X, cells.design.random_matrix(cells.table), np.ones(layout.n_sd))
    with warnings.catch_warnings():  # the pilot's problems are not the posterior's
        warnings.simplefilter("ignore", MisterpWarning)
        pilot = stacked_fit(cells)
    x_hat = np.concatenate([pilot.fixed, pilot.b])
    _, w, score, _ = cells.family.working(cells.stats, cells.offset[:, None] + A.predictors(x_hat))
    d = A.width
    H = A.gram(w, np.zeros(d))
    r = H @ x_hat + A.score(score)
    # the centred intercepts (cut points) as rows of x: alpha_c = C x (brms's priors are on them)
    xbar = np.asarray(data["xbar"], float)
    slopes = [i for i in range(layout.p) if i != layout.intercept]
    C, intercepts = np.zeros((layout.m, d)), []
    for j in range(layout.m):
        if layout.shared:  # theta_c = theta - xbar'beta
            C[j, j], C[j, layout.m:layout.n_fixed] = 1.0, -xbar
            intercepts.append(j)
        elif layout.intercept is not None:  # alpha_c = alpha + xbar'beta
            C[j, j * layout.p + layout.intercept] = 1.0
            C[j, [j * layout.p + i for i in slopes]] = xbar
            intercepts.append(j * layout.p + layout.intercept)
    if not intercepts:  # no intercept: no prior but the flat one on the fixed part
        C = np.zeros((0, d))
    # the likelihood's design, dense for JAX: (m, n_cells, d)
    return {"A": A.dense(), "H": H, "r": r, "C": C, "intercepts": np.array(intercepts, dtype=int), "layout": layout}


def family_priors(style: str, intercept_scale: float, coef_scale, sd_scale: float):
    """(intercept or cut point prior, the slopes' normal sds or None for flat, the group sds' prior) of
    ``style``: "brms" (its defaults, see above) or "rstanarm" (its scaled ones: normal(0, intercept_scale),
    normal(0, coef_scale / sd(x)) and sd_scale * gamma(1, 1), decov's for one effect)."""
    import numpyro.distributions as dist

    if style == "brms":
        student = dist.StudentT(STUDENT_DF, 0.0, STUDENT_SCALE)
        return student, None, dist.FoldedDistribution(student)
    if style == "rstanarm":
        return dist.Normal(0.0, intercept_scale), np.asarray(coef_scale, float), dist.Exponential(1.0 / sd_scale)
    raise ValueError(f"the priors of a categorical or ordinal outcome are 'brms' or 'rstanarm', not {style!r}")


def _slopes(layout, x):
    """The slopes in x, (m, p - 1) per predictor or (p - 1,) shared (JAX)."""
    import jax.numpy as jnp

    if layout.shared:
        return x[layout.m:layout.n_fixed]
    slopes = [i for i in range(layout.p) if i != layout.intercept]
    return jnp.reshape(x[:layout.n_fixed], (layout.m, layout.p))[:, slopes]


def _whitened_stacked(whitened: dict, n_terms: int, shared: bool, priors):
    """The fixed part and group effects in whitened coordinates (x = P^-1 r + L^-T eps, P = H + diag(d)),
    their priors and the change of variables' Jacobian; returns x, the centred intercepts and the sds."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from ..whitening import whiten

    intercept, coef_scale, sd_prior = priors
    layout, C = whitened["layout"], jnp.asarray(whitened["C"])
    lead = () if shared else (layout.m,)
    sigma = None
    # d: the prior's scale for the intercepts (cut points) and slopes (none for flat ones), 1/sd^2 for effects
    d = jnp.zeros(layout.n_fixed).at[jnp.asarray(whitened["intercepts"])].set(float(intercept.scale) ** -2.0)
    if coef_scale is not None and len(coef_scale):
        others = np.setdiff1d(np.arange(layout.n_fixed), whitened["intercepts"])
        d = d.at[jnp.asarray(others)].set(jnp.asarray(np.tile(coef_scale, len(others) // len(coef_scale))) ** -2.0)
    if n_terms:
        sigma = numpyro.sample("sigma", sd_prior.expand(lead + (n_terms,)).to_event(len(lead) + 1))
        d = jnp.concatenate([d, _scales(layout, sigma) ** -2.0])
    eps = numpyro.sample("eps", dist.ImproperUniform(dist.constraints.real, (), (len(whitened["r"]),)))
    x, log_det = whiten(d, eps, jnp.asarray(whitened["H"]), jnp.asarray(whitened["r"]))
    centred = C @ x
    prior = jnp.sum(intercept.log_prob(centred)) - log_det
    if coef_scale is not None and len(coef_scale):
        prior = prior + jnp.sum(dist.Normal(0.0, jnp.asarray(coef_scale)).log_prob(_slopes(layout, x)))
    if n_terms:
        b = x[layout.n_fixed:]
        prior = prior + jnp.sum(dist.Normal(0.0, _scales(layout, sigma)).log_prob(b))
    if shared:  # ordered cut points: the likelihood has no value elsewhere
        prior = prior + jnp.where(jnp.all(jnp.diff(centred) > 0), 0.0, -jnp.inf)
    numpyro.factor("effects", prior)
    return x, centred, sigma


def _scales(layout, sigma):
    """Each group effect's sd, (n_u,), from the sds (m, n_terms) or (n_terms,) (JAX)."""
    import jax.numpy as jnp

    return jnp.reshape(sigma, (-1, layout.n_terms))[:, jnp.asarray(layout.term_of_level)].ravel()


def stacked_model(Xc, offset, has_intercept, cols, term_of_level, n_terms, stats, family, prior_only=False,
                  whitened=None, prior_style="brms", intercept_scale=2.5, coef_scale=None, sd_scale=1.0, **unused):
    """brms's categorical() (separate predictors) or cumulative() (shared slopes) with random intercepts,
    under ``prior_style``'s priors (:func:`family_priors`); non-centred (b = sd z), or in whitened coordinates
    given ``whitened`` (:func:`stacked_pilot`)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    m, p, shared = family.n_predictors, Xc.shape[1], family.shares_slopes
    priors = family_priors(prior_style, intercept_scale, coef_scale, sd_scale)
    intercept, slope_scale, sd_prior = priors
    if whitened is not None:
        x, centred, sigma = _whitened_stacked(whitened, n_terms, shared, priors)
        layout = whitened["layout"]
        # the sites the fit reads: centred intercepts, slopes, z = b / sd
        numpyro.deterministic("alpha", centred)
        if p:
            numpyro.deterministic("beta", _slopes(layout, x))
        if n_terms:
            z = x[layout.n_fixed:] / _scales(layout, sigma)
            numpyro.deterministic("z", z if shared else jnp.reshape(z, (m, -1)))
        if not prior_only:
            A = jnp.asarray(whitened["A"])
            family.numpyro_likelihood(stats, jnp.asarray(offset)[:, None] + jnp.einsum("jnd,d->nj", A, x))
        return
    lead = () if shared else (m,)  # a categorical outcome's parameters have a predictor axis
    if shared:  # ordered cut points under independent priors
        alpha = numpyro.sample("alpha", dist.ImproperUniform(dist.constraints.ordered_vector, (), (m,)))
        numpyro.factor("alpha_prior", jnp.sum(intercept.log_prob(alpha)))
    elif has_intercept:
        alpha = numpyro.sample("alpha", intercept.expand([m]).to_event(1))
    else:
        alpha = jnp.zeros(m)
    slope = jnp.zeros(lead + (len(offset),))
    if p:
        flat = dist.ImproperUniform(dist.constraints.real, (), lead + (p,))
        beta = numpyro.sample("beta", flat if slope_scale is None else dist.Normal(
            0.0, jnp.broadcast_to(jnp.asarray(slope_scale), lead + (p,))).to_event(len(lead) + 1))
        slope = slope + beta @ jnp.asarray(Xc).T
    if n_terms:
        sigma = numpyro.sample("sigma", sd_prior.expand(lead + (n_terms,)).to_event(len(lead) + 1))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand(lead + (len(term_of_level),)).to_event(len(lead) + 1))
        b = sigma[..., jnp.asarray(term_of_level)] * z
        slope = slope + b[..., jnp.asarray(cols)].sum(axis=-2)
    if shared:
        eta = alpha[None, :] - slope[:, None]
    else:
        eta = jnp.asarray(offset)[:, None] + alpha[None, :] + slope.T
    if not prior_only:
        family.numpyro_likelihood(stats, eta)


@dataclass(frozen=True, repr=False)
class StackedBayesFit(BayesFit):
    """Posterior draws of brms's categorical() or cumulative() model; the Fit protocol's coefficients are
    :class:`misterp.engines.stacked.Layout`'s stacked blocks, as the laplace engine's."""

    kind = "bayes-stacked"

    @property
    def layout(self) -> Layout:
        return Layout(self.cells)

    def _site(self, name: str, shape: tuple) -> np.ndarray:
        """Draws of a site, (n_draws, *shape); zeros for an absent site."""
        if name not in self.samples:
            return np.zeros((self.n_draws,) + shape)
        return self._flat(name).reshape((self.n_draws,) + shape)

    def fixed_draws(self) -> np.ndarray:
        """Draws of the fixed part in the layout's order, intercepts and cut points uncentred, (n_draws, n_fixed)."""
        layout, xbar = self.layout, np.asarray(self.xbar, float)
        slopes = layout.p - int(layout.intercept is not None)
        if layout.shared:  # eta_j = theta_j - (x - xbar)'beta: the cut point of x is theta_j + xbar'beta
            beta = self._site("beta", (slopes,))
            return np.concatenate([self._site("alpha", (layout.m,)) + (beta @ xbar)[:, None], beta], axis=1)
        beta = self._site("beta", (layout.m, slopes))
        blocks = np.zeros((self.n_draws, layout.m, layout.p))
        others = [i for i in range(layout.p) if i != layout.intercept]
        blocks[:, :, others] = beta
        if layout.intercept is not None:
            blocks[:, :, layout.intercept] = self._site("alpha", (layout.m,)) - beta @ xbar
        return blocks.reshape(self.n_draws, -1)

    def b_draws(self) -> np.ndarray:
        """Draws of the group effects in the layout's order, (n_draws, n_u)."""
        layout = self.layout
        if not layout.q:
            return np.zeros((self.n_draws, 0))
        lead = () if layout.shared else (layout.m,)
        sigma = self._site("sigma", lead + (layout.n_terms,))
        return (sigma[..., layout.term_of_level] * self._site("z", lead + (layout.q,))).reshape(self.n_draws, -1)

    def sd_draws(self) -> np.ndarray:
        return self._site("sigma", (self.layout.n_sd,))

    def fixef(self) -> pd.Series:
        """Posterior medians of the fixed part, named as the laplace engine's."""
        return pd.Series(np.median(self.fixed_draws(), axis=0), index=self.layout.fixed_names(self.family))

    def varcorr(self) -> pd.DataFrame:
        """Posterior medians of the group sds (term, predictor, sd)."""
        names = self.layout.sd_names(self.family, self.design.group_names)
        sd = np.median(self.sd_draws(), axis=0)
        return pd.DataFrame([(t, k, s) for (t, k), s in zip(names, sd)], columns=["term", "predictor", "sd"])

    def summary(self) -> str:
        draws = self.fixed_draws()
        mad = 1.4826 * np.median(np.abs(draws - np.median(draws, axis=0)), axis=0)
        fixed = pd.DataFrame({"Median": self.fixef().to_numpy(), "MAD_SD": mad}, index=self.fixef().index)
        model = "cumulative()" if self.family.shares_slopes else "categorical()"
        return "\n".join([
            f"Bayesian {self.family.name} model, brms's {model} priors",
            f" formula: {self.design.formula.text}   categories: {', '.join(self.family.categories)}",
            f" draws: {self.n_draws} ({self.engine.chains} chains), divergences: {self.divergences}", "",
            "Fixed effects:", fixed.to_string(float_format=lambda v: f"{v:.3f}"), "",
            "Group sds (posterior medians):", self.varcorr().to_string(index=False)])

    # -- the Fit protocol --------------------------------------------------------
    def _stacked(self) -> np.ndarray:
        return self.layout.stacked(self.fixed_draws(), self.b_draws())

    def point_coef(self) -> np.ndarray:
        return self._stacked().mean(axis=0)

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        """The posterior draws, chains one after another; per predictor, its terms' sds (shared effects enter
        every predictor with sign -1)."""
        layout = self.layout
        sigma = self.sd_draws()[:n_draws].reshape(-1, 1 if layout.shared else layout.m, layout.n_terms)
        sign = -1.0 if layout.shared else 1.0
        scale = [[sign * sigma[:, 0 if layout.shared else j, t, None, None] for t in range(layout.n_terms)]
                 for j in range(layout.m)]
        return ParameterDraws(self._stacked()[:n_draws], scale)
