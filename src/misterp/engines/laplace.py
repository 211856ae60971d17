"""Laplace GLMM on cells, equivalent to ``lme4::glmer(family = binomial)`` with nAGQ = 1.

Model: eta = offset + X beta + Z Lambda(theta) u, u ~ N(0, I); for an
intercept-only term Lambda is theta_k times the identity on its levels, so
theta_k is that term's sd. lme4 minimises the Laplace deviance

    f(theta, beta) = log det(H) + |u~|^2 - 2 sum log Binomial(s | n, mu),
    H = Lambda Z' W Z Lambda + I,

where u~ are the conditional modes found by PIRLS. We do the same, with an
exact gradient (envelope theorem plus the implicit derivative of u~), so
L-BFGS-B reaches lme4's optimum to ~1e-7 in a few dozen PIRLS solves.

The number of random-effect levels q of MRP models is small (tens to a few
hundred), so H is a dense q x q matrix; cells, not respondents, are the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.optimize import minimize

from ..cells import Cells
from .glm import irls


class Problem:
    """The arrays of one Laplace fit, with the products PIRLS needs.

    Parameters
    ----------
    cells : Cells
        Training cells; every cell has a level in every term.
    stats : dict, optional
        Other cell statistics (simulated responses) on the same cells.
    """

    def __init__(self, cells: Cells, stats: dict | None = None):
        self.family = cells.family
        self.X = cells.X
        self.offset = cells.offset
        self.stats = cells.stats if stats is None else stats
        sizes = cells.design.n_levels
        self.n_terms = len(sizes)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])
        self.q = int(self.starts[-1])
        self.term_of_level = np.repeat(np.arange(self.n_terms), sizes)
        n = cells.n_cells
        self.cols = cells.groups + self.starts[:-1, None]  # (T, n) column of each cell in Z
        self.Z = sp.csr_matrix((np.ones(self.cols.size), (np.tile(np.arange(n), self.n_terms), self.cols.ravel())),
                               shape=(n, self.q))
        # flat (q*q) positions of every (term k, term l, cell) pair, for Z'WZ by bincount
        self.pair_idx = (self.cols[:, None, :] * self.q + self.cols[None, :, :]).ravel()
        self.pair_cell = np.tile(np.arange(n), self.n_terms * self.n_terms)

    def ztwz(self, w: np.ndarray) -> np.ndarray:
        """Z' diag(w) Z, dense (q, q)."""
        return np.bincount(self.pair_idx, weights=w[self.pair_cell], minlength=self.q * self.q).reshape(self.q, self.q)

    def deviance(self, eta: np.ndarray) -> float:
        return -2.0 * float(self.family.loglik(self.stats, eta).sum())


@dataclass
class State:
    """PIRLS result at one (theta, beta): the conditional modes and what they imply."""

    u: np.ndarray
    eta: np.ndarray
    lam: np.ndarray
    A: np.ndarray
    chol: tuple
    objective: float
    iterations: int


def pirls(prob: Problem, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray,
          tol: float = 1e-11, max_iter: int = 60) -> State:
    """Conditional modes u~ for fixed (theta, beta), by Newton steps with halving.

    Stops when the Newton decrement (the predicted fall of the penalized
    deviance) is below ``tol``, tighter than lme4's 1e-7 relative change.
    """
    lam = theta[prob.term_of_level]
    eta_fixed = prob.offset + prob.X @ beta
    u = u0.copy()
    eta = eta_fixed + prob.Z @ (lam * u)
    pdev = u @ u + prob.deviance(eta)
    for it in range(max_iter):
        _, w, r, _ = prob.family.working(prob.stats, eta)
        A = prob.ztwz(w)
        H = lam[:, None] * A * lam[None, :] + np.eye(prob.q)
        chol = cho_factor(H, lower=True)
        grad = u - lam * (prob.Z.T @ r)
        step = -cho_solve(chol, grad)
        decrement = -grad @ step
        if decrement < tol:
            logdet = 2.0 * np.log(np.diag(chol[0])).sum()
            return State(u, eta, lam, A, chol, logdet + pdev, it)
        t = 1.0
        for _ in range(30):
            u_new = u + t * step
            eta_new = eta_fixed + prob.Z @ (lam * u_new)
            pdev_new = u_new @ u_new + prob.deviance(eta_new)
            if pdev_new <= pdev + 1e-12 * abs(pdev):
                break
            t *= 0.5
        u, eta, pdev = u_new, eta_new, pdev_new
    raise FloatingPointError("PIRLS did not converge")


