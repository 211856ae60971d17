"""Parametric bootstrap of a Laplace fit, equivalent to ``lme4::bootMer``.

All responses are simulated first, from one seeded numpy Generator; then each
is refit (lme4's stage 2 only) starting from the original optimum. A refit
therefore depends only on its own simulated data, so results are identical
for any order and any number of workers.

    use_u=True : eta* = X beta^ + Z b^           (the article's choice)
    use_u=False: eta* = X beta^ + Z Lambda(theta^) u*,  u* ~ N(0, sigma^2 I)
    y* ~ the family's distribution at mean g^-1(eta*), per cell

(sigma is a gaussian outcome's residual sd, 1 otherwise). A gaussian fit is
refitted by lmer's profiled deviance from its theta, sharing everything y does
not change across a block of refits; the others by the Laplace engine's
batched Newton or BFGS (preconditioned L-BFGS-B for a refit these leave).

The result is a :class:`BootstrapFit`: a Fit whose draws are the refits, so
``poststratify(cell_draws(boot, frame), frame)`` gives the article's
estimate -/+ 2 sd of the refits.

Example
-------
>>> import pandas as pd
>>> from misterp import Frame, LaplaceEngine, Survey, cell_draws, poststratify, prepare
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5})
>>> frame = Frame(pd.DataFrame({"g": list("abcd"), "N": [1, 2, 3, 4]}), "N")
>>> fit = LaplaceEngine().fit(prepare(Survey(data, "y"), frame, "y ~ (1|g)")[0])
>>> boot = bootstrap(fit, nsim=50, use_u=True, seed=1, progress=False)
>>> boot.failed, boot.params.shape
(0, (50, 5))
>>> poststratify(cell_draws(boot, frame), frame).table["interval"].item()
'bootstrap ±2sd'
"""

from __future__ import annotations

import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..errors import MisterpInputError, MisterpWarning
from ..model.cells import Cells
from .deviance import SMALL_Q, Problem, joint_covariance, pirls
from .fit import Fit, ParameterDraws, one_blas_thread
from .laplace import MixedFit
from .optimize import hessian_at, newton_batch, optimize, quasi_newton_batch


@dataclass(frozen=True, repr=False)
class BootstrapFit(Fit):
    """A parametric bootstrap of a Laplace fit: the original fit and its refits.

    Attributes
    ----------
    original : MixedFit
        The fit that was bootstrapped; the point prediction is its own.
    params : (nsim, n_fixed + q) array
        (beta*, b*) of each refit; rows of failed refits are NaN.
    theta : (nsim, n_terms) array
    t : (nsim, m) array or None
        The user statistic of each refit, when one was given.
    failed : int
        Refits that did not converge (recorded as missing, as bootMer does).
    use_u : bool
    """

    original: MixedFit
    params: np.ndarray
    theta: np.ndarray
    t: np.ndarray | None
    failed: int
    use_u: bool

    kind = "bootstrap"
    method = "bootstrap"
    interval = "draws"
    # b = 0 for unseen levels in every refit, as predict(..., allow.new.levels = TRUE)
    # inside bootMer's statistic
    unseen = "zero"

    @property
    def cells(self) -> Cells:
        return self.original.cells

    def point_coef(self) -> np.ndarray:
        return self.original.point_coef()

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        """The successful refits (the first ``n_draws`` of them, if given)."""
        ok = ~np.isnan(self.params).any(axis=1)
        factors = self.original.structure.factors(self.theta[ok][:n_draws])
        return ParameterDraws(self.params[ok][:n_draws], [self.original.sigma * F for F in factors])

    def problems(self) -> list[str]:
        return self.original.problems() + ([_failed_refits(self.failed, len(self.params))] if self.failed else [])

    def summary(self) -> str:
        """The bootstrapped fit's summary, then the refits."""
        refits = len(self.params)
        return (self.original.summary() + f"\nParametric bootstrap (bootMer, use.u = {self.use_u}): {refits} refits, "
                f"{refits - self.failed} used for intervals, {self.failed} failed")

    def saved_state(self) -> tuple[dict, dict]:
        meta, arrays = self.original.saved_state()
        meta = {"original": meta, "failed": self.failed, "use_u": self.use_u}
        arrays = {**{f"original.{k}": v for k, v in arrays.items()}, "params": self.params, "theta": self.theta}
        if self.t is not None:
            arrays["t"] = self.t
        return meta, arrays

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "BootstrapFit":
        inner = {k[len("original."):]: v for k, v in arrays.items() if k.startswith("original.")}
        original = MixedFit.from_saved_state(cells, meta["original"], inner)
        return cls(original, arrays["params"], arrays["theta"], arrays.get("t"), meta["failed"], meta["use_u"])


