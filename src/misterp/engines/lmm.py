"""Linear mixed models on cells, as ``lme4::lmer``: the exact profiled deviance, REML or ML.

Model: y_i = x_c' beta + z_c' Lambda(theta) u + e_i for the rows i of cell c,
u ~ N(0, sigma^2 I), e ~ N(0, sigma^2). A cell's rows share x_c and z_c, so
its mean ybar_c and within sum of squares S_c are all the likelihood needs:
lme4's penalized least squares over rows equals, over cells,

    r^2(theta) = min_{beta, u}  sum_c [S_c + n_c (ybar_c - x_c' beta - z_c' Lambda u)^2] + |u|^2,

with weights n_c. With L L' = Lambda Z'WZ Lambda + I (W = diag(n_c)) and R_X
the Cholesky factor of the fixed effects' Schur complement, lme4 minimises

    ML:    log|L|^2 + N (1 + log(2 pi r^2 / N))
    REML:  log|L|^2 + log|R_X|^2 + (N - p) (1 + log(2 pi r^2 / (N - p)))

over theta >= 0; beta, u and sigma^2 = r^2 / N (or N - p) follow in closed
form. q is small in MRP models, so every matrix is dense.

The gradient is exact. With E_m = dLambda / dtheta_m, A = Z'WZ, F = Lambda'Z'WX,
S = R_X'R_X = X'WX - F'H^-1 F and the residuals e of the cell means:
d r^2 = -2 (Z'W e)' E_m u (the envelope theorem: beta and u minimise the
penalized sum of squares), d log|L|^2 = 2 tr(H^-1 Lambda'A E_m), and
d log|R_X|^2 = -2 tr(S^-1 dF' H^-1 F) + 2 tr(H^-1 F S^-1 F'H^-1 Lambda'A E_m).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

from ..model.cells import Cells
from .structure import Structure


class ProfiledDeviance:
    """lmer's profiled deviance of one set of cells, as a function of theta (n_terms,)."""

    def __init__(self, cells: Cells, reml: bool = True):
        stats = cells.stats
        n = stats["n"]
        self.reml = reml
        self.N, self.p = float(n.sum()), cells.X.shape[1]
        design = cells.design
        self.structure = Structure.of(design)
        self.term_of_level = np.repeat(np.arange(len(design.n_levels)), design.n_levels)
        Z = design.random_matrix(cells.table).toarray()
        X, y = cells.X, stats["total"] / n - cells.offset  # cell means, less the offset
        self.X, self.Z, self.n, self.y = X, Z, n, y
        self.within = float(stats["within"].sum())
        self.ZtWZ, self.ZtWX, self.XtWX = Z.T @ (n[:, None] * Z), Z.T @ (n[:, None] * X), X.T @ (n[:, None] * X)
        self.ZtWy, self.XtWy = Z.T @ (n * y), X.T @ (n * y)

    def solve(self, theta: np.ndarray) -> dict:
        """beta, u (b = Lambda u), r^2, the log determinants and the deviance at ``theta``."""
        Lam = self._lambda(theta)
        q = len(Lam)
        L = np.linalg.cholesky(Lam.T @ self.ZtWZ @ Lam + np.eye(q))
        RZX = solve_triangular(L, Lam.T @ self.ZtWX, lower=True)
        cu = solve_triangular(L, Lam.T @ self.ZtWy, lower=True)
        RX = np.linalg.cholesky(self.XtWX - RZX.T @ RZX)
        beta = cho_solve((RX, True), self.XtWy - RZX.T @ cu)
        u = solve_triangular(L.T, cu - RZX @ beta, lower=False)
        fitted = self.X @ beta + self.Z @ (Lam @ u)
        r2 = self.within + float(self.n @ (self.y - fitted) ** 2) + float(u @ u)
        logdet_L = 2.0 * np.log(np.diag(L)).sum()
        logdet_RX = 2.0 * np.log(np.diag(RX)).sum()
        if self.reml:
            dof = self.N - self.p
            deviance = logdet_L + logdet_RX + dof * (1.0 + np.log(2.0 * np.pi * r2 / dof))
        else:
            dof = self.N
            deviance = logdet_L + self.N * (1.0 + np.log(2.0 * np.pi * r2 / self.N))
        return {"beta": beta, "u": u, "r2": r2, "sigma": np.sqrt(r2 / dof), "deviance": float(deviance),
                "L": L, "RX": RX, "Lam": Lam, "residual": self.y - fitted}

    def value_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The deviance at ``theta`` (all reals) and its exact gradient, (n_theta,)."""
        sol = self.solve(theta)
        s = self.structure
        rows, cols, index = (s.rows, s.cols, s.index) if not s.simple else self._diagonal_entries
        u, L, Lam = sol["u"], sol["L"], sol["Lam"]
        v = self.Z.T @ (self.n * sol["residual"])
        d_r2 = np.zeros(len(theta))
        np.add.at(d_r2, index, -2.0 * v[rows] * u[cols])
        G = cho_solve((L, True), Lam.T @ self.ZtWZ)  # H^-1 Lambda' A
        d_logdet_L = np.zeros(len(theta))
        np.add.at(d_logdet_L, index, 2.0 * G[cols, rows])
        if self.reml:
            F = Lam.T @ self.ZtWX
            K = cho_solve((L, True), F)  # H^-1 F
            Q = K @ cho_solve((sol["RX"], True), np.eye(self.p))  # H^-1 F S^-1
            RLA = Q @ K.T @ Lam.T @ self.ZtWZ  # H^-1 F S^-1 F' H^-1 Lambda' A
            d_logdet_RX = np.zeros(len(theta))
            np.add.at(d_logdet_RX, index, -2.0 * np.einsum("ij,ij->i", self.ZtWX[rows], Q[cols]) + 2.0 * RLA[cols, rows])
            gradient = d_logdet_L + d_logdet_RX + (self.N - self.p) * d_r2 / sol["r2"]
        else:
            gradient = d_logdet_L + self.N * d_r2 / sol["r2"]
        return sol["deviance"], gradient

    @property
    def _diagonal_entries(self):
        """Lambda's entries for random intercepts: (row, column, theta index) of each level."""
        q = len(self.term_of_level)
        return np.arange(q), np.arange(q), self.term_of_level

    def _lambda(self, theta: np.ndarray) -> np.ndarray:
        if self.structure.simple:
            return np.diag(np.asarray(theta, float)[self.term_of_level])
        return self.structure.matrix(theta)

    def __call__(self, theta: np.ndarray) -> float:
        """The deviance at theta over all reals: a column of T's sign does not matter."""
        return self.solve(theta)["deviance"]

    def covariance(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """Covariance of (beta, u) given theta: sigma^2 times the inverse of the penalized
        system [[X'WX, X'WZ Lambda], [Lambda Z'WX, Lambda Z'WZ Lambda + I]]; its beta block is
        lme4's vcov."""
        Lam = self._lambda(theta)
        zx = Lam.T @ self.ZtWX
        system = np.block([[self.XtWX, zx.T], [zx, Lam.T @ self.ZtWZ @ Lam + np.eye(len(Lam))]])
        return sigma ** 2 * cho_solve(cho_factor(system, lower=True), np.eye(len(system)))


def optimize_theta(dev: ProfiledDeviance, start: np.ndarray, boundary_tol: float = 1e-5) -> tuple[np.ndarray, dict]:
    """Minimise the profiled deviance over theta; returns (theta >= 0, optimizer report).

    The deviance is even in each theta_k of an intercept-only term, so the
    search runs over all reals and reports |theta|; a theta ending within
    ``boundary_tol`` of 0 is tried at exactly 0 and kept there when the
    deviance does not rise (lme4's bounded optimum).
    """
    res = minimize(dev.value_and_gradient, np.asarray(start, float), method="L-BFGS-B", jac=True,
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000})
    theta = dev.structure.positive(res.x)
    best = dev(theta)
    near = (theta < boundary_tol) & dev.structure.diagonal
    if near.any() and not np.all(theta[near] == 0):
        free = ~near
        trial = theta.copy()
        trial[near] = 0.0

        def on_face(x):
            t = trial.copy()
            t[free] = x
            f, g = dev.value_and_gradient(t)
            return f, g[free]

        if free.any():
            sub = minimize(on_face, theta[free], method="L-BFGS-B", jac=True,
                           options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000})
            trial[free] = sub.x
            trial = dev.structure.positive(trial)
        if dev(trial) <= best + 1e-10:
            theta, best = trial, dev(trial)
    grad = dev.value_and_gradient(theta)[1]
    interior = ~(dev.structure.diagonal & (theta == 0))
    max_grad = float(np.max(np.abs(grad[interior]), initial=0.0))
    return theta, {"converged": bool(res.success or max_grad < 1e-3), "message": str(res.message),
                   "evaluations": int(res.nfev), "max_abs_gradient": max_grad}


def fit_lmm(cells: Cells, reml: bool = True, start: np.ndarray | None = None) -> dict:
    """theta, beta, u, sigma, the deviance (REML criterion or ML deviance), the joint covariance
    of (beta, u) and the optimizer report of lmer's fit on ``cells``."""
    dev = ProfiledDeviance(cells, reml)
    theta, info = optimize_theta(dev, dev.structure.start() if start is None else start)
    sol = dev.solve(theta)
    return {"theta": theta, "beta": sol["beta"], "u": sol["u"], "sigma": float(sol["sigma"]),
            "objective": sol["deviance"], "cov": dev.covariance(theta, sol["sigma"]), "info": info}

