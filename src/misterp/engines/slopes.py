"""The Laplace deviance of a GLMM whose terms have several effects (varying slopes), and its gradient.

The same objective as :mod:`.deviance`, for a general block-diagonal
Lambda(theta) (:mod:`.structure`) instead of a diagonal one:

    f(theta, beta) = log det H + |u~|^2 - 2 log p(y | eta(u~)),   H = Lambda' Z'WZ Lambda + I,

with Z's entries the effects' values (1 for an intercept, x for a slope).
Its exact gradient follows the diagonal case: the explicit derivative at the
modes, the derivative of log det H through W along d eta including d u~
(H du = dLambda' Z'r - Lambda' Z'W d eta), and through Lambda itself,
2 tr(H^-1 Lambda' A dLambda). One response at a time; dense up to SPARSE_Q random
effects, above on the sparse path (:mod:`.slopes_sparse`).

f is unchanged when a column of a term's T and the matching effects of u
change sign together, so the search runs over all reals and the columns are
turned to a positive diagonal at the end (lme4 bounds the diagonal below by 0).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve
from scipy.optimize import minimize, minimize_scalar

from ..model.cells import Cells
from .structure import Structure


# Above this many random effects, the sparse path (slopes_sparse.py), as deviance.py's and lmm.py's
SPARSE_Q = 300


def slope_problem(cells: Cells):
    """The arrays of a Laplace fit with slopes: dense (:class:`SlopeProblem`) up to SPARSE_Q random
    effects, sparse (:class:`.slopes_sparse.SparseSlopeProblem`) above."""
    if Structure.of(cells.design).q > SPARSE_Q:
        from .slopes_sparse import SparseSlopeProblem

        return SparseSlopeProblem(cells)
    return SlopeProblem(cells)


class SlopeProblem:
    """The arrays of a Laplace fit with slopes on one set of cells."""

    def __init__(self, cells: Cells):
        design = cells.design
        self.family, self.stats = cells.family, cells.stats
        self.X, self.offset = cells.X, cells.offset
        self.structure = Structure.of(design)
        self.Z = design.random_matrix(cells.table)
        self.q = self.Z.shape[1]
        # Z'WZ as one sparse product: each cell's pairs of nonzero effects, with their products
        # (padded entries have value 0 and add nothing)
        cols, vals = design.random_entries(cells.table)
        flat = (cols[:, :, None] * self.q + cols[:, None, :]).ravel()
        value = (vals[:, :, None] * vals[:, None, :]).ravel()
        cell = np.repeat(np.arange(cells.n_cells), cols.shape[1] ** 2)
        self.pairs = sp.csr_matrix((value, (flat, cell)), shape=(self.q * self.q, cells.n_cells))
        self.constant = float(self.family.log_constant(self.stats).sum())

    def ztwz(self, w: np.ndarray) -> np.ndarray:
        return np.asarray(self.pairs @ w).reshape(self.q, self.q)

    def deviance(self, eta: np.ndarray) -> float:
        return -2.0 * (float(self.family.loglik(self.stats, eta, constant=False).sum()) + self.constant)

    def pirls(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray, tol: float = 1e-15, max_iter: int = 60):
        """Conditional modes at (theta, beta): Newton steps with halving; returns a dict of the state."""
        Lam = self.structure.matrix(theta)

        def factorise(w):
            A = self.ztwz(w)
            L = np.linalg.cholesky(Lam.T @ A @ Lam + np.eye(self.q))
            return (lambda b: cho_solve((L, True), b)), (lambda: 2.0 * np.log(np.diag(L)).sum()), \
                {"Lam": Lam, "A": A, "L": L}

        return conditional_modes(self, self.offset + self.X @ beta, self.Z @ Lam, u0, factorise, tol, max_iter)

    def covariance(self, state: dict) -> np.ndarray:
        """Covariance of (beta, u) from the curvature of the penalized deviance at the mode, (p + q, p + q)."""
        _, w, _, _ = self.family.working(self.stats, state["eta"])
        X, ZL = self.X, state["ZL"]
        xwx = X.T @ (w[:, None] * X)
        zlwx = np.asarray(ZL.T @ (w[:, None] * X))
        lower = state["Lam"].T @ state["A"] @ state["Lam"] + np.eye(self.q)
        return np.linalg.inv(np.block([[xwx, zlwx.T], [zlwx, lower]]))

    def gradient(self, state: dict) -> np.ndarray:
        """Exact d f / d (theta, beta) at a PIRLS solution, (n_theta + p,)."""
        s, u, Lam, ZL, A, L = self.structure, state["u"], state["Lam"], state["ZL"], state["A"], state["L"]
        _, w, r, dw = self.family.working(self.stats, state["eta"])
        n_theta = s.n_theta
        # E_m u for every theta entry m: (E_m u)[rows] = u[cols] at the entry's positions
        E_u = np.zeros((self.q, n_theta))
        np.add.at(E_u, (s.rows, s.index), u[s.cols])
        d_eta = np.hstack([np.asarray(self.Z @ E_u), self.X])  # at fixed u
        explicit = -2.0 * r @ d_eta
        ztr = self.Z.T @ r
        rhs = -Lam.T @ (self.Z.T @ (w[:, None] * d_eta))
        np.add.at(rhs, (s.cols, s.index), ztr[s.rows])  # dLambda' Z'r
        Hinv = cho_solve((L, True), np.eye(self.q))
        du = Hinv @ rhs
        d_eta_total = d_eta + ZL @ du
        leverage = np.einsum("ij,ij->i", np.asarray(ZL @ Hinv), np.asarray(ZL))
        through_w = (leverage * dw) @ d_eta_total
        G = Hinv @ Lam.T @ A
        through_lambda = np.zeros(len(explicit))
        np.add.at(through_lambda, s.index, 2.0 * G[s.cols, s.rows])
        return explicit + through_w + through_lambda


class _Objective:
    def __init__(self, prob, u0: np.ndarray):
        self.prob, self.u, self.evaluations = prob, u0.copy(), 0

    def state(self, params: np.ndarray) -> dict:
        n_theta = self.prob.structure.n_theta
        try:
            st = self.prob.pirls(params[:n_theta], params[n_theta:], self.u)
        except (np.linalg.LinAlgError, FloatingPointError):
            st = self.prob.pirls(params[:n_theta], params[n_theta:], np.zeros(self.prob.q))
        self.u = st["u"]
        self.evaluations += 1
        return st

    def __call__(self, params: np.ndarray):
        st = self.state(params)
        return float(st["objective"]), self.prob.gradient(st)


def conditional_modes(problem, eta_fixed: np.ndarray, ZL, u0: np.ndarray, factorise, tol: float,
                      max_iter: int) -> dict:
    """PIRLS, shared by the dense and the sparse slope problems: Newton steps in the spherical
    effects u (q,) from ``u0``, halved until the penalized deviance u'u + deviance(eta) does not rise
    (at most 30 times, as lme4), until the Newton decrement falls below ``tol`` |pdev|.

    ``factorise(w)`` factors H = Lambda' Z'WZ Lambda + I at the working weights w (n_cells,) and
    returns (solve, logdet, parts): H^-1 b, a callable giving log det H, and the arrays the state
    keeps. Returns the state: u, eta, ZL, the parts and ``objective`` = log det H + pdev.
    """
    u = u0.copy()
    eta = eta_fixed + ZL @ u
    pdev = u @ u + problem.deviance(eta)
    for _ in range(max_iter):
        _, w, r, _ = problem.family.working(problem.stats, eta)
        solve, logdet, parts = factorise(w)
        grad = u - ZL.T @ r
        step = -solve(grad)
        if -(grad @ step) < tol * max(abs(pdev), 1.0):
            return {"u": u, "eta": eta, "ZL": ZL, **parts, "objective": logdet() + pdev}
        t = 1.0
        for _ in range(30):
            u_new = u + t * step
            eta_new = eta_fixed + ZL @ u_new
            pdev_new = u_new @ u_new + problem.deviance(eta_new)
            if pdev_new <= pdev + 1e-12 * abs(pdev):
                break
            t *= 0.5
        u, eta, pdev = u_new, eta_new, pdev_new
    raise FloatingPointError("PIRLS did not converge")


def positive_diagonal(structure: Structure, theta: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same fit with every T's diagonal >= 0: a column of T and its effects in u change sign together."""
    return structure.positive(theta), u * structure.column_signs(theta)


