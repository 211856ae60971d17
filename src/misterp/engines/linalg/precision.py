"""The covariance of (beta, u) of a sparse fit, kept as its precision's factor, never dense.

Example
-------
>>> import numpy as np
>>> from misterp.engines.linalg import Elimination
>>> H = 2.0 * np.eye(3)
>>> elim = Elimination(3, *np.nonzero(H))
>>> cov = PrecisionCovariance(np.eye(1) * 4, np.ones((3, 1)), elim, H[elim.rows, elim.cols])
>>> float(cov.block(1)[0, 0])  # 1 / (4 - 3 / 2)
0.4
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve, solve_triangular

from .elimination import Elimination


class PrecisionCovariance:
    """``scale`` times P^-1 for P = [[X'WX, F'], [F, H]] (p + q, p + q), H sparse: the covariance of
    (beta, u) for large q, kept as its parts and H's factor, never dense.

    Eliminating u first, P^-1 needs only H's factor, K = H^-1 F (q, p) and the fixed effects' Schur
    complement S = X'WX - F'K = R R' (p, p): the beta block is S^-1, and a draw is
    x_beta = R'^-1 z_beta, x_u = H^-1/2 z_u - K x_beta (H^-1/2 by :meth:`Factor.whiten`).

    Parameters
    ----------
    xtwx : (p, p) array
    zx : (q, p) array
        F = Lambda Z'WX.
    elim : Elimination
        H's pattern; ``h`` (nnz,) its values.
    scale : float
        sigma^2 for a gaussian outcome, 1 otherwise.
    factor : Factor, optional
        H's factorisation, when the caller already has it.
    """

    def __init__(self, xtwx: np.ndarray, zx: np.ndarray, elim: Elimination, h: np.ndarray, scale: float = 1.0,
                 factor=None):
        self.xtwx, self.zx, self.elim, self.h, self.scale = xtwx, zx, elim, h, float(scale)
        self.factor = elim.factor(h) if factor is None else factor
        self.K = self.factor.solve(zx)
        self.schur_lower = np.linalg.cholesky(xtwx - zx.T @ self.K)
        self.p, self.q = zx.shape[1], zx.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.p + self.q, self.p + self.q)

    def block(self, m: int) -> np.ndarray:
        """The covariance's leading (m, m) block (m <= p, within the fixed effects), dense."""
        if m > self.p:
            raise ValueError("only the fixed effects' block is formed densely")
        return self.scale * cho_solve((self.schur_lower, True), np.eye(self.p))[:m, :m]

    def diagonal(self) -> np.ndarray:
        """The covariance's diagonal (p + q,): diag(H^-1) + diag(K S^-1 K') for u."""
        s_inv = cho_solve((self.schur_lower, True), np.eye(self.p))
        h_diag = self.factor.inverse()[self.elim.rows == self.elim.cols]
        return self.scale * np.concatenate([np.diag(s_inv), h_diag + np.einsum("ij,jk,ik->i", self.K, s_inv, self.K)])

    def draws(self, mean: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        """(n_draws, p + q) draws of N(mean, covariance)."""
        z = rng.standard_normal((self.p + self.q, n_draws))
        x_beta = solve_triangular(self.schur_lower, z[:self.p], lower=True, trans="T", check_finite=False)
        x_u = self.factor.whiten(z[self.p:], overwrite=True)  # a view of z, whitened in place
        x_u -= self.K @ x_beta
        z[:self.p] = x_beta
        z *= np.sqrt(self.scale)
        z += np.asarray(mean, float)[:, None]
        return z.T

    def arrays(self) -> dict:
        """The parts, for a saved fit: H's pattern and values, F, X'WX and the scale."""
        return {"rows": self.elim.rows, "cols": self.elim.cols, "h": self.h, "zx": self.zx, "xtwx": self.xtwx,
                "scale": np.array(self.scale)}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "PrecisionCovariance":
        q = len(arrays["zx"])
        elim = Elimination(q, arrays["rows"], arrays["cols"])
        h = np.zeros(elim.nnz)
        np.add.at(h, elim.positions(arrays["rows"], arrays["cols"]), arrays["h"])
        return cls(arrays["xtwx"], arrays["zx"], elim, h, float(arrays["scale"]))