def _simulate(fit: MixedFit, nsim: int, use_u: bool, rng: np.random.Generator) -> dict:
    """Simulated cell statistics, each (nsim, n_cells)."""
    cells = fit.cells
    eta0 = cells.offset + cells.X @ fit.beta
    Z = cells.design.random_matrix(cells.table)
    if use_u:
        eta = np.broadcast_to(eta0 + Z @ fit.b, (nsim, cells.n_cells))
    else:  # u ~ N(0, sigma^2 I): sigma is 1 but for a gaussian outcome
        u = rng.standard_normal((nsim, len(fit.u)))
        eta = eta0 + np.asarray(Z @ fit.structure.apply(fit.theta, fit.sigma * u).T).T
    mu = cells.family.mean(eta)
    return cells.family.simulate(cells.stats, mu, rng, dispersion=fit.sigma ** 2)


def _refit_block(fit: MixedFit, block: dict, statistic, hessian: np.ndarray | None):
    """Refit a block of simulated cell statistics, each (B, n_cells): as in :func:`_refit_laplace`
    for random intercepts, else one fit at a time (lmer's for a gaussian outcome)."""
    with one_blas_thread():
        if fit.family.profiled:
            return _refit_lmm(fit, block, statistic, hessian)
        if not fit.structure.simple:
            return _refit_each(fit, block, statistic)
        return _refit_laplace(fit, block[fit.family.response], statistic, hessian)


def _refit_lmm(fit: MixedFit, block: dict, statistic, hessian: np.ndarray):
    """lmer refits of a block: one profiled deviance for the block (Z, Z'WZ, the elimination and
    the rest that y does not change, made once), each response's sums swapped in, and L-BFGS-B from
    the original theta in coordinates where the original optimum's curvature ``hessian`` is the
    identity; returns as :func:`_refit_laplace` does."""
    from .lmm import ProfiledDeviance
    from .lmm_optimize import fit_deviance

    shared = ProfiledDeviance(fit.cells, fit.reml)
    B = len(block[fit.family.response])
    coef = np.full((B, len(fit.beta) + len(fit.u)), np.nan)
    theta = np.full((B, len(fit.theta)), np.nan)
    stats = [None] * B
    for i in range(B):
        sim = {k: v[i] for k, v in block.items()}
        try:
            found = fit_deviance(shared.with_stats(sim), fit.theta, hessian, covariance=statistic is not None)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            continue
        refit = MixedFit(fit.cells.with_stats(sim), found["theta"], found["beta"], found["u"], found["objective"],
                         found["info"], found["cov"], singular_tol=fit.singular_tol, sigma=found["sigma"],
                         reml=fit.reml)
        coef[i], theta[i] = refit.point_coef(), refit.theta
        if statistic is not None:
            stats[i] = np.atleast_1d(np.asarray(statistic(refit), dtype=float))
    return coef, theta, stats


def _refit_each(fit: MixedFit, block: dict, statistic):
    """Refits one by one from the original optimum; returns as :func:`_refit_laplace` does."""
    B = len(block[fit.family.response])
    coef = np.full((B, len(fit.beta) + len(fit.u)), np.nan)
    theta = np.full((B, len(fit.theta)), np.nan)
    stats = [None] * B
    for i in range(B):
        try:
            refit = fit.refit(fit.cells.with_stats({k: v[i] for k, v in block.items()}))
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            continue
        coef[i], theta[i] = refit.point_coef(), refit.theta
        if statistic is not None:
            stats[i] = np.atleast_1d(np.asarray(statistic(refit), dtype=float))
    return coef, theta, stats


def _refit_laplace(fit: MixedFit, response: np.ndarray, statistic, hessian: np.ndarray):
    """Refit a block of simulated responses (B, n_cells).

    With few random-effect levels, one batched Newton solve for the block
    (the work is per-call overhead); otherwise one batched BFGS from
    ``hessian`` (the curvature at the original optimum); for any response
    either does not settle (or that ends near theta = 0), L-BFGS-B per
    response, preconditioned by ``hessian``. All start from the original
    optimum. Returns coef (B, n_fixed + q) as (beta*, b*), theta (B, n_terms)
    and the statistics (list, None where not asked for); rows of failed
    refits are NaN.
    """
    cells, T = fit.cells, len(fit.theta)
    prob = Problem(cells, response)
    B = prob.batch
    start = np.tile(np.concatenate([fit.theta, fit.beta]), (B, 1))
    u0 = np.tile(fit.u, (B, 1))
    try:
        if prob.q <= SMALL_Q:
            params, u, ok = newton_batch(prob, start, u0)
        else:
            params, u, ok = quasi_newton_batch(prob, start, u0, hessian)
    except (FloatingPointError, np.linalg.LinAlgError):
        params, u, ok = start.copy(), u0.copy(), np.zeros(B, dtype=bool)
    stats = [None] * B
    for i in range(B):
        one = prob.subset([i])
        if not ok[i]:
            for curvature in (hessian, None):  # the preconditioned try, then plain L-BFGS-B
                try:
                    p_i, st, info = optimize(one, start[i], fit.u, hessian=curvature)
                except (FloatingPointError, np.linalg.LinAlgError):
                    continue
                if info["converged"]:
                    params[i], u[i], ok[i] = p_i, st.u[0], True
                    break
            if not ok[i]:
                continue
        if statistic is not None:
            st = pirls(one, params[i:i + 1], u[i:i + 1])
            sim = cells.with_stats({**cells.stats, cells.family.response: response[i]})
            refit = MixedFit(sim, params[i, :T], params[i, T:], u[i], float(st.objective[0]), {"converged": True},
                             joint_covariance(one, st), singular_tol=fit.singular_tol)
            stats[i] = np.atleast_1d(np.asarray(statistic(refit), dtype=float))
    b = params[:, :T][:, prob.term_of_level] * u
    coef = np.hstack([params[:, T:], b])
    coef[~ok] = np.nan
    theta = params[:, :T].copy()
    theta[~ok] = np.nan
    return coef, theta, stats


