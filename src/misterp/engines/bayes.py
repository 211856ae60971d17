"""Bayesian multilevel regression with rstanarm's ``stan_glmer`` defaults, on cells.

Priors (rstanarm 2.21.3's defaults, read from its source, tag v2.21.3; each can be changed):

- intercept of the centred predictors ~ normal(0, 2.5); the reported intercept
  is that one minus x-bar' beta (continuous.stan:263-265, data_block.R:45-63);
- coefficient k ~ normal(0, 2.5 / sd(x_k)), with means and sds over
  respondents (each cell weighted by its respondents, N - 1 in the sd;
  stan_glm.fit.R:255-269);
- a gaussian outcome scales by sd(y) (N - 1): the intercept's prior is
  normal(mean(y), 2.5 sd(y)) (stan_glm.fit.R:147-153, 246-251), the
  coefficients' 2.5 sd(y) / sd(x_k), and the residual sd is
  sigma = sd(y) * exponential(1) (stan_glm.fit.R:252-253, continuous.stan:110-116);
  binomial and poisson priors are not scaled by the outcome;
- decov (regularization, concentration, shape, scale 1): per term
  tau ~ gamma(1, 1); a random intercept's sd is scale * tau, times sigma for
  a gaussian (continuous.stan:119-122, common_functions.stan:31-32; not for
  binomial or poisson, binomial.stan:43, count.stan:64); a term with K effects
  has trace K (scale tau sigma)^2, split into variances by a Dirichlet(1)
  simplex, and LKJ(1) correlations (common_functions.stan:36-65, 144-160).

Sampling: NumPyro's NUTS, 4 chains x (1,000 warmup + 1,000 draws),
target acceptance 0.95, maximum tree depth 15, an explicit seed; float64
unless ``float64=False``. rstanarm samples b = sd * z with z ~ N(0, 1)
(``parameterization="noncentred"``); by default we sample the same posterior
in whitened coordinates built from a pilot Laplace fit (:mod:`.whitening`),
which removes the funnels and ridges that make rstanarm's runs slow and
divergent. On the CPU the chains run side by side, one XLA device each.

Example
-------
>>> import pandas as pd, warnings
>>> from misterp import Frame, MisterpWarning, Survey, cell_draws, poststratify, prepare
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5})
>>> frame = Frame(pd.DataFrame({"g": list("abcd"), "N": [1, 2, 3, 4]}), "N")
>>> cells, _ = prepare(Survey(data, "y"), frame, "y ~ (1|g)")
>>> with warnings.catch_warnings():  # 2 x 100 draws: too few for the ESS check, enough for an example
...     warnings.simplefilter("ignore", MisterpWarning)
...     fit = BayesEngine(chains=2, warmup=100, draws=100, seed=1, progress=False).fit(cells)
>>> fit.samples["sigma"].shape
(2, 100, 1)
>>> poststratify(cell_draws(fit, frame), frame).table["interval"].item()
'posterior central 95%'
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import MisterpInputError, MisterpWarning
from ..model.cells import Cells
from .diagnostics import summarize
from .fit import Fit, ParameterDraws, correlations, rank_problems, varcorr_frame
from .jax_config import ensure_jax


@dataclass(frozen=True)
class Priors:
    """rstanarm's default priors; the MRP Case Studies use ``Priors(1.0, 2.5, 0.5)``.

    Attributes
    ----------
    coef_scale : float
        normal(0, coef_scale / sd(x_k)) on each coefficient (autoscaled).
    intercept_scale : float
        normal(0, intercept_scale) on the intercept of the centred predictors.
    sd_scale : float
        Each group sd is sd_scale * tau, tau ~ gamma(1, 1).
    """

    coef_scale: float = 2.5
    intercept_scale: float = 2.5
    sd_scale: float = 1.0


# NumPyro's progress bars call back to Python, and a program with callbacks
# cannot come from JAX's persistent cache: about 3 s of compiling in every
# process. Below this many cells x effects a run takes seconds, so it gets a
# one-line note instead (article model, whole process: 2.5 s instead of 6.3 s).
PROGRESS_MIN_WORK = 20_000
# Above this much work per gradient (cells x effects) a fit first estimates its own run time
# (one extra compile, a second or two) and warns past LONG_RUN_SECONDS.
ESTIMATE_MIN_WORK = 5_000_000
LONG_RUN_SECONDS = 3600.0
# A NUTS step costs more than its gradient (tree building, the chains' bookkeeping): 4 chains x 2,000
# iterations of a q = 1,006 model took 410 s where 127 steps x the timed gradient gave 141 s
NUTS_OVERHEAD = 2.5


def _typical_steps(whitened: bool) -> int:
    """Leapfrog steps per iteration to expect: whitened coordinates took 15-31 on the CCES models,
    rstanarm's non-centred ones 31-175 (bench/RESULTS.md); the upper ends, as a long run's guide."""
    return 31 if whitened else 127


@dataclass(frozen=True)
class BayesEngine:
    """NUTS settings; the defaults are rstanarm's."""

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    adapt_delta: float = 0.95
    max_tree_depth: int = 15
    priors: Priors = field(default_factory=Priors)
    seed: int = 0
    progress: bool = True
    prior_only: bool = False  # rstanarm's prior_PD: sample the priors, ignore the outcome
    # float32 rounds the log density by about 1e-7 of its size (1e-3 on all 59,810 CCES
    # rows), far below the energy errors NUTS tolerates, but it paid only non-centred
    # (1.4x); whitened coordinates factor P(sigma), badly conditioned when a sd nears 0.
    # The precision is JAX's process-wide x64 setting (engines/jax_config.py).
    float64: bool = True
    # "auto": on the CPU, each chain on its own XLA host device ("parallel"), so
    # a chain never waits for another's longer trajectory (3x faster than
    # "vectorized" on the CCES model, bench/RESULTS.md), or "sequential" when JAX
    # already started with fewer devices; on a GPU, "vectorized".
    chain_method: str = "auto"

    remedy: bool = True  # rerun once at adapt_delta 0.99 when the first run diverges
    # "whitened" (engines/whitening.py) samples the same posterior in coordinates
    # that a pilot Laplace fit makes near standard normal; "noncentred" is
    # rstanarm's b = sigma * z. "auto": whitened up to MAX_WHITENED (200) effects.
    parameterization: str = "auto"

    def fit(self, cells: Cells) -> "BayesFit":
        """Sample the posterior; warn (with the remedy) where a diagnostic fails.

        With ``remedy``, a run with divergent transitions is rerun once at
        adapt_delta 0.99 (Stan's standard advice, automated), and the fit says
        so in ``remedy_note``.
        """
        from .whitening import pilot_expansion

        data = _model_data(cells, self.priors)
        data["prior_only"] = self.prior_only
        whitened = self._whitened(data)
        if whitened:  # the pilot fit serves the remedy's rerun too
            data.update(pilot_expansion(cells, data, self.prior_only))
        if len(data["offset"]) * _n_effects(data) >= ESTIMATE_MIN_WORK:
            self._warn_if_long(data, whitened)
        fit = self._sample(cells, data, self.adapt_delta)
        if self.remedy and fit.divergences and self.adapt_delta < 0.99 and not self.prior_only:
            retry = self._sample(cells, data, 0.99)
            note = (f"{fit.divergences} divergent transitions at adapt_delta {self.adapt_delta}: reran at "
                    f"adapt_delta 0.99, which left {retry.divergences}")
            fit = replace(retry, remedy_note=note)
        fit.warn_problems()
        return fit

    def _warn_if_long(self, data: dict, whitened: bool) -> None:
        """Time the model's gradient on this machine and warn, naming the laplace engine, when the
        run it implies would take more than an hour."""
        seconds = self.expected_seconds(data, whitened)
        if seconds > LONG_RUN_SECONDS:
            warnings.warn(
                f"this model would take about {seconds / 3600:.1f} hours to sample here ({self.chains} chains x "
                f"{self.warmup + self.draws} iterations x about {_typical_steps(whitened)} leapfrog steps, at the "
                f"gradient's measured cost): the laplace engine (--engine laplace) fits it in seconds to minutes, "
                f"with the normal approximation's intervals. Fewer --draws and --warmup shorten the run.",
                MisterpWarning, stacklevel=3)

    def expected_seconds(self, data: dict, whitened: bool) -> float:
        """Estimated sampling time: the log density's gradient timed at the start (after compiling), times
        the typical leapfrog steps per iteration (bench/bayes_scale.py), iterations and chains, over the
        chains that run side by side."""
        import time

        ensure_jax(self.float64, self.chains)
        import jax
        from numpyro.infer.util import initialize_model

        info = initialize_model(jax.random.PRNGKey(self.seed), _model, model_kwargs=data)
        grad = jax.jit(jax.grad(info.potential_fn))
        position = info.param_info.z
        jax.block_until_ready(grad(position))  # compile
        start, calls = time.perf_counter(), 0
        while calls < 5 or (time.perf_counter() - start < 0.2 and calls < 200):
            jax.block_until_ready(grad(position))
            calls += 1
        per_gradient = (time.perf_counter() - start) / calls
        # parallel chains share the machine's cores
        side_by_side = min(self.chains, os.cpu_count() or 1) if self._chain_method() == "parallel" else 1
        rounds = self.chains / side_by_side
        return NUTS_OVERHEAD * per_gradient * _typical_steps(whitened) * (self.warmup + self.draws) * rounds

    def _sample(self, cells: Cells, data: dict, adapt_delta: float) -> "BayesFit":
        ensure_jax(self.float64, self.chains)
        import jax
        from numpyro.infer import MCMC, NUTS
        from threadpoolctl import threadpool_limits

        kernel = NUTS(_model, target_accept_prob=adapt_delta, max_tree_depth=self.max_tree_depth)
        method = self._chain_method()
        bars = self.progress and len(data["offset"]) * _n_effects(data) >= PROGRESS_MIN_WORK
        if self.progress and not bars and sys.stderr.isatty():
            print(f"sampling {self.chains} chains x {self.warmup + self.draws} iterations ...", file=sys.stderr)
        mcmc = MCMC(kernel, num_warmup=self.warmup, num_samples=self.draws, num_chains=self.chains,
                    chain_method=method, progress_bar=bars)
        # chains side by side each call LAPACK; a multi-threaded BLAS under each
        # oversubscribes the cores (5x slower triangular solves)
        with threadpool_limits(1 if method == "parallel" else None, user_api="blas"):
            mcmc.run(jax.random.PRNGKey(self.seed), extra_fields=("diverging", "num_steps"), **data)
            draws = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))  # JAX runs asynchronously
        samples = {k: np.asarray(v, dtype=np.float64) for k, v in draws.items() if k != "eps"}
        extra = mcmc.get_extra_fields(group_by_chain=True)
        diverging = np.asarray(extra["diverging"])
        depth_hits = np.asarray(extra["num_steps"]) >= 2 ** self.max_tree_depth - 1
        return BayesFit(cells, samples, data["xbar"], int(diverging.sum()), int(depth_hits.sum()),
                        float(np.asarray(extra["num_steps"]).mean()), replace(self, adapt_delta=adapt_delta))

    def _whitened(self, data: dict) -> bool:
        from .whitening import MAX_WHITENED

        if self.parameterization not in ("auto", "whitened", "noncentred"):
            raise ValueError("parameterization must be 'auto', 'whitened' or 'noncentred', "
                             f"not {self.parameterization!r}")
        if data["slopes"] is not None:
            if self.parameterization == "whitened":
                raise MisterpInputError(
                    "Whitened coordinates take random intercepts only; a model with varying slopes samples in "
                    "rstanarm's own (--parameterization noncentred, the default for it).")
            return False
        return self.parameterization == "whitened" or (
            self.parameterization == "auto" and _n_effects(data) <= MAX_WHITENED)

    def _chain_method(self) -> str:
        if self.chain_method != "auto":
            return self.chain_method
        import jax

        if jax.default_backend() != "cpu":
            return "vectorized"
        # on a CPU, vmapped chains gain little and wait for each other's longest
        # trajectory; with too few host devices, one after another is faster
        # (whitened CCES model, one device: 31.8 s sequential, 49.0 s vectorized)
        return "parallel" if self.chains > 1 and jax.local_device_count() >= self.chains else "sequential"


