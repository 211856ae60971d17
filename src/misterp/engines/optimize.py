"""Optimising the Laplace deviance: L-BFGS-B with the exact gradient, and batched Newton.

``optimize`` finds lme4's optimum for one response (or a refit, preconditioned
by a known Hessian); ``newton_batch`` solves a block of simulated responses at
once for the bootstrap; ``start_values`` picks the starting point.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from ..model.cells import Cells
from .deviance import Problem, State, gradient, pirls
from .glm import irls


class Objective:
    """f(theta, beta) and its gradient for a batch of one, warm-starting PIRLS."""

    def __init__(self, prob: Problem, u0: np.ndarray | None = None):
        self.prob = prob
        self.u = np.zeros((1, prob.q)) if u0 is None else np.atleast_2d(u0).copy()
        self.evaluations = 0

    def state(self, params: np.ndarray) -> State:
        try:
            st = pirls(self.prob, params[None, :], self.u)
        except (np.linalg.LinAlgError, FloatingPointError):
            st = pirls(self.prob, params[None, :], np.zeros((1, self.prob.q)))
        self.u = st.u
        self.evaluations += 1
        return st

    def __call__(self, params: np.ndarray):
        st = self.state(params)
        return float(st.objective[0]), gradient(self.prob, st)[0]


def optimize(prob: Problem, start: np.ndarray, u0: np.ndarray | None = None,
             boundary_tol: float = 1e-5, hessian: np.ndarray | None = None) -> tuple[np.ndarray, State, dict]:
    """Minimise f over (theta >= 0, beta) from ``start``; returns (params, state, info).

    f is even in each theta_k (flipping its sign flips u), so theta = 0 is
    always a stationary point along theta_k. A bounded optimizer that touches
    the bound stops there; an unbounded one passes through, so we optimise
    over all reals and report |theta|. A theta that ends within
    ``boundary_tol`` of 0 is then tried at exactly 0 and kept there when the
    deviance does not rise, as lme4 does.

    ``hessian`` (d, d), when given (a refit near a known optimum), makes
    L-BFGS-B work in coordinates where that curvature is the identity, which
    cuts the number of PIRLS solves several-fold.
    """
    T = prob.n_terms
    obj = Objective(prob, u0)
    everything = np.ones(len(start), dtype=bool)
    params, message = _lbfgs(obj, np.asarray(start, float), everything, hessian)
    params[:T] = np.abs(params[:T])
    best = obj.state(params)
    near = params[:T] < boundary_tol
    if near.any() and not np.all(params[:T][near] == 0):
        trial = params.copy()
        trial[:T][near] = 0.0
        free = everything.copy()
        free[:T][near] = False
        trial, _ = _lbfgs(obj, trial, free, hessian)
        st0 = obj.state(trial)
        if st0.objective[0] <= best.objective[0] + 1e-10:
            params, best = trial, st0
    return params, best, _report(prob, best, params, message, obj.evaluations)


def _lbfgs(obj: Objective, x0: np.ndarray, free: np.ndarray, hessian: np.ndarray | None):
    """L-BFGS-B over x[free] = x0[free] + C z, the rest held at x0; returns (x, message).

    C is the identity, or H^(-1/2) of the free block of ``hessian`` with its
    eigenvalues taken in absolute value and floored at 1e-3 of the largest
    (theta = 0 can be a maximum along theta_k, or flat).
    """
    C = np.eye(int(free.sum()))
    if hessian is not None:
        vals, vecs = np.linalg.eigh(hessian[np.ix_(free, free)])
        vals = np.maximum(np.abs(vals), 1e-3 * np.abs(vals).max())
        C = vecs / np.sqrt(vals)

    def fun(z):
        x = x0.copy()
        x[free] += C @ z
        f, g = obj(x)
        return f, C.T @ g[free]

    res = minimize(fun, np.zeros(C.shape[1]), jac=True, method="L-BFGS-B",
                   options={"ftol": 1e-13, "gtol": 1e-7, "maxiter": 2000, "maxcor": 20})
    x = x0.copy()
    x[free] += C @ res.x
    return x, str(res.message)


def hessian_at(prob: Problem, params: np.ndarray, u0: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Hessian of f at ``params`` (d,), by central differences of the exact gradient; (d, d)."""
    d = len(params)
    shifted = np.repeat(params[None, :], 2 * d, axis=0)
    shifted[np.arange(d), np.arange(d)] += h
    shifted[d + np.arange(d), np.arange(d)] -= h
    many = prob.subset(np.zeros(2 * d, dtype=int))
    g = gradient(many, pirls(many, shifted, np.repeat(np.atleast_2d(u0), 2 * d, axis=0)))
    hess = (g[:d] - g[d:]) / (2 * h)
    return 0.5 * (hess + hess.T)