def slopes_fit(cells: Cells, singular_tol: float, start: np.ndarray | None = None, u0: np.ndarray | None = None):
    """The Laplace fit with slopes as a MixedFit, with the covariance of (beta, u) at the mode."""
    from .laplace import MixedFit

    found = fit_slopes(cells, start, u0)
    return MixedFit(cells=cells, theta=found["theta"], beta=found["beta"], u=found["u"],
                    objective=found["objective"], info=found["info"],
                    cov=found["problem"].covariance(found["state"]), singular_tol=singular_tol)


def fit_slopes(cells: Cells, start: np.ndarray | None = None, u0: np.ndarray | None = None,
               boundary_tol: float = 1e-5) -> dict:
    """The Laplace fit of a model with slopes: theta, beta, u, the deviance and an optimizer report."""
    from .glm import irls

    prob = slope_problem(cells)
    s = prob.structure
    if start is None:
        beta, _, _ = irls(cells.X, cells.stats, cells.offset, cells.family)
        start, u0 = _start(prob, beta)
    obj = _Objective(prob, np.zeros(prob.q) if u0 is None else u0)
    res = minimize(obj, start, jac=True, method="L-BFGS-B",
                   options={"ftol": 1e-13, "gtol": 1e-7, "maxiter": 2000, "maxcor": 20})
    params = res.x.copy()
    best = obj.state(params)
    theta, u = positive_diagonal(s, params[:s.n_theta], best["u"])
    params[:s.n_theta] = theta
    near = s.diagonal & (theta < boundary_tol) & (theta != 0)
    if near.any():  # lme4's optimum on the boundary: that diagonal entry exactly 0
        trial = params.copy()
        trial[:s.n_theta][near] = 0.0
        free = np.ones(len(params), dtype=bool)
        free[:s.n_theta][near] = False

        def on_face(x):
            full = trial.copy()
            full[free] = x
            f, g = obj(full)
            return f, g[free]

        sub = minimize(on_face, trial[free], jac=True, method="L-BFGS-B",
                       options={"ftol": 1e-13, "gtol": 1e-7, "maxiter": 2000, "maxcor": 20})
        trial[free] = sub.x
        st = obj.state(trial)
        if st["objective"] <= best["objective"] + 1e-10:
            theta, u = positive_diagonal(s, trial[:s.n_theta], st["u"])
            params, best = np.concatenate([theta, trial[s.n_theta:]]), st
    st = obj.state(params)
    grad = prob.gradient(st)
    interior = np.ones(len(params), dtype=bool)
    interior[:s.n_theta] = ~(s.diagonal & (params[:s.n_theta] == 0))
    max_grad = float(np.max(np.abs(grad[interior]), initial=0.0))
    info = {"converged": max_grad < 1e-3, "message": str(res.message), "evaluations": obj.evaluations,
            "max_abs_gradient": max_grad}
    return {"theta": params[:s.n_theta], "beta": params[s.n_theta:], "u": st["u"], "objective": float(st["objective"]),
            "info": info, "state": st, "problem": prob}


def hessian_at(cells: Cells, params: np.ndarray, u0: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """The deviance's Hessian at ``params`` (theta, beta), by central differences of the exact gradient."""
    obj = _Objective(slope_problem(cells), u0)
    d = len(params)
    hess = np.empty((d, d))
    for j in range(d):
        step = np.zeros(d)
        step[j] = h
        hess[:, j] = (obj(params + step)[1] - obj(params - step)[1]) / (2 * h)
    return 0.5 * (hess + hess.T)


def _start(prob, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T = c I for every term, c minimising the deviance by a bounded 1-D search (as the
    intercept-only engine starts), with the GLM's beta."""
    s = prob.structure
    u = np.zeros(prob.q)

    def deviance(c: float) -> float:
        st = prob.pirls(c * s.start(), beta, u)
        u[:] = st["u"]
        return float(st["objective"])

    best = minimize_scalar(deviance, bounds=(0.0, 2.0), method="bounded", options={"xatol": 0.02})
    deviance(best.x)
    return np.concatenate([best.x * s.start(), beta]), u.copy()