def _n_effects(data: dict) -> int:
    """Intercept, coefficients and group effects: the length of the whitened vector."""
    return int(data["has_intercept"]) + data["Xc"].shape[1] + len(data["term_of_level"])


def _model_data(cells: Cells, priors: Priors) -> dict:
    """Arrays for the NumPyro model: centred predictors, prior scales, cell statistics.

    Means and sds of the predictors are over respondents: each cell weighs
    its respondent count.
    """
    names = cells.design.fixed_names
    has_intercept = "(Intercept)" in names
    X = cells.X[:, [i for i, n in enumerate(names) if n != "(Intercept)"]]
    n = cells.family.count(cells.stats)
    total = n.sum()
    # rstanarm centres a gaussian's intercept prior on mean(y) and scales every prior by sd(y)
    scale = cells.family.outcome_scale(cells.stats)
    y_mean, y_sd = scale if scale else (0.0, 1.0)
    xbar = (n @ X) / total if X.shape[1] else np.zeros(0)
    var = (n @ (X - xbar) ** 2) / max(total - 1, 1) if X.shape[1] else np.zeros(0)
    sd = np.sqrt(var)
    sd = np.where(sd > 0, sd, 1.0)
    design = cells.design
    sizes = design.n_levels
    starts = np.concatenate([[0], np.cumsum(sizes)])
    data = {
        "Xc": X - xbar, "xbar": xbar, "offset": cells.offset, "has_intercept": has_intercept,
        "coef_scale": priors.coef_scale * y_sd / sd, "intercept_scale": priors.intercept_scale * y_sd,
        "intercept_loc": y_mean, "aux_scale": y_sd if scale else None,
        "sd_scale": priors.sd_scale, "cols": cells.groups + starts[:-1, None],
        "term_of_level": np.repeat(np.arange(len(sizes)), sizes), "n_terms": len(sizes),
        "stats": cells.stats, "family": cells.family, "slopes": None,
    }
    if np.any(design.n_effects > 1) or not all(g.intercept for g in design.group_terms):
        data["slopes"] = _slope_data(cells)
        data["term_of_level"] = np.zeros(design.n_random, dtype=int)  # the effects' count, for _n_effects
    return data


