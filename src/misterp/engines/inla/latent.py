"""The latent effects' precision H at one φ, factorised: dense, or sparse for county-sized terms.

H = [[A, B'], [B, C]] over x = (f, b): A (p, p) the fixed effects' block, B (q, p), C (q, q) the
group effects' (Z'WZ / disp plus their prior precision). Both systems give what the engine needs
of H: solves, log det H, each cell's leverage a_c' H^-1 a_c, H^-1's entries on the prior's pattern,
the fixed effects' covariance, and draws of N(x̂, H^-1) with their standard normals' log density.
:class:`ConstrainedSystem` gives the same on the structured terms' constraints.

The sparse system eliminates b first, on C's pattern (:class:`misterp.engines.linalg.Elimination`):
with K = C^-1 B and the Schur complement S = A - B'K = R R',

    x_f = S^-1 (g_f - K' g_b),   x_b = C^-1 g_b - K x_f,   log det H = log det C + log det S,

and a_c' H^-1 a_c = |R^-1 (F_c - z_c K)'|² + z_c C^-1 z_c', whose last term needs C^-1 only on
C's pattern (selected inversion): it never forms a dense q x q matrix.

Example
-------
>>> import numpy as np
>>> H = np.array([[4.0, 1.0, 1.0], [1.0, 3.0, 0.0], [1.0, 0.0, 2.0]])
>>> dense = DenseSystem(np.linalg.cholesky(H), p=1)
>>> bool(np.allclose(dense.solve(np.ones(3)), np.linalg.solve(H, np.ones(3))))
True
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve, solve_triangular

from ..linalg import Elimination, PrecisionCovariance


class DenseSystem:
    """H by its dense lower Cholesky factor ``chol`` (d, d); ``p`` fixed effects first."""

    def __init__(self, chol: np.ndarray, p: int):
        self.chol, self.p = chol, p
        self._inverse = None

    @property
    def logdet(self) -> float:
        return 2.0 * float(np.log(np.diag(self.chol)).sum())

    def solve(self, g: np.ndarray) -> np.ndarray:
        return cho_solve((self.chol, True), g)

    @property
    def inverse(self) -> np.ndarray:
        """H^-1, (d, d), formed once."""
        if self._inverse is None:
            self._inverse = cho_solve((self.chol, True), np.eye(len(self.chol)))
        return self._inverse

    def fixed_inverse(self) -> np.ndarray:
        """The fixed effects' block of H^-1, (p, p)."""
        return self.inverse[:self.p, :self.p]

    def inverse_entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """H^-1's b block at (rows, cols), (n,)."""
        return self.inverse[self.p + rows, self.p + cols]

    def quadratic(self, dev: np.ndarray) -> np.ndarray:
        """dev' H dev for each column of dev (d, n), (n,)."""
        v = self.chol.T @ dev
        return (v * v).sum(axis=0)

    def leverage(self, F: np.ndarray, cols: np.ndarray, vals: np.ndarray, pairs) -> np.ndarray:
        """a_c' H^-1 a_c for every cell, (n,), from F (n, p) and the cells' entries of Z (E, n);
        ``pairs`` is (flat index into H^-1's b block for every pair of a cell's entries, (pairs, n)
        values map)."""
        p, Hinv = self.p, self.inverse
        fh = F @ Hinv[:p]
        lev = np.einsum("ij,ij->i", fh[:, :p], F)
        lev += 2.0 * (vals * np.take_along_axis(fh[:, p:], cols.T, axis=1).T).sum(axis=0)
        index, value = pairs
        return lev + np.take(Hinv[p:, p:].ravel(), index) @ value

    def draws(self, mean: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n draws (d, n) of N(mean, H^-1), and each one's -|z|^2 / 2, (n,)."""
        z = rng.standard_normal((len(mean), n))
        return mean[:, None] + solve_triangular(self.chol, z, lower=True, trans="T"), -0.5 * (z * z).sum(axis=0)

    def arrays(self) -> dict:
        return {"chol": self.chol}


class SparseSystem:
    """H with its b block C sparse on ``elim``'s pattern: A (p, p), B (q, p), ``c`` (nnz,) C's values."""

    def __init__(self, A: np.ndarray, B: np.ndarray, elim: Elimination, c: np.ndarray):
        self.A, self.B, self.elim, self.c = A, B, elim, c
        self.p = A.shape[0]
        self.cov = PrecisionCovariance(A, B, elim, c)  # C's factor, K = C^-1 B and S's Cholesky factor
        self._c_inverse = None

    @property
    def logdet(self) -> float:
        return float(self.cov.factor.logdet) + 2.0 * float(np.log(np.diag(self.cov.schur_lower)).sum())

    def solve(self, g: np.ndarray) -> np.ndarray:
        p, K, R = self.p, self.cov.K, self.cov.schur_lower
        g_f, g_b = g[:p], g[p:]
        x_f = cho_solve((R, True), g_f - K.T @ g_b)
        x_b = self.cov.factor.solve(g_b) - K @ x_f
        return np.concatenate([x_f, x_b])

    @property
    def c_inverse(self) -> np.ndarray:
        """C^-1 on C's pattern (selected inversion), in the pattern's order."""
        if self._c_inverse is None:
            self._c_inverse = self.cov.factor.inverse()
        return self._c_inverse

    def fixed_inverse(self) -> np.ndarray:
        return self.cov.block(self.p)

    def inverse_entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """H^-1's b block at (rows, cols) on C's pattern, (n,): C^-1's (selected inversion) plus K S^-1 K''s."""
        M = self._schur_rows
        return self.c_inverse[self.elim.positions(rows, cols)] + np.einsum("ij,ij->i", M[rows], M[cols])

    @property
    def _schur_rows(self) -> np.ndarray:
        """K R^-T (q, p): K S^-1 K' = M M'."""
        return solve_triangular(self.cov.schur_lower, self.cov.K.T, lower=True).T

    def leverage(self, F: np.ndarray, cols: np.ndarray, vals: np.ndarray, pairs) -> np.ndarray:
        """|R^-1 (F_c - z_c K)'|² + z_c C^-1 z_c' per cell; ``pairs`` (positions in C's pattern of every
        pair of a cell's entries, (pairs, n) values map)."""
        K, R = self.cov.K, self.cov.schur_lower
        G = F - (vals[:, :, None] * K[cols]).sum(axis=0)                  # (n, p)
        W = solve_triangular(R, G.T, lower=True)
        index, value = pairs
        return (W * W).sum(axis=0) + np.take(self.c_inverse, index) @ value

    def draws(self, mean: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n draws (d, n) of N(mean, H^-1) by back-substitution, and each one's -|z|^2 / 2 =
        -(x - mean)' H (x - mean) / 2, (n,)."""
        X = self.cov.draws(mean, n, rng).T
        return X, -0.5 * self.quadratic(X - mean[:, None])

    def quadratic(self, dev: np.ndarray) -> np.ndarray:
        """dev' H dev for each column of dev (d, n), (n,)."""
        p = self.p
        C = sp.csr_matrix((self.c, (self.elim.rows, self.elim.cols)), shape=(len(self.B),) * 2)
        return (np.einsum("in,ij,jn->n", dev[:p], self.A, dev[:p]) + 2.0 * np.einsum("in,ij,jn->n", dev[p:],
                self.B, dev[:p]) + np.einsum("in,in->n", dev[p:], np.asarray(C @ dev[p:])))

    def arrays(self) -> dict:
        return {"A": self.A, "B": self.B, "c": self.c}


class ConstrainedSystem:
    """H restricted to the linear constraints A x = 0 (A: (k, d)), on top of an unconstrained ``base``.

    With U = H^-1 A' and A U = L L', the constrained covariance is Σ = H^-1 - W W', W = U L^-T (d, k);
    solves, leverages and H^-1's entries are the base's less W's low-rank part, draws are the base's
    corrected by kriging (x - W L^-1 A x), and log det is that of H on the constraints' null space,
    log det H + log det(A H^-1 A') - log det(A A')."""

    def __init__(self, base: DenseSystem | SparseSystem, A: np.ndarray):
        self.base, self.A, self.p = base, A, base.p
        U = base.solve(A.T)
        self.m_chol = np.linalg.cholesky(A @ U)
        self.W = solve_triangular(self.m_chol, U.T, lower=True).T
        self.logdet = (base.logdet + 2.0 * float(np.log(np.diag(self.m_chol)).sum())
                       - float(np.linalg.slogdet(A @ A.T)[1]))

    def solve(self, g: np.ndarray) -> np.ndarray:
        return self.base.solve(g) - self.W @ (self.W.T @ g)

    def inverse_entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        Wb = self.W[self.p:]
        return self.base.inverse_entries(rows, cols) - np.einsum("ij,ij->i", Wb[rows], Wb[cols])

    def fixed_inverse(self) -> np.ndarray:
        Wf = self.W[:self.p]
        return self.base.fixed_inverse() - Wf @ Wf.T

    def leverage(self, F: np.ndarray, cols: np.ndarray, vals: np.ndarray, pairs) -> np.ndarray:
        aw = F @ self.W[:self.p] + (vals[:, :, None] * self.W[self.p:][cols]).sum(axis=0)   # (n, k)
        return self.base.leverage(F, cols, vals, pairs) - (aw * aw).sum(axis=1)

    def draws(self, mean: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n draws (d, n) of N(mean, Σ) (mean meets the constraints), and -(x - mean)' H (x - mean) / 2, the
        log density of the constrained Gaussian on its space up to a constant, (n,)."""
        X, _ = self.base.draws(mean, n, rng)
        X = X - self.W @ solve_triangular(self.m_chol, self.A @ X, lower=True)
        return X, -0.5 * self.base.quadratic(X - mean[:, None])

    def arrays(self) -> dict:
        return self.base.arrays()
