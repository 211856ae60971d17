"""A bayes fit: the posterior draws of a ``stan_glmer``-equivalent model, and the Fit protocol on them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...model.cells import Cells
from ..diagnostics import summarize
from ..fit import Fit, ParameterDraws, correlations, rank_problems, varcorr_frame
from .model import uncentring

if TYPE_CHECKING:  # engine.py imports this module
    from .engine import BayesEngine


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
    remedy_note : str
    sample_stats : dict of (chains, draws) arrays
        The sampler's statistics per iteration, as ArviZ names them (``diverging``, ``n_steps``,
        ``tree_depth``, ``energy``, ``step_size``, ``acceptance_rate``, ``lp``); empty in a fit
        saved before they were kept.
    """

    cells: Cells
    samples: dict
    xbar: np.ndarray
    divergences: int
    depth_hits: int
    mean_steps: float
    engine: BayesEngine
    remedy_note: str = ""
    sample_stats: dict = field(default_factory=dict)

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
        n_draws, names = self.n_draws, self.design.fixed_names
        beta = self._flat("beta") if "beta" in self.samples else np.zeros((n_draws, 0))
        alpha = self._flat("alpha").reshape(n_draws, 1) if "(Intercept)" in names else np.zeros((n_draws, 0))
        return np.hstack([alpha, beta]) @ uncentring(names, self.xbar)

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
        from ..summaries import bayes_summary

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
        return meta, {"xbar": self.xbar, **{f"samples.{k}": v for k, v in self.samples.items()},
                      **{f"sample_stats.{k}": v for k, v in self.sample_stats.items()}}

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "BayesFit":
        from .engine import BayesEngine, Priors

        settings = dict(meta["engine"])
        settings["priors"] = Priors(**settings["priors"])
        samples = {k[len("samples."):]: v for k, v in arrays.items() if k.startswith("samples.")}
        stats = {k[len("sample_stats."):]: v for k, v in arrays.items() if k.startswith("sample_stats.")}
        return cls(cells, samples, arrays["xbar"], meta["divergences"], meta["depth_hits"], meta["mean_steps"],
                   BayesEngine(**settings), meta["remedy_note"], stats)

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

    def to_arviz(self, log_likelihood: bool = True):
        """ArviZ InferenceData: the posterior, the sampler's statistics, the cells' statistics as observed
        data and, unless ``log_likelihood=False``, each cell's log-likelihood at each draw (chains x draws x
        cells of float64); see :mod:`.inference_data`. Imports ArviZ only here. ``az.summary(idata)``,
        ``az.plot_energy(idata)`` and ``az.loo(idata)`` take it as it is (tests/engines/test_bayes_arviz.py).
        """
        from .inference_data import inference_data

        return inference_data(self, log_likelihood)