def _slope_data(cells: Cells) -> dict:
    """Terms with effects beyond an intercept: each cell's Z entries as (columns, values), each
    (n_entries, n_cells), and every term's effects and levels, for decov's blocks."""
    design = cells.design
    cols, vals = design.random_entries(cells.table)
    return {"cols": cols.T, "vals": vals.T, "n_effects": tuple(int(k) for k in design.n_effects),
            "n_levels": tuple(int(j) for j in design.n_levels)}


def _model(Xc, xbar, offset, has_intercept, coef_scale, intercept_scale, intercept_loc, aux_scale, sd_scale, cols,
           term_of_level, n_terms, stats, family, slopes=None, prior_only=False, H=None, r=None):
    """rstanarm's model; effects non-centred (b = sigma z), or whitened when H and r are given.

    A family with an outcome scale (gaussian) has a residual sd ``aux`` =
    sd(y) * Exponential(1), and decov multiplies its group sds by it.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    aux = 1.0
    if aux_scale is not None:
        aux = numpyro.deterministic("aux", aux_scale * numpyro.sample("aux_unscaled", dist.Exponential(1.0)))
    if slopes is not None:
        alpha = numpyro.sample("alpha", dist.Normal(intercept_loc, intercept_scale)) if has_intercept else 0.0
        beta = numpyro.sample("beta", dist.Normal(0.0, jnp.asarray(coef_scale))) if Xc.shape[1] else None
        b = _decov_effects(slopes, sd_scale, aux)
        eta = jnp.asarray(offset) + alpha + (jnp.asarray(Xc) @ beta if Xc.shape[1] else 0.0)
        eta = eta + (b[jnp.asarray(slopes["cols"])] * jnp.asarray(slopes["vals"])).sum(axis=0)
        if not prior_only:
            family.numpyro_likelihood(stats, eta, dispersion=aux ** 2)
        return
    sigma = None
    if n_terms:
        tau = numpyro.sample("tau", dist.Gamma(jnp.ones(n_terms), 1.0))
        sigma = numpyro.deterministic("sigma", sd_scale * tau * aux)
    if H is None:
        alpha = numpyro.sample("alpha", dist.Normal(intercept_loc, intercept_scale)) if has_intercept else 0.0
        beta = numpyro.sample("beta", dist.Normal(0.0, jnp.asarray(coef_scale))) if Xc.shape[1] else None
        if n_terms:
            z = numpyro.sample("z", dist.Normal(jnp.zeros(len(term_of_level)), 1.0))
            b = sigma[jnp.asarray(term_of_level)] * z
    else:
        from .whitening import whitened_effects

        alpha, beta, b = whitened_effects(Xc.shape[1], has_intercept, coef_scale, intercept_scale, intercept_loc,
                                           sigma, term_of_level, H, r)
    eta = jnp.asarray(offset) + alpha
    if Xc.shape[1]:
        eta = eta + jnp.asarray(Xc) @ beta
    if n_terms:
        eta = eta + b[jnp.asarray(cols)].sum(axis=0)
    if not prior_only:
        family.numpyro_likelihood(stats, eta, dispersion=aux ** 2)


def _decov_effects(slopes: dict, sd_scale: float, aux):
    """rstanarm's decov prior, non-centred: per term, tau ~ gamma(1, 1) sets the trace
    K (sd_scale tau aux)^2, a simplex pi ~ Dirichlet(1) splits it into variances, the
    correlations' Cholesky factor is LKJ(1); a level's effects are T z, T = diag(sqrt(pi trace)) C,
    z ~ N(0, I). Stores each T as ``factor_<k>`` and the effects as ``b``."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    n_terms = len(slopes["n_effects"])
    tau = numpyro.sample("tau", dist.Gamma(jnp.ones(n_terms), 1.0))
    z = numpyro.sample("z", dist.Normal(jnp.zeros(sum(K * J for K, J in zip(slopes["n_effects"], slopes["n_levels"]))),
                                        1.0))
    pieces, start = [], 0
    for k, (K, J) in enumerate(zip(slopes["n_effects"], slopes["n_levels"])):
        scale = sd_scale * tau[k] * aux
        if K == 1:
            T = jnp.reshape(scale, (1, 1))
        else:
            pi = numpyro.sample(f"simplex_{k}", dist.Dirichlet(jnp.ones(K)))
            C = numpyro.sample(f"corr_{k}", dist.LKJCholesky(K, 1.0))
            T = jnp.sqrt(pi * K)[:, None] * scale * C
        numpyro.deterministic(f"factor_{k}", T)
        pieces.append((z[start:start + J * K].reshape(J, K) @ T.T).ravel())
        start += J * K
    return numpyro.deterministic("b", jnp.concatenate(pieces))