def _report(prob: Problem, state: State, params: np.ndarray, message: str, evaluations: int) -> dict:
    grad = gradient(prob, state)[0]
    interior = np.ones(len(params), dtype=bool)
    interior[:prob.n_terms] = params[:prob.n_terms] > 0  # a theta held at 0 is a boundary
    max_grad = float(np.max(np.abs(grad[interior]), initial=0.0))
    converged = max_grad < 1e-3
    if not converged and interior.any():
        # lme4's checkConv: the gradient grows with the data, so judge it scaled by the curvature,
        # R^-1 g with R'R = H (a step's size in the optimum's own units), each entry the smaller of
        # that and |g|, against 0.002; only computed when the plain gradient is not already small
        hess = hessian_at(prob, params, state.u[0])[np.ix_(interior, interior)]
        try:
            scaled = np.linalg.solve(np.linalg.cholesky(hess).T, grad[interior])
            converged = float(np.max(np.minimum(np.abs(scaled), np.abs(grad[interior])))) < 2e-3
        except np.linalg.LinAlgError:  # not positive definite: no minimum there
            pass
    return {"converged": converged, "message": message, "evaluations": evaluations,
            "max_abs_gradient": max_grad}


def newton_batch(prob: Problem, start: np.ndarray, u0: np.ndarray, tol: float = 1e-6,
                 max_iter: int = 40, h: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise f for every response of the batch at once.

    Newton steps with the Hessian from differences of the exact gradient,
    made positive definite by taking absolute eigenvalues (theta = 0 can be a
    maximum along theta_k), and a backtracking line search per response.
    Returns params (B, T + p) with |theta|, modes u (B, q), and a converged
    mask (B,). Every response's path depends only on its own data.
    """
    params = np.array(start, dtype=float)
    state = pirls(prob, params, u0)
    u, f, g = state.u, state.objective, gradient(prob, state)
    d = params.shape[1]
    converged = np.max(np.abs(g), axis=1) < tol
    for _ in range(max_iter):
        act = np.flatnonzero(~converged)
        if len(act) == 0:
            break
        sub = prob.subset(act)
        hess = np.empty((len(act), d, d))
        for j in range(d):
            shifted = params[act].copy()
            shifted[:, j] += h
            hess[:, :, j] = (gradient(sub, pirls(sub, shifted, u[act])) - g[act]) / h
        vals, vecs = np.linalg.eigh(0.5 * (hess + np.swapaxes(hess, 1, 2)))
        vals = np.maximum(np.abs(vals), 1e-8)
        step = -np.einsum("bij,bj->bi", vecs / vals[:, None, :], np.einsum("bji,bj->bi", vecs, g[act]))
        t = np.ones(len(act))
        for _ in range(30):
            trial = pirls(sub, params[act] + t[:, None] * step, u[act])
            slope = (g[act] * step).sum(1)
            bad = trial.objective > f[act] + 1e-4 * t * np.minimum(slope, 0) + 1e-10 * np.abs(f[act])
            if not bad.any():
                break
            t = np.where(bad, 0.5 * t, t)
        params[act] += t[:, None] * step
        u[act], f[act] = trial.u, trial.objective
        g[act] = gradient(sub, trial)
        converged[act] = np.max(np.abs(g[act]), axis=1) < tol
    T = prob.n_terms
    # report |theta|; b = theta u is unchanged when u flips with theta's sign
    u = u * np.where(params[:, :T] < 0, -1.0, 1.0)[:, prob.term_of_level]
    params[:, :T] = np.abs(params[:, :T])
    return params, u, converged


def quasi_newton_batch(prob: Problem, start: np.ndarray, u0: np.ndarray, hessian: np.ndarray, tol: float = 1e-6,
                       max_iter: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise f for every response of the batch at once by BFGS from a shared curvature.

    Refits of a bootstrap start at the original optimum, where ``hessian`` (d, d) (its
    eigenvalues in absolute value, floored at 1e-3 of the largest) is close to every refit's own:
    the first step is nearly Newton's, and each response's BFGS update refines its inverse
    (B, d, d). Each iteration is one batched PIRLS and gradient for the responses still moving
    (a backtracking line search re-solves only those whose deviance did not fall enough), so a
    block of refits shares every Python-level step and the elimination of the sparse path.
    Returns params (B, d) with |theta|, modes u (B, q) and a converged mask (B,): max |gradient|
    below ``tol``, or a predicted decrease g' H^-1 g below 1e-13 |f| (L-BFGS-B's ftol: the
    gradient of a deviance of 10^4 has a rounding floor near 1e-4), and no theta newly within 1e-5
    of 0 (those, and the rest, are left to :func:`optimize`).
    """
    vals, vecs = np.linalg.eigh(0.5 * (hessian + hessian.T))
    vals = np.maximum(np.abs(vals), 1e-3 * np.abs(vals).max())
    inverse0 = (vecs / vals) @ vecs.T
    params = np.array(start, dtype=float)
    state = pirls(prob, params, u0)
    u, f, g = state.u.copy(), state.objective.copy(), gradient(prob, state)
    inverse = np.repeat(inverse0[None], len(params), axis=0)
    converged = np.max(np.abs(g), axis=1) < tol
    failed = np.zeros(len(params), dtype=bool)
    for _ in range(max_iter):
        act = np.flatnonzero(~converged & ~failed)
        if len(act) == 0:
            break
        step = -np.einsum("bij,bj->bi", inverse[act], g[act])
        uphill = (step * g[act]).sum(1) >= 0  # a lost approximation: start it again
        inverse[act[uphill]] = inverse0
        step[uphill] = -g[act[uphill]] @ inverse0
        moved = _line_search(prob, act, params, u, f, g, step)
        for i, (p_new, u_new, f_new, g_new) in moved.items():
            s, y = p_new - params[i], g_new - g[i]
            inverse[i] = bfgs_update(inverse[i], s, y)
            params[i], u[i], f[i], g[i] = p_new, u_new, f_new, g_new
        failed[np.setdiff1d(act, list(moved))] = True
        decrease = np.einsum("bi,bij,bj->b", g, inverse, g)
        converged = (np.max(np.abs(g), axis=1) < tol) | (decrease < 1e-13 * np.maximum(np.abs(f), 1.0))
    T = prob.n_terms
    # report |theta|; b = theta u is unchanged when u flips with theta's sign
    u = u * np.where(params[:, :T] < 0, -1.0, 1.0)[:, prob.term_of_level]
    params[:, :T] = np.abs(params[:, :T])
    # a theta that ended near 0 (unless it started there, where it stays) is for optimize's boundary search
    near = (params[:, :T] < 1e-5) & (np.asarray(start)[:, :T] != 0)
    return params, u, converged & ~failed & ~near.any(axis=1)


def _line_search(prob: Problem, act: np.ndarray, params, u, f, g, step: np.ndarray) -> dict:
    """Backtracking (Armijo) along ``step`` (len(act), d) for the responses ``act``; returns
    response -> (params, u, f, gradient) for those that found a lower deviance."""
    t = np.ones(len(act))
    pending = np.arange(len(act))
    slope = (g[act] * step).sum(1)
    moved = {}
    for _ in range(30):
        idx = act[pending]
        sub = prob.subset(idx)
        trial = params[idx] + t[pending, None] * step[pending]
        st = pirls(sub, trial, u[idx])
        ok = st.objective <= f[idx] + 1e-4 * t[pending] * slope[pending] + 1e-10 * np.abs(f[idx])
        grad = gradient(sub, st)
        for j in np.flatnonzero(ok):
            moved[int(idx[j])] = (trial[j], st.u[j], st.objective[j], grad[j])
        pending = pending[~ok]
        if len(pending) == 0:
            break
        t[pending] *= 0.5
    return moved


def bfgs_update(inverse: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """BFGS's update of an inverse Hessian (d, d) by a step s and the gradient's change y; kept
    when the curvature s'y is not positive."""
    sy = float(s @ y)
    if sy <= 1e-12 * float(np.sqrt((s @ s) * (y @ y))):
        return inverse
    hy = inverse @ y
    return inverse + ((sy + y @ hy) / sy ** 2) * np.outer(s, s) - (np.outer(hy, s) + np.outer(s, hy)) / sy


def start_values(cells: Cells, prob: Problem | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Starting (theta, beta) and modes u: beta from the fixed-effects GLM.

    lme4 starts every theta at 1, far from the sds of 0.1-0.3 typical of MRP
    terms; from there L-BFGS-B spends most of its evaluations descending. With
    two or more terms we first find, by a bounded 1-D search (about ten PIRLS
    solves), the common theta that minimises the Laplace deviance, and start
    there: it halves the evaluations on the CCES models. With one term the
    search buys nothing, and we keep lme4's theta = 1.
    """
    prob = Problem(cells) if prob is None else prob
    beta, _, _ = irls(cells.X, cells.stats, cells.offset, cells.family)
    T = len(cells.design.group_terms)
    start = np.concatenate([np.ones(T), beta])
    u = np.zeros((1, prob.q))
    if T < 2:
        return start, u[0]

    def deviance(theta: float) -> float:
        trial = start.copy()
        trial[:T] = theta
        state = pirls(prob, trial[None, :], u)
        u[:] = state.u
        return float(state.objective[0])

    best = minimize_scalar(deviance, bounds=(0.0, 2.0), method="bounded", options={"xatol": 0.02})
    start[:T] = best.x
    deviance(best.x)  # modes at the chosen start
    return start, u[0]