def gradient(prob: Problem, state: State, theta: np.ndarray) -> np.ndarray:
    """Exact d f / d (theta, beta) at a PIRLS solution, shape (n_terms + n_fixed,).

    f's explicit derivative at fixed u (envelope theorem), plus the derivative
    of log det H through W(eta(u~(phi), phi)), with du~/dphi from the
    stationarity condition u = Lambda Z' (s - n mu).
    """
    u, lam, A, chol = state.u, state.lam, state.A, state.chol
    _, w, r, dw = prob.family.working(prob.stats, state.eta)
    T, q = prob.n_terms, prob.q
    # partial d eta / d phi at fixed u: u at the cell's level for theta_k, X for beta
    d_eta = np.column_stack([u[prob.cols[k]] for k in range(T)] + [prob.X])
    explicit = -2.0 * (r @ d_eta)
    # H du = dLambda Z'r - Lambda Z' W d_eta
    ztr = prob.Z.T @ r
    rhs = -lam[:, None] * (prob.Z.T @ (w[:, None] * d_eta))
    for k in range(T):
        sl = slice(prob.starts[k], prob.starts[k + 1])
        rhs[sl, k] += ztr[sl]
    Hinv = cho_solve(chol, np.eye(q))
    du = Hinv @ rhs
    d_eta_total = d_eta + prob.Z @ (lam[:, None] * du)
    # leverage of each cell: diag(Z Lambda H^-1 Lambda Z'), gathered over term pairs
    scaled = (lam[:, None] * Hinv * lam[None, :]).ravel()
    lev = scaled[prob.pair_idx].reshape(T * T, -1).sum(axis=0)
    through_w = (lev * dw) @ d_eta_total
    # d log det H / d theta_k through Lambda itself: 2 tr(H^-1 E_k A Lambda)
    diag = ((A * lam[None, :]) * Hinv).sum(axis=1)
    through_lambda = np.zeros_like(explicit)
    through_lambda[:T] = 2.0 * np.bincount(prob.term_of_level, weights=diag, minlength=T)
    return explicit + through_w + through_lambda


class Objective:
    """f(theta, beta) and its gradient, warm-starting PIRLS from the last modes."""

    def __init__(self, prob: Problem, u0: np.ndarray | None = None):
        self.prob = prob
        self.u = np.zeros(prob.q) if u0 is None else u0.copy()
        self.evaluations = 0
        self.last = None

    def state(self, params: np.ndarray) -> State:
        T = self.prob.n_terms
        theta, beta = params[:T], params[T:]
        try:
            st = pirls(self.prob, theta, beta, self.u)
        except (LinAlgError, FloatingPointError):
            st = pirls(self.prob, theta, beta, np.zeros(self.prob.q))
        self.u = st.u
        self.evaluations += 1
        self.last = (params.copy(), st)
        return st

    def __call__(self, params: np.ndarray):
        st = self.state(params)
        return st.objective, gradient(self.prob, st, params[: self.prob.n_terms])


