"""The bayes engine's settings and its sampler: NumPyro's NUTS on :mod:`.model`, chains side by side.

See the package's docstring (:mod:`misterp.engines.bayes`) for the priors and the sampling defaults.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ...errors import MisterpInputError, MisterpWarning
from ...model.cells import Cells
from ..jax_config import ensure_jax
from .fit import BayesFit
from .inference_data import SAMPLER_FIELDS, sample_stats
from .model import model, model_data, n_effects, work
from .stacked import StackedBayesFit, stacked_model


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
    family_style : {"brms", "rstanarm"}
        A categorical or ordinal outcome's priors: brms's defaults, or rstanarm's scaled ones above.
    """

    coef_scale: float = 2.5
    intercept_scale: float = 2.5
    sd_scale: float = 1.0
    # a categorical or ordinal outcome's priors: brms's defaults, or "rstanarm", these scaled ones
    # (engines/bayes/stacked.py)
    family_style: str = "brms"


# NumPyro's progress bars call back to Python, and a program with callbacks
# cannot come from JAX's persistent cache: about 3 s of compiling in every
# process. Below this much work per gradient (``model.work``) a run takes seconds, so it gets a
# one-line note instead (article model, whole process: 2.5 s instead of 6.3 s).
PROGRESS_MIN_WORK = 20_000
# Above this much work per gradient a fit first estimates its own run time
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
    # How the likelihood reads the data (the posterior is the same): "cells", or "moments", a
    # quadratic log-likelihood's sufficient statistics summed once (engines/bayes/moments.py);
    # "auto" takes the one with fewer multiply-adds per gradient.
    likelihood: str = "auto"

    def fit(self, cells: Cells) -> BayesFit:
        """Sample the posterior; warn (with the remedy) where a diagnostic fails.

        With ``remedy``, a run with divergent transitions is rerun once at
        adapt_delta 0.99 (Stan's standard advice, automated), and the fit says
        so in ``remedy_note``.
        """
        from ..whitening import pilot_expansion

        data = model_data(cells, self.priors, self.likelihood)
        data["prior_only"] = self.prior_only
        if cells.family.categories is not None:  # brms's categorical() or cumulative() model
            data["prior_style"] = self.priors.family_style
            whitened = self.parameterization != "noncentred" and not self.prior_only
            if whitened:  # at the laplace engine's mode, as for one predictor
                from .stacked import stacked_pilot

                data["whitened"] = stacked_pilot(cells, data)
        else:
            whitened = self._whitened(data)
            if whitened:  # the pilot fit serves the remedy's rerun too
                data.update(pilot_expansion(cells, data, self.prior_only))
        if work(data) >= ESTIMATE_MIN_WORK:
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

        chosen = stacked_model if data["family"].categories is not None else model
        info = initialize_model(jax.random.PRNGKey(self.seed), chosen, model_kwargs=data)
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

    def _sample(self, cells: Cells, data: dict, adapt_delta: float) -> BayesFit:
        ensure_jax(self.float64, self.chains)
        import jax
        from numpyro.infer import MCMC, NUTS
        from threadpoolctl import threadpool_limits

        stacked = cells.family.categories is not None
        kernel = NUTS(stacked_model if stacked else model, target_accept_prob=adapt_delta,
                      max_tree_depth=self.max_tree_depth)
        method = self._chain_method()
        bars = self.progress and work(data) >= PROGRESS_MIN_WORK
        if self.progress and not bars and sys.stderr.isatty():
            print(f"sampling {self.chains} chains x {self.warmup + self.draws} iterations ...", file=sys.stderr)
        mcmc = MCMC(kernel, num_warmup=self.warmup, num_samples=self.draws, num_chains=self.chains,
                    chain_method=method, progress_bar=bars)
        # chains side by side each call LAPACK; a multi-threaded BLAS under each
        # oversubscribes the cores (5x slower triangular solves)
        with threadpool_limits(1 if method == "parallel" else None, user_api="blas"):
            mcmc.run(jax.random.PRNGKey(self.seed), extra_fields=tuple(SAMPLER_FIELDS), **data)
            draws = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))  # JAX runs asynchronously
        samples = {k: np.asarray(v, dtype=np.float64) for k, v in draws.items() if k != "eps"}
        stats = sample_stats(mcmc.get_extra_fields(group_by_chain=True))
        depth_hits = stats["n_steps"] >= 2 ** self.max_tree_depth - 1
        return (StackedBayesFit if stacked else BayesFit)(
            cells, samples, data["xbar"], int(stats["diverging"].sum()), int(depth_hits.sum()),
            float(stats["n_steps"].mean()), replace(self, adapt_delta=adapt_delta), sample_stats=stats)

    def _whitened(self, data: dict) -> bool:
        from ..whitening import MAX_WHITENED

        if self.parameterization not in ("auto", "whitened", "noncentred"):
            raise ValueError("parameterization must be 'auto', 'whitened' or 'noncentred', "
                             f"not {self.parameterization!r}")
        if data["slopes"] is not None and data.get("whitened_terms") is None:
            if self.parameterization == "whitened":
                raise MisterpInputError(
                    "Whitened coordinates take random intercepts and rw1, rw2, ar1, icar and bym2 terms; a model "
                    "with varying slopes samples in non-centred coordinates (--parameterization noncentred, the "
                    "default for it).")
            return False
        return self.parameterization == "whitened" or (
            self.parameterization == "auto" and n_effects(data) <= MAX_WHITENED)

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


