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

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..fit import MixedFit
from ..frame import Frame
from ..poststrat import CellDraws, LinearDraws
from .laplace import Problem, joint_covariance, optimize


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
        M, offset, unseen, _ = self.fit.linear_map(frame.data)
        ok = ~np.isnan(self.params).any(axis=1)
        point = self.fit.cells.family.mean(offset + M @ np.concatenate([self.fit.beta, self.fit.b]))
        return CellDraws(point=point, draws=LinearDraws(self.params[ok], M, offset),
                         method="bootstrap", unseen=unseen)


def _simulate(fit: MixedFit, nsim: int, use_u: bool, rng: np.random.Generator) -> np.ndarray:
    """Simulated successes, (nsim, n_cells)."""
    cells = fit.cells
    prob = Problem(cells)
    eta0 = cells.offset + cells.X @ fit.beta
    if use_u:
        eta = np.broadcast_to(eta0 + prob.Z @ fit.b, (nsim, cells.n_cells))
    else:
        u = rng.standard_normal((nsim, prob.q))
        eta = eta0 + (prob.Z @ (fit.lam * u).T).T
    mu = cells.family.mean(eta)
    return cells.family.simulate(cells.stats, mu, rng)["successes"]


def _refit_many(fit: MixedFit, successes: np.ndarray, statistic) -> list:
    """Refit each row of ``successes``; returns (params, theta, stat) or None per row."""
    cells = fit.cells
    start = np.concatenate([fit.theta, fit.beta])
    T = len(fit.theta)
    out = []
    for s in successes:
        sim = cells.with_stats({"successes": s, "trials": cells.stats["trials"]})
        prob = Problem(sim)
        try:
            params, state, info = optimize(prob, start, fit.u)
        except (FloatingPointError, np.linalg.LinAlgError):
            out.append(None)
            continue
        if not info["converged"]:
            out.append(None)
            continue
        theta, beta = params[:T], params[T:]
        b = np.repeat(theta, cells.design.n_levels) * state.u
        stat = None
        if statistic is not None:
            refit = MixedFit(sim, theta, beta, state.u, state.objective, info,
                             joint_covariance(prob, state), bool(np.any(theta < 1e-4)))
            stat = np.atleast_1d(np.asarray(statistic(refit), dtype=float))
        out.append((np.concatenate([beta, b]), theta, stat))
    return out


def bootstrap(fit: MixedFit, nsim: int = 999, use_u: bool = True, statistic=None, seed=None,
              workers: int = 1, progress: bool = True, batch: int = 25) -> BootstrapResult:
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
    batch : int
        Refits per task handed to a worker.
    """
    rng = np.random.default_rng(seed)
    successes = _simulate(fit, nsim, use_u, rng)
    chunks = [successes[i:i + batch] for i in range(0, nsim, batch)]
    results = []
    bar = tqdm(total=nsim, desc="bootstrap", unit="refit", disable=None if progress else True)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(_refit_many, [fit] * len(chunks), chunks, [statistic] * len(chunks)):
                results += part
                bar.update(len(part))
    else:
        for chunk in chunks:
            part = _refit_many(fit, chunk, statistic)
            results += part
            bar.update(len(part))
    bar.close()
    k = len(fit.beta) + len(fit.u)
    params = np.full((nsim, k), np.nan)
    theta = np.full((nsim, len(fit.theta)), np.nan)
    stats = None
    for i, r in enumerate(results):
        if r is None:
            continue
        params[i], theta[i] = r[0], r[1]
        if statistic is not None:
            if stats is None:
                stats = np.full((nsim, len(r[2])), np.nan)
            stats[i] = r[2]
    failed = sum(r is None for r in results)
    return BootstrapResult(fit, params, theta, stats, failed, use_u)