def optimize(prob: Problem, start: np.ndarray, u0: np.ndarray | None = None,
             boundary_tol: float = 1e-5) -> tuple[np.ndarray, State, dict]:
    """Minimise f over (theta >= 0, beta) from ``start``; returns (params, state, info).

    f is even in each theta_k (flipping its sign flips u), so theta = 0 is
    always a stationary point along theta_k. A bounded optimizer that touches
    the bound stops there; an unbounded one passes through, so we optimise
    over all reals and report |theta|. A theta that ends within
    ``boundary_tol`` of 0 is then tried at exactly 0 and kept there when the
    deviance does not rise, as lme4 does.
    """
    T = prob.n_terms
    obj = Objective(prob, u0)
    options = {"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000, "maxcor": 20}
    res = minimize(obj, start, jac=True, method="L-BFGS-B", options=options)
    params = res.x.copy()
    params[:T] = np.abs(params[:T])
    best = obj.state(params)
    near = params[:T] < boundary_tol
    if near.any() and not np.all(params[:T][near] == 0):
        trial = params.copy()
        trial[:T][near] = 0.0
        fixed = [(0.0, 0.0) if z else (None, None) for z in near] + [(None, None)] * (len(params) - T)
        res0 = minimize(obj, trial, jac=True, method="L-BFGS-B", bounds=fixed, options=options)
        st0 = obj.state(res0.x)
        if st0.objective <= best.objective + 1e-10:
            params, best = res0.x.copy(), st0
    grad = gradient(prob, best, params[:T])
    interior = np.ones(len(params), dtype=bool)
    interior[:T] = params[:T] > 0  # a theta held at 0 is a boundary, not a free parameter
    max_grad = float(np.max(np.abs(grad[interior]), initial=0.0))
    info = {"converged": max_grad < 1e-3, "message": str(res.message),
            "evaluations": obj.evaluations, "max_abs_gradient": max_grad}
    return params, best, info


def start_values(cells: Cells) -> np.ndarray:
    """lme4's start: theta = 1 for every term, beta from the fixed-effects GLM."""
    beta, _, _ = irls(cells.X, cells.stats, cells.offset, cells.family)
    return np.concatenate([np.ones(len(cells.design.group_terms)), beta])


def joint_covariance(prob: Problem, state: State) -> np.ndarray:
    """Covariance of (beta, u) from the curvature of the penalized deviance at the mode.

    The inverse of [[X'WX, X'WZL], [LZ'WX, H]], shape (p + q, p + q); its
    beta block is lme4's ``vcov(use.hessian = FALSE)``.
    """
    _, w, _, _ = prob.family.working(prob.stats, state.eta)
    X, lam = prob.X, state.lam
    zl_w_x = lam[:, None] * (prob.Z.T @ (w[:, None] * X))
    p = X.shape[1]
    top = np.hstack([X.T @ (w[:, None] * X), zl_w_x.T])
    bottom = np.hstack([zl_w_x, lam[:, None] * state.A * lam[None, :] + np.eye(prob.q)])
    precision = np.vstack([top, bottom])
    return cho_solve(cho_factor(precision, lower=True), np.eye(p + prob.q))


@dataclass(frozen=True)
class LaplaceEngine:
    """glmer-equivalent fits (binomial logit, Laplace approximation).

    Parameters
    ----------
    singular_tol : float
        A theta below this is reported as a singular (boundary) fit, as lme4's
        ``isSingular`` does with its default tolerance.
    """

    singular_tol: float = 1e-4

    def fit(self, cells: Cells, start: np.ndarray | None = None, u0: np.ndarray | None = None):
        from ..fit import MixedFit

        if not cells.design.group_terms:
            from ..errors import MisterpInputError
            raise MisterpInputError(
                "The laplace engine needs at least one grouping term such as '(1|g)' in the "
                "formula; for fixed effects only, use the glm engine."
            )
        prob = Problem(cells)
        params, state, info = optimize(prob, start_values(cells) if start is None else start, u0)
        T = prob.n_terms
        return MixedFit(cells=cells, theta=params[:T], beta=params[T:], u=state.u,
                        objective=state.objective, info=info,
                        cov=joint_covariance(prob, state),
                        singular=bool(np.any(params[:T] < self.singular_tol)))
