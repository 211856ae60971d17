"""An inla fit: the hyperparameters' design points with their weights, and at each point the latent
effects' Gaussian (mode and precision); the posterior of the effects is the mixture of those Gaussians.

Draws are allotted to the points in proportion to their weights (largest remainders: the same n gives
the same allotment, so a gaussian's dispersion draws line up with the coefficients'), and at each point
drawn from N(x̂_j, H_j^-1). The fixed effects' marginals are mixtures of normals, so their quantiles are
exact roots of the mixture's distribution function; the hyperparameters' quantiles come from the
skewness-corrected Gaussian the design was built on (:mod:`.design`), their means and sds from the
points' weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import ndtr

from ...model.cells import Cells
from ..fit import Fit, ParameterDraws, rank_problems, varcorr_frame
from .design import axes, scalings
from .hyper import Hyperparameters, hyperparameters
from .latent import DenseSystem, SparseSystem
from .posterior import reporting_matrix

if TYPE_CHECKING:  # engine.py imports this module
    from .engine import InlaEngine

QUANTILES = (0.025, 0.5, 0.975)
PILOT = 400             # Gaussian draws that test the Gaussian at the heaviest point
GOOD_ESS = 0.9          # above this effective fraction the Gaussian's draws stand as they are
MAX_OVERSAMPLING = 8    # candidates per draw at most, where the Gaussian is far off
LOW_ESS = 0.05          # below this pilot fraction, problems() says so
LARGE_TERM_SHARE = 0.5  # above this share of respondents in cells past the series' range, problems() says so


def allot(weights: np.ndarray, n: int) -> np.ndarray:
    """Draws per point, (n_points,) summing to n: floor(n w) and the remainder to the largest fractions."""
    exact = np.asarray(weights, float) * n
    counts = np.floor(exact).astype(int)
    extra = n - counts.sum()
    counts[np.argsort(counts - exact, kind="stable")[:extra]] += 1
    return counts


@dataclass(frozen=True, repr=False)
class InlaFit(Fit):
    """The integrated nested Laplace approximation of a model's posterior.

    Attributes
    ----------
    cells : Cells
    phi : (n_points, m) array
        The design's points (log scale).
    weights : (n_points,) array
        Their normalised weights.
    x : (n_points, d) array
        The latent effects' conditional mode at each point: the intercept of the centred predictors,
        the coefficients, then b.
    systems : dict of arrays
        The latent effects' precision H at each point, factorised (:mod:`.latent`): ``chol``
        (n_points, d, d), its dense lower Cholesky factors, or, for a sparse b block, ``A``
        (n_points, p, p), ``B`` (n_points, q, p), ``c`` (n_points, nnz) and the pattern's ``rows``,
        ``cols`` (nnz,).
    mode, hessian : (m,), (m, m) arrays
        The mode of log π(φ | y) and the Hessian of -log π there.
    s_pos, s_neg : (m,) arrays
        The skewness correction's scalings along the Hessian's axes.
    info : dict
        The mode search's report: converged, message, evaluations, max_abs_gradient.
    engine : InlaEngine
    """

    cells: Cells
    phi: np.ndarray
    weights: np.ndarray
    x: np.ndarray
    systems: dict
    mode: np.ndarray
    hessian: np.ndarray
    s_pos: np.ndarray
    s_neg: np.ndarray
    info: dict
    engine: "InlaEngine"

    kind = "inla"
    # estimate +/- 2 sd of the draws: on the coverage study's designs it held the truth closer to 95% than
    # the draws' central 95% (by group: states 94.3% against 92.9%, worst state 65% against 18%;
    # docs/coverage.md); interval="quantile" gives the central 95%
    interval = "draws"
    unseen = "level"
    point = "mean"

    @property
    def method(self) -> str:
        """"inla", or for the hyperparameters' mode alone (the laplace engine's structured terms) the
        normal approximation there."""
        return "normal-approx" if self.engine.design == "mode" else "inla"

    @property
    def n_draws(self) -> int:
        return self.engine.draws

    @property
    def draw_seed(self) -> int:
        return self.engine.seed

    @cached_property
    def _data(self) -> dict:
        """The bayes engine's model data: the predictors' means and the priors' scales."""
        from ..bayes import model_data

        return model_data(self.cells, self.engine.priors, likelihood="cells")

    @cached_property
    def hyper(self) -> Hyperparameters:
        """The hyperparameters' layout and maps."""
        return hyperparameters(self.design, self._data)

    @cached_property
    def _R(self) -> np.ndarray:
        post = self._posterior
        return reporting_matrix(self.design.fixed_names, self._data["xbar"], post.latent_of_column, post.q)

    @cached_property
    def factors(self) -> list[np.ndarray]:
        """Each term's factor T of its effects' covariance at each point, (n_points, K, K)."""
        return self.hyper.factors(self.phi)

    @cached_property
    def reported(self) -> np.ndarray:
        """The hyperparameters as sds and correlations (``hyper.labels``) at each point, (n_points, r)."""
        return self.hyper.reported(self.phi)

    # -- the Fit protocol --------------------------------------------------------
    def point_coef(self) -> np.ndarray:
        """The mixture's mean of the coefficients, (n_fixed + q,)."""
        return (self.weights @ self.x) @ self._R

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        """Draws from the mixture, point by point (see :func:`allot`), importance-corrected where the
        Gaussian at a point is off (:attr:`oversampling`); each term's factor is its point's."""
        n_draws = self.n_draws if n_draws is None else n_draws
        counts = allot(self.weights, n_draws)
        pieces = [self._point_draws(j, counts[j], rng) for j in np.flatnonzero(counts)]
        coef = (np.hstack(pieces).T if pieces else np.zeros((0, self.x.shape[1]))) @ self._R
        return ParameterDraws(coef, [np.repeat(T, counts, axis=0) for T in self.factors])

    def system(self, j: int):
        """H at point j, factorised, on the terms' constraints (:mod:`.latent`)."""
        if "chol" in self.systems:
            base = DenseSystem(self.systems["chol"][j], len(self.design.fixed_names))
        else:
            base = SparseSystem(self.systems["A"][j], self.systems["B"][j], self._elimination, self.systems["c"][j])
        return self._posterior.constrained(base)

    @cached_property
    def _elimination(self):
        from ..linalg import Elimination

        return Elimination(self.systems["B"].shape[1], self.systems["rows"], self.systems["cols"])

    def _normal_draws(self, j: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n draws (d, n) of N(x̂_j, H_j^-1), and their standard normal z's log density (n,)."""
        return self.system(j).draws(self.x[j], n, rng)

    def _point_draws(self, j: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws (d, n) of the latent effects at point j: the Gaussian's, or, when it is off, n of
        ``oversampling`` times as many resampled by their importance weights p(y, x | φ_j) / G(x)."""
        factor = self.oversampling["factor"]
        if factor == 1:
            return self._normal_draws(j, n, rng)[0]
        X, log_g = self._normal_draws(j, n * factor, rng)
        w = self._importance_weights(j, X, log_g)
        return X[:, rng.choice(X.shape[1], n, p=w / w.sum())]

    def _importance_weights(self, j: int, X: np.ndarray, log_g: np.ndarray) -> np.ndarray:
        """p(y, x | φ_j) / G(x) for draws X (d, n) of the Gaussian at point j, scaled to a largest of 1, (n,)."""
        log_w = self._posterior.log_joint(self.phi[j], X) - log_g
        return np.exp(log_w - log_w.max())

    @cached_property
    def _posterior(self):
        from .posterior import HyperPosterior

        return HyperPosterior(self.cells, self.engine.priors)

    @cached_property
    def oversampling(self) -> dict:
        """Whether the draws need importance weights: a pilot of PILOT Gaussian draws at the heaviest
        point (seed: the engine's), weighted by p(y, x | φ) / G(x). Where their effective sample size
        is at least GOOD_ESS of them (or the likelihood is gaussian, where G is exact), ``factor`` is 1
        and the draws are the Gaussian's; below, each point's draws are resampled from ``factor`` times
        as many (1 / ESS fraction, at most MAX_OVERSAMPLING). Also ``ess``, the pilot's fraction."""
        if self.family.quadratic(self.cells.stats) is not None or self.engine.design == "mode":
            return {"factor": 1, "ess": 1.0}  # exact, or the normal approximation asked for
        j = int(np.argmax(self.weights))
        X, log_g = self._normal_draws(j, PILOT, np.random.default_rng(self.engine.seed))
        w = self._importance_weights(j, X, log_g)
        ess = float(w.sum() ** 2 / (w @ w) / PILOT)
        factor = 1 if ess >= GOOD_ESS else int(min(np.ceil(1 / ess), MAX_OVERSAMPLING))
        return {"factor": factor, "ess": ess}

    def dispersion_draws(self, n_draws: int) -> np.ndarray:
        """sigma^2 of each draw (a gaussian's, at its point), else 1; (n_draws, 1), as ``parameter_draws``."""
        return np.repeat(self.hyper.aux(self.phi), allot(self.weights, n_draws))[:, None] ** 2

    # -- marginals -----------------------------------------------------------------
    def _fixed_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Each point's means (n_points, p) and sds (n_points, p) of the reported fixed effects."""
        p = len(self.design.fixed_names)
        R = self._R[:p, :p]  # the reported fixed effects are linear in the latent fixed effects alone
        means = self.x @ self._R[:, :p]
        sds = np.empty_like(means)
        for j in range(len(self.weights)):
            sds[j] = np.sqrt(np.einsum("ij,ij->j", R, self.system(j).fixed_inverse() @ R))
        return means, sds

    def fixed_table(self) -> pd.DataFrame:
        """R-INLA's ``summary.fixed``: mean, sd and the 2.5/50/97.5% quantiles of each fixed effect,
        exact for the mixture of normals."""
        means, sds = self._fixed_moments()
        w = self.weights
        mean = w @ means
        sd = np.sqrt(w @ (sds ** 2 + means ** 2) - mean ** 2)
        rows = [[mean[k], sd[k]] + [_mixture_quantile(means[:, k], sds[:, k], w, q) for q in QUANTILES]
                for k in range(len(mean))]
        return pd.DataFrame(rows, index=self.design.fixed_names, columns=_columns())

    def hyper_samples(self, n: int = 20_000) -> np.ndarray:
        """Draws of the reported hyperparameters (n, r) from the skewness-corrected Gaussian of the
        design (seed 0)."""
        z = np.random.default_rng(0).standard_normal((n, len(self.mode)))
        phi = self.mode + (z * scalings(z, self.s_pos, self.s_neg)) @ axes(self.hessian).T
        return self.hyper.reported(phi)

    def hyper_table(self) -> pd.DataFrame:
        """The sds' (and correlations') mean and sd over the design's weights, and their 2.5/50/97.5%
        quantiles from :meth:`hyper_samples`: R-INLA's ``summary.hyperpar``, for sds where it gives
        precisions. For the mode alone, the mean is the mode's value and the sd the Gaussian's."""
        w, values = self.weights, self.reported
        mean = w @ values
        sd = np.sqrt(np.maximum(w @ values ** 2 - mean ** 2, 0.0))
        samples = self.hyper_samples()
        if len(w) == 1:  # the mode alone (the laplace engine's structured fit): the Gaussian's sd
            sd = samples.std(axis=0)
        quant = np.quantile(samples, QUANTILES, axis=0).T
        return pd.DataFrame(np.column_stack([mean, sd, quant]), index=self.hyper.labels, columns=_columns())

    def fixef(self) -> pd.Series:
        """Posterior means of the fixed effects."""
        return self.fixed_table()["mean"]

    def varcorr(self) -> pd.DataFrame:
        """Posterior means of the group sds and correlations (and of a gaussian's residual sd), laid out
        as lme4's VarCorr (a structured term's rho is in :meth:`hyper_table`)."""
        design, mean = self.design, self.weights @ self.reported
        sds, cors, start = [], [], 0
        for k, term in enumerate(self.hyper.terms):
            K = term.K
            sds.append(mean[start:start + K])
            cor = np.eye(K)
            if K > 1:
                rows, cols = term.correlation_pairs()
                cor[rows, cols] = cor[cols, rows] = mean[start + K:start + K + term.n_corr]
            cors.append(cor)
            start += len(term.labels(design.group_names[k], design.effect_names(k)))
        return varcorr_frame(design.group_names, [design.effect_names(k) for k in range(len(sds))], sds, cors,
                             float(mean[-1]) if self.hyper.aux_scale is not None else None)

    def summary(self) -> str:
        """R-INLA's summary: fixed effects and hyperparameters with mean, sd and quantiles."""
        from ..summaries import inla_summary

        return inla_summary(self)

    def problems(self) -> list[str]:
        messages = rank_problems(self.cells)
        if self.oversampling["ess"] < LOW_ESS:
            messages.append(f"the latent effects' posterior is far from Gaussian at the hyperparameters' mode (the "
                            f"importance weights' effective sample size is {self.oversampling['ess']:.0%} of the "
                            "draws), as where a predictor separates the answers: the draws are importance-corrected, "
                            "but compare with --engine bayes.")
        if self.info.get("large_terms", 0.0) > LARGE_TERM_SHARE:
            messages.append(f"{self.info['large_terms']:.0%} of the respondents are in cells that nearly alone decide "
                            "their group's effect (as groups of one or two binary answers): there the Laplace "
                            "approximation and its correction are at their limit, and the group sds may be off; "
                            "compare with --engine bayes.")
        if "correction" in self.info:
            messages.append(f"the Laplace approximation's correction was {self.info['correction']}; compare with "
                            "--engine bayes.")
        if not self.info.get("converged", True):
            messages.append(f"the search for the hyperparameters' mode did not converge ({self.info.get('message')};"
                            f" largest gradient {self.info.get('max_abs_gradient', float('nan')):.2g}): compare with "
                            "--engine bayes.")
        return messages

    # -- saving ----------------------------------------------------------------------
    def saved_state(self) -> tuple[dict, dict]:
        meta = {"engine": dataclasses.asdict(self.engine), "info": self.info}
        arrays = {k: getattr(self, k) for k in ("phi", "weights", "x", "mode", "hessian", "s_pos", "s_neg")}
        arrays.update({f"system.{k}": v for k, v in self.systems.items()})
        return meta, arrays

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "InlaFit":
        from ..bayes import Priors
        from .engine import InlaEngine

        settings = dict(meta["engine"])
        settings["priors"] = Priors(**settings["priors"])
        systems = {k[len("system."):]: v for k, v in arrays.items() if k.startswith("system.")}
        return cls(cells, arrays["phi"], arrays["weights"], arrays["x"], systems, arrays["mode"],
                   arrays["hessian"], arrays["s_pos"], arrays["s_neg"], meta["info"], InlaEngine(**settings))


def _columns() -> list[str]:
    return ["mean", "sd"] + [f"{q}quant" for q in QUANTILES]


def _mixture_quantile(means: np.ndarray, sds: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q quantile of sum_j w_j N(means_j, sds_j^2), by root finding on its distribution function."""
    lo, hi = float(np.min(means - 10 * sds)), float(np.max(means + 10 * sds))
    return float(brentq(lambda t: weights @ ndtr((t - means) / sds) - q, lo, hi, xtol=1e-12))
