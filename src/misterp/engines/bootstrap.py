"""Parametric bootstrap of a Laplace fit, equivalent to ``lme4::bootMer``.

All responses are simulated first, from one seeded numpy Generator; then each
is refit (lme4's stage 2 only) starting from the original optimum. A refit
therefore depends only on its own simulated data, so results are identical
for any order and any number of workers.

    use_u=True : eta* = X beta^ + Z b^           (the article's choice)
    use_u=False: eta* = X beta^ + Z Lambda(theta^) u*,  u* ~ N(0, I)
    y* ~ Binomial(n, expit(eta*)) per cell

Example
-------
>>> boot = bootstrap(fit, nsim=999, use_u=True, seed=1)          # doctest: +SKIP
>>> poststratify(boot.cell_draws(frame), frame).table             # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..fit import MixedFit
from ..frame import Frame
from ..poststrat import CellDraws, LinearDraws
from .deviance import SMALL_Q, Problem, joint_covariance, pirls
from .optimize import hessian_at, newton_batch, optimize


@dataclass(frozen=True)
class BootstrapResult:
    """Refits of a bootstrap.

    Attributes
    ----------
    fit : MixedFit
        The original fit.
    params : (nsim, n_fixed + q) array
        (beta*, b*) of each refit; rows of failed refits are NaN.
    theta : (nsim, n_terms) array
    t : (nsim, m) array or None
        The user statistic of each refit, when one was given.
    failed : int
        Refits that did not converge (recorded as missing, as bootMer does).
    use_u : bool
    """

    fit: MixedFit
    params: np.ndarray
    theta: np.ndarray
    t: np.ndarray | None
    failed: int
    use_u: bool

    def cell_draws(self, frame: Frame) -> CellDraws:
        """Plug-in predictions plus one draw per successful refit, for :func:`poststratify`.

        Frame levels the survey never saw get b = 0 in every refit, as
        ``predict(..., allow.new.levels = TRUE)`` inside bootMer's statistic.
        """
        M, _, unseen = self.fit.design.linear_map(frame.data)
        offset = self.fit.design.offset(frame.data)
        ok = ~np.isnan(self.params).any(axis=1)
        point = self.fit.cells.family.mean(offset + M @ np.concatenate([self.fit.beta, self.fit.b]))
        return CellDraws(point=point, draws=LinearDraws(self.params[ok], M, offset),
                         method="bootstrap", unseen=unseen)


def _simulate(fit: MixedFit, prob: Problem, nsim: int, use_u: bool, rng: np.random.Generator) -> np.ndarray:
    """Simulated successes, (nsim, n_cells); ``prob`` is the original fit's problem."""
    cells = fit.cells
    eta0 = cells.offset + cells.X @ fit.beta
    if use_u:
        eta = np.broadcast_to(eta0 + prob.Z @ fit.b, (nsim, cells.n_cells))
    else:
        u = rng.standard_normal((nsim, prob.q))
        eta = eta0 + prob.zmul(fit.lam * u)
    mu = cells.family.mean(eta)
    return cells.family.simulate(cells.stats, mu, rng)["successes"]


def _refit_block(fit: MixedFit, successes: np.ndarray, statistic, hessian: np.ndarray):
    """Refit a block of simulated responses (B, n_cells).

    With few random-effect levels, one batched Newton solve for the block
    (the work is per-call overhead); otherwise, and for any response Newton
    does not settle, L-BFGS-B per response, preconditioned by ``hessian``
    (the curvature at the original optimum). Both start from the original
    optimum. Returns coef (B, n_fixed + q) as (beta*, b*), theta (B, n_terms)
    and the statistics (list, None where not asked for); rows of failed
    refits are NaN.
    """
    cells, T = fit.cells, len(fit.theta)
    prob = Problem(cells, successes)
    B = prob.batch
    start = np.tile(np.concatenate([fit.theta, fit.beta]), (B, 1))
    u0 = np.tile(fit.u, (B, 1))
    params, u, ok = start.copy(), u0.copy(), np.zeros(B, dtype=bool)
    if prob.q <= SMALL_Q:
        try:
            params, u, ok = newton_batch(prob, start, u0)
        except (FloatingPointError, np.linalg.LinAlgError):
            pass
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
            sim = cells.with_stats({"successes": successes[i], "trials": cells.stats["trials"]})
            refit = MixedFit(sim, params[i, :T], params[i, T:], u[i], float(st.objective[0]), {"converged": True},
                             joint_covariance(one, st), bool(np.any(params[i, :T] < 1e-4)))
            stats[i] = np.atleast_1d(np.asarray(statistic(refit), dtype=float))
    b = params[:, :T][:, prob.term_of_level] * u
    coef = np.hstack([params[:, T:], b])
    coef[~ok] = np.nan
    theta = params[:, :T].copy()
    theta[~ok] = np.nan
    return coef, theta, stats


def bootstrap(fit: MixedFit, nsim: int = 999, use_u: bool = True, statistic=None, seed=None,
              workers: int = 1, progress: bool = True, block: int = 64) -> BootstrapResult:
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
        need no statistic: use :meth:`BootstrapResult.cell_draws`.
    seed : int or Generator, optional
    workers : int
        Processes for the refits; the draws do not depend on it.
    progress : bool
        Show a progress bar on a terminal.
    block : int
        Refits solved together (vectorised); also the unit handed to a worker.
    """
    rng = np.random.default_rng(seed)
    prob = Problem(fit.cells)
    successes = _simulate(fit, prob, nsim, use_u, rng)
    hessian = hessian_at(prob, np.concatenate([fit.theta, fit.beta]), fit.u)
    # fixed blocks, whatever the worker count, so every refit sees the same arithmetic
    blocks = [successes[i:i + block] for i in range(0, nsim, block)]
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
            bar.update(len(chunk))
    bar.close()
    params = np.vstack([p[0] for p in parts])
    theta = np.vstack([p[1] for p in parts])
    failed = int(np.isnan(params).any(axis=1).sum())
    stats = None
    if statistic is not None:
        rows = [s for p in parts for s in p[2]]
        width = max((len(s) for s in rows if s is not None), default=1)
        stats = np.vstack([np.full(width, np.nan) if s is None else s for s in rows])
    return BootstrapResult(fit, params, theta, stats, failed, use_u)
