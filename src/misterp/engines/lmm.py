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
form (:mod:`.lmm_optimize` searches theta). With up to SPARSE_Q random effects (MRP's usual
models) every matrix is dense; above, H = Lambda Z'WZ Lambda + I stays on Z'Z's sparsity pattern
(made block-closed for terms with slopes, :mod:`.sparse_terms`) and :mod:`.linalg` factors it,
with H^-1 only on that pattern for the traces below (for random intercepts only its diagonal).

The gradient is exact. With E_m = dLambda / dtheta_m, A = Z'WZ, F = Lambda'Z'WX,
S = R_X'R_X = X'WX - F'H^-1 F and the residuals e of the cell means:
d r^2 = -2 (Z'W e)' E_m u (the envelope theorem: beta and u minimise the
penalized sum of squares), d log|L|^2 = 2 tr(H^-1 Lambda'A E_m), and
d log|R_X|^2 = -2 tr(S^-1 dF' H^-1 F) + 2 tr(H^-1 F S^-1 F'H^-1 Lambda'A E_m).
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve, solve_triangular

from ..model.cells import Cells
from .linalg import Elimination, PrecisionCovariance
from .sparse_terms import SparseTerms
from .structure import Structure

# Above this many random effects, random intercepts go through the sparse path (as deviance.py's)
SPARSE_Q = 300


def indicators(groups: np.ndarray, n_levels: np.ndarray) -> sp.csr_matrix:
    """Z of random intercepts, (n_cells, q) sparse, from each cell's level in each term (n_terms, n_cells)."""
    starts = np.concatenate([[0], np.cumsum(n_levels)])
    T, n = groups.shape
    cols = (groups + starts[:-1, None]).ravel()
    return sp.csr_matrix((np.ones(T * n), (np.tile(np.arange(n), T), cols)), shape=(n, int(starts[-1])))


class ProfiledDeviance:
    """lmer's profiled deviance of one set of cells, as a function of theta (n_terms,)."""

    def __init__(self, cells: Cells, reml: bool = True):
        stats = cells.stats
        n = stats["n"]
        self.reml = reml
        self._last = None  # (theta, solution) of the last solve
        self.N, self.p = float(n.sum()), cells.X.shape[1]
        design = cells.design
        self.structure = Structure.of(design)
        self.term_of_level = np.repeat(np.arange(len(design.n_levels)), design.n_levels)
        # random intercepts: Z is the levels' indicators, straight from the cells' level codes
        Z = indicators(cells.groups, design.n_levels) if self.structure.simple else design.random_matrix(cells.table)
        self.sparse = self.structure.q > SPARSE_Q
        self.terms = None  # with slopes, the sparse path's Lambda (sparse_terms.py)
        if self.sparse and self.structure.simple:
            A = (Z.T @ sp.diags(n) @ Z).tocoo()
            self.elim = Elimination(self.structure.q, A.row, A.col, groups=self.term_of_level)
            self.A = np.zeros(self.elim.nnz)  # Z'WZ's values on H's pattern
            np.add.at(self.A, self.elim.positions(A.row, A.col), A.data)
        elif self.sparse:
            self.terms = SparseTerms.of(cells)
            Z, self.elim = self.terms.Z, self.terms.elim
            self.A = self.terms.ztwz(n)
        else:
            Z = Z.toarray()
        if self.sparse:
            self.rows, self.cols = self.elim.rows, self.elim.cols
            self.diag = (self.rows == self.cols).astype(float)
            self.A_matrix = sp.csr_matrix((self.A, (self.rows, self.cols)), shape=(self.structure.q,) * 2)
        self.groups = cells.groups  # (n_terms, n_cells) level of each cell in each term
        X, self.offset = cells.X, cells.offset
        self.X, self.Z, self.n = X, Z, n
        self.ZtWX, self.XtWX = np.asarray(Z.T @ (n[:, None] * X)), X.T @ (n[:, None] * X)
        self._response(stats)  # y: the cell means less the offset, and its sums
        if not self.sparse:
            self.ZtWZ = Z.T @ (n[:, None] * Z)

    def with_stats(self, stats: dict) -> "ProfiledDeviance":
        """The same deviance for other responses on the same cells (a bootstrap refit): Z, Z'WZ,
        the elimination and every other response-free part shared, the sums of y recomputed."""
        out = copy.copy(self)
        out._last = None
        out._response(stats)
        return out

    def _response(self, stats: dict) -> None:
        """The parts that depend on y: cell means, within sum of squares, Z'Wy and X'Wy."""
        n = self.n
        self.y = stats["total"] / n - self.offset
        self.within = float(stats["within"].sum())
        self.ZtWy, self.XtWy = np.asarray(self.Z.T @ (n * self.y)), self.X.T @ (n * self.y)

    def solve(self, theta: np.ndarray) -> dict:
        """beta, u (b = Lambda u), r^2, the log determinants and the deviance at ``theta``; the
        last one is kept, since the optimizer's end, its report and the fit ask for the same."""
        theta = np.asarray(theta, float)
        if self._last is not None and np.array_equal(self._last[0], theta):
            return self._last[1]
        sol = self._solve_sparse(theta) if self.sparse else self._solve_dense(theta)
        self._last = (theta.copy(), sol)
        return sol

    def _solve_dense(self, theta: np.ndarray) -> dict:
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
        return self._finish(beta, u, r2, logdet_L, RX, {"L": L, "Lam": Lam, "residual": self.y - fitted})

    def _solve_sparse(self, theta: np.ndarray) -> dict:
        """:meth:`solve` with H factorised sparse. Without L's triangular solves, R_ZX'R_ZX =
        F'H^-1 F and R_ZX'c_u = F'H^-1 Lambda Z'Wy, with F = Lambda Z'WX: one solve, p + 1 columns."""
        Lam = self._sparse_lambda(theta)
        factor = self.elim.factor(self._h_values(theta))
        F, g = np.asarray(Lam.T @ self.ZtWX), Lam.T @ self.ZtWy
        K = factor.solve(np.column_stack([F, g]))  # H^-1 [F, g]
        RX = np.linalg.cholesky(self.XtWX - F.T @ K[:, :-1])
        beta = cho_solve((RX, True), self.XtWy - F.T @ K[:, -1])
        u = K[:, -1] - K[:, :-1] @ beta
        fitted = self.X @ beta + self.Z @ (Lam @ u)
        r2 = self.within + float(self.n @ (self.y - fitted) ** 2) + float(u @ u)
        return self._finish(beta, u, r2, factor.logdet, RX, {"factor": factor, "Lam": Lam, "F": F, "K": K[:, :-1],
                                                           "residual": self.y - fitted})

    def _sparse_lambda(self, theta: np.ndarray) -> sp.spmatrix:
        """Lambda(theta), sparse (q, q): diagonal for random intercepts."""
        if self.terms is None:
            return sp.diags(np.asarray(theta, float)[self.term_of_level])
        return self.terms.lambda_matrix(theta)

    def _h_values(self, theta: np.ndarray) -> np.ndarray:
        """H = Lambda' A Lambda + I on the sparse pattern, (nnz,)."""
        if self.terms is None:
            lam = np.asarray(theta, float)[self.term_of_level]
            return lam[self.rows] * self.A * lam[self.cols] + self.diag
        return self.terms.h_values(self.terms.lambda_values(theta), self.A)

    def _finish(self, beta, u, r2, logdet_L, RX, extra: dict) -> dict:
        """The deviance (REML or ML) and sigma from r^2 and the log determinants."""
        logdet_RX = 2.0 * np.log(np.diag(RX)).sum()
        if self.reml:
            dof = self.N - self.p
            deviance = logdet_L + logdet_RX + dof * (1.0 + np.log(2.0 * np.pi * r2 / dof))
        else:
            dof = self.N
            deviance = logdet_L + self.N * (1.0 + np.log(2.0 * np.pi * r2 / self.N))
        return {"beta": beta, "u": u, "r2": r2, "sigma": np.sqrt(r2 / dof), "deviance": float(deviance),
                "RX": RX, **extra}

    def value_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The deviance at ``theta`` (all reals) and its exact gradient, (n_theta,)."""
        sol = self.solve(theta)
        if "gradient" not in sol:
            sol["gradient"] = self._gradient(np.asarray(theta, float), sol)
        return sol["deviance"], sol["gradient"].copy()

    def _gradient(self, theta: np.ndarray, sol: dict) -> np.ndarray:
        if self.sparse:
            return self._gradient_sparse(theta, sol)
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
        return gradient

    def _gradient_sparse(self, theta: np.ndarray, sol: dict) -> np.ndarray:
        """The exact gradient on the sparse path. d log|L|^2 for random intercepts needs only
        diag(H^-1): H^-1 Lambda A Lambda = I - H^-1, so each level's (H^-1 Lambda A)_ii =
        (1 - (H^-1)_ii) / lambda_i (0 where lambda_i = 0, the limit); with slopes, H^-1 on the pattern
        and :meth:`.SparseTerms.traces`. The REML term's (Q K' Lambda'A)_cr = Q_c . (A Lambda K)_r."""
        s, K, u = self.structure, sol["K"], sol["u"]
        rows, cols, index = (s.rows, s.cols, s.index) if self.terms is not None else self._diagonal_entries
        T = len(theta)
        v = self.Z.T @ (self.n * sol["residual"])
        d_r2 = np.bincount(index, -2.0 * v[rows] * u[cols], minlength=T)
        if self.terms is None:
            lam = np.asarray(theta, float)[self.term_of_level]
            with np.errstate(divide="ignore", invalid="ignore"):
                per_entry = np.where(lam != 0, (1.0 - sol["factor"].inverse_diagonal()) / lam, 0.0)
        else:
            per_entry = self.terms.traces(self.terms.lambda_values(theta), self.A, sol["factor"].inverse())
        d_logdet_L = 2.0 * np.bincount(index, per_entry, minlength=T)
        if not self.reml:
            return d_logdet_L + self.N * d_r2 / sol["r2"]
        Q = cho_solve((sol["RX"], True), K.T).T  # H^-1 F S^-1, (q, p)
        alk = self.A_matrix @ (sol["Lam"] @ K)  # A Lambda K, (q, p)
        per_entry = -2.0 * np.einsum("ij,ij->i", self.ZtWX[rows], Q[cols]) + 2.0 * np.einsum("ij,ij->i", Q[cols],
                                                                                             alk[rows])
        d_logdet_RX = np.bincount(index, per_entry, minlength=T)
        return d_logdet_L + d_logdet_RX + (self.N - self.p) * d_r2 / sol["r2"]

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
        if self.sparse:
            sol = self.solve(theta)
            return PrecisionCovariance(self.XtWX, sol["F"], self.elim, self._h_values(theta), sigma ** 2,
                                       factor=sol["factor"])
        Lam = self._lambda(theta)
        zx = Lam.T @ self.ZtWX
        system = np.block([[self.XtWX, zx.T], [zx, Lam.T @ self.ZtWZ @ Lam + np.eye(len(Lam))]])
        return sigma ** 2 * cho_solve(cho_factor(system, lower=True), np.eye(len(system)))