@dataclass(frozen=True, repr=False)
class BayesFit(Fit):
    """Posterior draws of a stan_glmer-equivalent model.

    Attributes
    ----------
    samples : dict of arrays (chains, draws, ...)
        ``alpha`` (intercept of centred predictors), ``beta``, ``tau``,
        ``sigma`` (group sds), ``z`` (standardised effects).
    divergences, depth_hits : int
    mean_steps : float
        Mean leapfrog steps per iteration.
    """

    cells: Cells
    samples: dict
    xbar: np.ndarray
    divergences: int
    depth_hits: int
    mean_steps: float
    engine: BayesEngine
    remedy_note: str = ""

    kind = "bayes"
    method = "posterior"
    interval = "quantile"
    unseen = "term"
    point = "mean"

    def _flat(self, name: str) -> np.ndarray:
        value = self.samples[name]
        return value.reshape((-1,) + value.shape[2:])

    @property
    def n_draws(self) -> int:
        """Chains x draws."""
        first = next(iter(self.samples.values()))
        return first.shape[0] * first.shape[1]

    def _sigma(self) -> np.ndarray:
        """Draws of the group sds, (n_draws, n_terms); no columns for a model without terms."""
        return self._flat("sigma") if "sigma" in self.samples else np.zeros((self.n_draws, 0))

    def coef_draws(self) -> np.ndarray:
        """Draws of the fixed effects as reported (uncentred intercept), (n_draws, n_fixed)."""
        n_draws = self.n_draws
        beta = self._flat("beta") if "beta" in self.samples else np.zeros((n_draws, 0))
        columns, j = [], 0
        for name in self.design.fixed_names:
            if name == "(Intercept)":
                columns.append(self._flat("alpha") - beta @ self.xbar)
            else:
                columns.append(beta[:, j])
                j += 1
        return np.column_stack(columns) if columns else np.zeros((n_draws, 0))

    def term_factors(self) -> list[np.ndarray]:
        """Per grouping term, draws of the factor T of its effects' covariance T T', (n_draws, K, K)."""
        if "b" in self.samples:
            return [self._flat(f"factor_{k}") for k in range(len(self.design.group_terms))]
        sigma = self._sigma()
        return [sigma[:, k, None, None] for k in range(sigma.shape[1])]

    def b_draws(self) -> np.ndarray:
        """Draws of the group effects b (b = sigma * z for random intercepts), (n_draws, q)."""
        if "b" in self.samples:
            return self._flat("b")
        sigma = self._sigma()
        if not sigma.shape[1]:
            return sigma
        term = np.repeat(np.arange(sigma.shape[1]), self.design.n_levels)
        return sigma[:, term] * self._flat("z")

    def fixef(self) -> pd.Series:
        """Posterior medians of the fixed effects, as rstanarm prints them."""
        return pd.Series(np.median(self.coef_draws(), axis=0), index=self.design.fixed_names)

    def varcorr(self) -> pd.DataFrame:
        """Posterior medians of the group sds and correlations (and of a gaussian's residual sd),
        laid out as lme4's VarCorr."""
        design = self.design
        pairs = [correlations(F @ np.swapaxes(F, 1, 2)) for F in self.term_factors()]
        return varcorr_frame(design.group_names, [design.effect_names(k) for k in range(len(pairs))],
                             [np.median(sd, axis=0) for sd, _ in pairs], [np.median(c, axis=0) for _, c in pairs],
                             float(np.median(self._flat("aux"))) if "aux" in self.samples else None)

    def dispersion_draws(self, n_draws: int) -> np.ndarray:
        """sigma^2 of each of the first ``n_draws`` posterior draws (a gaussian's), else 1; (n_draws, 1)."""
        if "aux" not in self.samples:
            return np.ones((n_draws, 1))
        return self._flat("aux")[:n_draws, None] ** 2

    def summary(self) -> str:
        """rstanarm's print: posterior medians and MAD_SDs, the error terms, the levels, the problems."""
        from .summaries import bayes_summary

        return bayes_summary(self)

    # -- the Fit protocol --------------------------------------------------------
    @property
    def draw_seed(self) -> int:
        """The sampler's seed + 1: the unseen levels' draws repeat, on a stream of their own."""
        return self.engine.seed + 1

    def point_coef(self) -> np.ndarray:
        """Posterior means of the coefficients (the cell predictions themselves average the draws')."""
        return np.concatenate([self.coef_draws(), self.b_draws()], axis=1).mean(axis=0)

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        """The posterior draws, chains one after another (the first ``n_draws``, if given)."""
        coef = np.hstack([self.coef_draws(), self.b_draws()])
        return ParameterDraws(coef[:n_draws], [F[:n_draws] for F in self.term_factors()])

    def saved_state(self) -> tuple[dict, dict]:
        meta = {"engine": dataclasses.asdict(self.engine),
                "divergences": self.divergences, "depth_hits": self.depth_hits, "mean_steps": self.mean_steps,
                "remedy_note": self.remedy_note}
        return meta, {"xbar": self.xbar, **{f"samples.{k}": v for k, v in self.samples.items()}}

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "BayesFit":
        settings = dict(meta["engine"])
        settings["priors"] = Priors(**settings["priors"])
        samples = {k[len("samples."):]: v for k, v in arrays.items() if k.startswith("samples.")}
        return cls(cells, samples, arrays["xbar"], meta["divergences"], meta["depth_hits"], meta["mean_steps"],
                   BayesEngine(**settings), meta["remedy_note"])

    @cached_property
    def _diagnostics(self) -> pd.DataFrame:
        # deterministic sites and LKJ factors' fixed entries carry no information of their own
        return summarize({k: v for k, v in self.samples.items()
                          if k not in ("sigma", "aux", "b") and not k.startswith(("factor_", "corr_"))})

    def diagnostics(self) -> pd.DataFrame:
        """R-hat, bulk and tail ESS per parameter (rank-normalised split R-hat, Vehtari et al. 2021)."""
        return self._diagnostics.copy()

    def problems(self) -> list[str]:
        """Each failed diagnostic threshold, with the standard remedy (empty when all pass)."""
        table = self.diagnostics()
        messages = rank_problems(self.cells)
        if self.divergences:
            messages.append(f"{self.divergences} divergent transitions after warmup: raise --adapt-delta "
                            f"(now {self.engine.adapt_delta}) toward 0.99, or use tighter priors.")
        if self.depth_hits:
            messages.append(f"{self.depth_hits} iterations hit the maximum tree depth "
                            f"({self.engine.max_tree_depth}): the posterior is hard to explore; reparameterize "
                            "or raise the maximum depth.")
        worst = table["rhat"].max()
        if worst > 1.01:
            messages.append(f"largest R-hat is {worst:.3f} (> 1.01): the chains disagree; run more draws or "
                            "more warmup.")
        low = min(table["ess_bulk"].min(), table["ess_tail"].min())
        if low < 400:
            messages.append(f"smallest ESS is {low:.0f} (< 400): run more draws for reliable intervals.")
        return messages

    def to_arviz(self):
        """ArviZ InferenceData of the draws (imports ArviZ only here)."""
        import arviz as az

        return az.from_dict(posterior={k: v for k, v in self.samples.items()})