def bootstrap(fit: MixedFit, nsim: int = 999, use_u: bool = True, statistic=None, seed=None,
              workers: int = 1, progress: bool = True, block: int = 64) -> BootstrapFit:
    """Parametric bootstrap of ``fit`` (lme4's ``bootMer``).

    Parameters
    ----------
    fit : MixedFit
    nsim : int
        Number of simulations and refits.
    use_u : bool
        Keep the fitted random effects (True) or draw new ones (False).
    statistic : callable(MixedFit) -> float or array, optional
        Computed on each refit (bootMer's FUN). Poststratified estimates
        need no statistic: ``cell_draws(boot, frame)`` poststratifies the refits.
    seed : int or Generator, optional
    workers : int
        Processes for the refits; the draws do not depend on it.
    progress : bool
        Show a progress bar on a terminal.
    block : int
        Refits solved together (vectorised); also the unit handed to a worker.
    """
    if fit.family.categories is not None:  # several linear predictors: the stacked Laplace fit's refits
        from .stacked import StackedFit, stacked_bootstrap

        if not isinstance(fit, StackedFit) or statistic is not None:
            raise MisterpInputError(f"The bootstrap of a {fit.family.name} outcome refits its laplace fit, with "
                                    "no statistic; fit it with --engine laplace.")
        return stacked_bootstrap(fit, nsim, use_u=use_u, seed=seed, progress=progress)
    if not isinstance(fit, MixedFit):
        raise MisterpInputError(
            "The bootstrap refits lme4's glmer fit, which a model with structured terms (rw1, rw2, ar1, icar, bym2) "
            "does not have. Drop --bootstrap: --engine inla integrates over the sds, and --engine laplace draws "
            "from the normal approximation at their mode.")
    rng = np.random.default_rng(seed)
    simulated = _simulate(fit, nsim, use_u, rng)
    with one_blas_thread():
        hessian = _curvature(fit)
    # fixed blocks, whatever the worker count, so every refit sees the same arithmetic
    blocks = [{k: v[i:i + block] for k, v in simulated.items()} for i in range(0, nsim, block)]
    parts = []
    bar = tqdm(total=nsim, desc="bootstrap", unit="refit", disable=None if progress else True)
    if workers > 1:
        # spawn, not fork: a forked child of a process that has started JAX's threads can deadlock
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for part in pool.map(_refit_block, [fit] * len(blocks), blocks, [statistic] * len(blocks),
                                 [hessian] * len(blocks)):
                parts.append(part)
                bar.update(len(part[0]))
    else:
        for chunk in blocks:
            parts.append(_refit_block(fit, chunk, statistic, hessian))
            bar.update(len(parts[-1][0]))
    bar.close()
    params = np.vstack([p[0] for p in parts])
    theta = np.vstack([p[1] for p in parts])
    failed = int(np.isnan(params).any(axis=1).sum())
    stats = None
    if statistic is not None:
        rows = [s for p in parts for s in p[2]]
        width = max((len(s) for s in rows if s is not None), default=1)
        stats = np.vstack([np.full(width, np.nan) if s is None else s for s in rows])
    if failed:  # the original fit's problems were told when it was made
        warnings.warn(_failed_refits(failed, nsim), MisterpWarning, stacklevel=2)
    return BootstrapFit(fit, params, theta, stats, failed, use_u)


def _curvature(fit: MixedFit) -> np.ndarray | None:
    """The Hessian at the original optimum that refits start from: the Laplace deviance's in
    (theta, beta) for random intercepts, the profiled deviance's in theta for lmer; None with
    slopes (those refit one by one from scratch)."""
    if fit.family.profiled:
        from .lmm import ProfiledDeviance
        from .lmm_optimize import deviance_hessian

        return deviance_hessian(ProfiledDeviance(fit.cells, fit.reml), fit.theta)
    if fit.structure.simple:
        return hessian_at(Problem(fit.cells), np.concatenate([fit.theta, fit.beta]), fit.u)
    return None


def _failed_refits(failed: int, nsim: int) -> str:
    return (f"{failed} of {nsim} bootstrap refits failed and were left out; a simpler model (fewer or "
            "merged terms) refits more reliably.")
