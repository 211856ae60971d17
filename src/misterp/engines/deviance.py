"""The Laplace deviance of a GLMM on cells, its conditional modes and gradient.

Model: eta = offset + X beta + Z Lambda(theta) u, u ~ N(0, I); for an
intercept-only term Lambda is theta_k times the identity on its levels, so
theta_k is that term's sd. lme4 minimises the Laplace deviance

    f(theta, beta) = log det(H) + |u~|^2 - 2 sum log p(y | mu),
    H = Lambda Z' W Z Lambda + I,

where p is the family's likelihood and u~ are the conditional modes found by PIRLS. ``gradient`` gives f's
exact derivative (envelope theorem plus the implicit derivative of u~).
Everything works on a batch of responses at once (bootstrap refits).

Cells, not respondents, are the rows. With up to SPARSE_Q random-effect levels (MRP's
usual tens to a few hundred) H is a dense q x q matrix and LAPACK factors it; above, H lives on
Z'Z's sparsity pattern and :mod:`.linalg` factors it with a fill-reducing order and gives the
gradient's entries of H^-1 by selected inversion (3,142 counties, 84,000 tracts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve
from scipy.linalg.lapack import dpotri

from ..model.cells import Cells
from .fit import spd_solve
from .linalg import Elimination, PrecisionCovariance

# Above this many random-effect levels, H is sparse (bench/RESULTS.md, "Sparse random effects":
# at q = 110 both paths took the same time, at 313 the sparse one half; the CCES models' ~130 stay dense)
SPARSE_Q = 300


class Problem:
    """The arrays of Laplace fits on one set of cells, for a batch of responses.

    Parameters
    ----------
    cells : Cells
        Training cells; every cell has a level in every term.
    response : (B, n_cells) array, optional
        A batch of the family's response statistic on the same cells
        (simulated refits; the other statistics stay the cells'); by default
        the cells' own, as a batch of one.
    """

    def __init__(self, cells: Cells, response: np.ndarray | None = None):
        self.family = cells.family
        self.X = cells.X
        self.offset = cells.offset
        self.fixed_stats = {k: v for k, v in cells.stats.items() if k != self.family.response}
        self.response = np.atleast_2d(cells.stats[self.family.response] if response is None else response)
        sizes = cells.design.n_levels
        self.n_terms = len(sizes)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])
        self.q = int(self.starts[-1])
        self.term_of_level = np.repeat(np.arange(self.n_terms), sizes)
        n = cells.n_cells
        self.cols = cells.groups + self.starts[:-1, None]  # (T, n) column of each cell in Z
        self.Z = sp.csr_matrix((np.ones(self.cols.size), (np.tile(np.arange(n), self.n_terms), self.cols.ravel())),
                               shape=(n, self.q))
        self.ZT = self.Z.T.tocsr()
        self.sparse = self.q > SPARSE_Q
        pair_rows = np.broadcast_to(self.cols[:, None, :], (self.n_terms,) + self.cols.shape).ravel()
        pair_cols = np.broadcast_to(self.cols[None, :, :], (self.n_terms,) + self.cols.shape).ravel()
        if self.sparse:
            # H's pattern: Z'Z's and the diagonal; values in the Elimination's order
            self.elim = Elimination(self.q, pair_rows, pair_cols, groups=self.term_of_level)
            pair_idx, size = self.elim.positions(pair_rows, pair_cols), self.elim.nnz
            self.h_rows, self.h_cols = self.elim.rows, self.elim.cols
            self.h_diag = (self.h_rows == self.h_cols).astype(float)
            # sums over each row of the pattern, (q, nnz)
            self.row_sum = sp.csr_matrix((np.ones(size), (self.h_rows, np.arange(size))), shape=(self.q, size))
        else:
            pair_idx, size = pair_rows * self.q + pair_cols, self.q * self.q
            self.eye = np.eye(self.q)
        # positions of every (term k, term l, cell) pair in Z'WZ's values (flat (q*q) when dense);
        # as a sparse (size, n) map, Z'WZ is one sparse product with w
        pair_cell = np.tile(np.arange(n), self.n_terms * self.n_terms)
        self.pairs = sp.csr_matrix((np.ones(len(pair_idx)), (pair_idx, pair_cell)), shape=(size, n))
        self.pairs_t = self.pairs.T.tocsr()

    @property
    def batch(self) -> int:
        return self.response.shape[0]

    @property
    def response(self) -> np.ndarray:
        return self._response

    @response.setter
    def response(self, value: np.ndarray) -> None:
        self._response = value
        # the likelihood's constant per response: the same in every deviance, computed once
        self.loglik_constant = self.family.log_constant(self.stats()).sum(axis=-1)

    def subset(self, rows: np.ndarray) -> "Problem":
        """The same cells with only the responses ``rows`` of the batch."""
        out = object.__new__(Problem)
        out.__dict__.update(self.__dict__)
        out._response = self._response[rows]
        out.loglik_constant = self.loglik_constant[rows]  # not recomputed: it is per response
        return out

    def stats(self) -> dict:
        """The cell statistics with the batch of responses, (B, n) or (n,) arrays."""
        return {**self.fixed_stats, self.family.response: self._response}

    def zmul(self, v: np.ndarray) -> np.ndarray:
        """Z v for v of shape (B, q) or (B, q, d); returns (B, n) or (B, n, d)."""
        return _apply(self.Z, v)

    def ztmul(self, v: np.ndarray) -> np.ndarray:
        """Z' v for v of shape (B, n) or (B, n, d); returns (B, q) or (B, q, d)."""
        return _apply(self.ZT, v)

    def ztwz(self, w: np.ndarray) -> np.ndarray:
        """Z' diag(w_b) Z for each row of w (B, n): dense (B, q, q), or its values on the pattern
        (B, nnz) when sparse."""
        values = np.asarray(self.pairs @ w.T).T
        return values if self.sparse else values.reshape(w.shape[0], self.q, self.q)

    def deviance(self, eta: np.ndarray) -> np.ndarray:
        """-2 log-likelihood of each response in the batch, (B,)."""
        kernel = self.family.loglik(self.stats(), eta, constant=False).sum(axis=-1)
        return -2.0 * (kernel + self.loglik_constant)


# Up to this many random-effect levels, per-call overhead dominates: batch
# systems through numpy's vectorised solvers. Above it, LAPACK work dominates:
# use Cholesky routines item by item.
SMALL_Q = 24


def _apply(M, v: np.ndarray) -> np.ndarray:
    """Sparse M (r, c) applied along axis 1 of v (B, c[, d]) -> (B, r[, d])."""
    if v.ndim == 2:
        return np.asarray(M @ v.T).T
    B = v.shape[0]
    moved = np.moveaxis(v, 0, -1).reshape(v.shape[1], -1)  # (c, d*B)
    out = np.asarray(M @ moved).reshape((M.shape[0],) + v.shape[2:] + (B,))
    return np.moveaxis(out, -1, 0)


@dataclass
class State:
    """PIRLS results at (theta, beta) for a batch: modes and what they imply.

    Shapes: u, lam (B, q); eta (B, n); A, chol_lower (B, q, q); objective (B,). When the
    problem is sparse, A is (B, nnz) values on H's pattern and chol_lower a list of B
    :class:`.linalg.Factor`.
    """

    u: np.ndarray
    eta: np.ndarray
    lam: np.ndarray
    A: np.ndarray
    chol_lower: np.ndarray
    objective: np.ndarray


def pirls(prob: Problem, params: np.ndarray, u0: np.ndarray,
          tol: float = 1e-15, max_iter: int = 60) -> State:
    """Conditional modes u~ for fixed params (B, T + p), by Newton steps with halving.

    Each response stops when its Newton decrement (the predicted fall of the
    penalized deviance) is below ``tol`` (relative to the deviance), far
    tighter than lme4's 1e-7: the gradient, and Hessians differenced from
    it, need modes accurate to near machine precision. Newton converges
    quadratically, so this costs about one extra step. The step is halved
    while the penalized deviance rises.
    """
    T = prob.n_terms
    theta, beta = params[:, :T], params[:, T:]
    lam = theta[:, prob.term_of_level]
    eta_fixed = prob.offset + beta @ prob.X.T
    u = u0.copy()
    eta = eta_fixed + prob.zmul(lam * u)
    pdev = (u * u).sum(1) + prob.deviance(eta)
    for _ in range(max_iter):
        _, w, r, _ = prob.family.working(prob.stats(), eta)
        A = prob.ztwz(w)
        L = _factor(prob, lam, A)
        grad = u - lam * prob.ztmul(r)
        step = -_solve(prob, L, grad)
        decrement = -(grad * step).sum(1)
        done = decrement < tol * np.maximum(np.abs(pdev), 1.0)
        if np.all(done):
            if prob.sparse:
                logdet = np.array([f.logdet for f in L])
            else:
                logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
            return State(u, eta, lam, A, L, logdet + pdev)
        t = np.where(done, 0.0, 1.0)
        for _ in range(30):
            u_new = u + t[:, None] * step
            eta_new = eta_fixed + prob.zmul(lam * u_new)
            pdev_new = (u_new * u_new).sum(1) + prob.deviance(eta_new)
            worse = pdev_new > pdev + 1e-12 * np.abs(pdev)
            if not worse.any():
                break
            t = np.where(worse, 0.5 * t, t)
        u, eta, pdev = u_new, eta_new, pdev_new
    raise FloatingPointError("PIRLS did not converge")


def _factor(prob: Problem, lam: np.ndarray, A: np.ndarray):
    """H = Lambda A Lambda + I factorised for each response: lower Cholesky factors (B, q, q), or
    a list of sparse factors."""
    if prob.sparse:
        H = lam[:, prob.h_rows] * A * lam[:, prob.h_cols] + prob.h_diag
        return [prob.elim.factor(h) for h in H]
    return np.linalg.cholesky(lam[:, :, None] * A * lam[:, None, :] + prob.eye)


def _solve(prob: Problem, L, b: np.ndarray) -> np.ndarray:
    """H^-1 b for b (B, q[, d]) with the factors of :func:`_factor`."""
    if prob.sparse:
        return np.stack([f.solve(bi) for f, bi in zip(L, b)])
    return _cho_solve(L, b)


def _cho_solve(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve (L L') x = b for batches: L (B, q, q), b (B, q[, d]).

    Small systems go through numpy's batched solver (one call for the whole
    batch); larger ones through LAPACK's triangular Cholesky solve per item,
    which is O(q^2) per right-hand side instead of a fresh O(q^3) LU.
    """
    if L.shape[1] <= SMALL_Q:
        vec = b.ndim == 2
        y = np.linalg.solve(L, b[..., None] if vec else b)
        x = np.linalg.solve(np.swapaxes(L, 1, 2), y)
        return x[..., 0] if vec else x
    return np.stack([cho_solve((L[i], True), b[i], check_finite=False) for i in range(L.shape[0])])


def _cho_inverse(L: np.ndarray) -> np.ndarray:
    """H^-1 from its lower Cholesky factors L (B, q, q), by LAPACK's potri per item."""
    if L.shape[1] <= SMALL_Q:
        return _cho_solve(L, np.broadcast_to(np.eye(L.shape[1]), L.shape))
    out = np.empty_like(L)
    for i in range(L.shape[0]):
        inv, info = dpotri(L[i], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("H is not positive definite")
        out[i] = np.tril(inv) + np.tril(inv, -1).T  # potri fills one triangle
    return out


def gradient(prob: Problem, state: State) -> np.ndarray:
    """Exact d f / d (theta, beta) at a PIRLS solution, shape (B, T + p).

    f's explicit derivative at fixed u (envelope theorem), plus the derivative
    of log det H through W(eta(u~(phi), phi)), with du~/dphi from the
    stationarity condition u = Lambda Z' (s - n mu). d eta / d theta_k at
    fixed u is u at the cell's level of term k, so every sum over cells of
    it is a sum over term k's levels of u times Z' of the cell weights: no
    (B, n_cells, T + p) array is formed.
    """
    u, lam, A, L = state.u, state.lam, state.A, state.chol_lower
    _, w, r, dw = prob.family.working(prob.stats(), state.eta)
    T, B, X = prob.n_terms, u.shape[0], prob.X
    explicit = -2.0 * np.hstack([_by_term(prob, u * prob.ztmul(r)), r @ X])
    # H du = dLambda Z'r - Lambda Z' W d_eta, one column per parameter
    rhs = np.empty((B, prob.q, T + X.shape[1]))
    rhs[:, :, T:] = -lam[:, :, None] * prob.ztmul(w[:, :, None] * X)
    ztr = prob.ztmul(r)
    for k in range(T):
        sl = slice(prob.starts[k], prob.starts[k + 1])
        rhs[:, :, k] = -lam * prob.ztmul(w * u[:, prob.cols[k]])
        rhs[:, sl, k] += ztr[:, sl]
    if prob.sparse:
        # H^-1 only on H's pattern (selected inversion): all that the traces below touch
        Hinv = np.stack([f.inverse() for f in L])
        du = _solve(prob, L, rhs)
        scaled = lam[:, prob.h_rows] * Hinv * lam[:, prob.h_cols]
        diag = _apply(prob.row_sum, A * lam[:, prob.h_cols] * Hinv)
    else:
        Hinv = _cho_inverse(L)
        du = Hinv @ rhs
        scaled = (lam[:, :, None] * Hinv * lam[:, None, :]).reshape(B, -1)
        diag = ((A * lam[:, None, :]) * Hinv).sum(axis=2)
    # leverage of each cell: diag(Z Lambda H^-1 Lambda Z'), gathered over term pairs; d log det H
    # through W: sum over cells of v = leverage * dw times d eta (at fixed u, then through du)
    v = _apply(prob.pairs_t, scaled) * dw
    ztv = prob.ztmul(v)
    through_w = np.hstack([_by_term(prob, u * ztv), v @ X]) + np.einsum("bl,bld->bd", lam * ztv, du)
    # d log det H / d theta_k through Lambda itself: 2 tr(H^-1 E_k A Lambda); diag holds
    # each row's sum of (A Lambda) * H^-1
    through_lambda = np.zeros_like(explicit)
    through_lambda[:, :T] = 2.0 * _by_term(prob, diag)
    return explicit + through_w + through_lambda


def _by_term(prob: Problem, values: np.ndarray) -> np.ndarray:
    """Sums of (B, q) values over each term's levels, (B, T)."""
    return np.add.reduceat(values, prob.starts[:-1], axis=1)


def joint_covariance(prob: Problem, state: State) -> np.ndarray | PrecisionCovariance:
    """Covariance of (beta, u) from the curvature of the penalized deviance at the mode.

    The inverse of [[X'WX, X'WZL], [LZ'WX, H]], shape (p + q, p + q); its
    beta block is lme4's ``vcov(use.hessian = FALSE)``. First response of
    the batch. For a sparse problem, the precision itself, factorised
    (:class:`.linalg.PrecisionCovariance`): never a dense (p + q)^2 matrix.
    """
    _, w, _, _ = prob.family.working(prob.stats(), state.eta)
    w, X, lam = w[0], prob.X, state.lam[0]
    zl_w_x = lam[:, None] * (prob.Z.T @ (w[:, None] * X))
    p = X.shape[1]
    if prob.sparse:
        h = lam[prob.h_rows] * state.A[0] * lam[prob.h_cols] + prob.h_diag
        return PrecisionCovariance(X.T @ (w[:, None] * X), zl_w_x, prob.elim, h, factor=state.chol_lower[0])
    top = np.hstack([X.T @ (w[:, None] * X), zl_w_x.T])
    bottom = np.hstack([zl_w_x, lam[:, None] * state.A[0] * lam[None, :] + np.eye(prob.q)])
    precision = np.vstack([top, bottom])
    return spd_solve(precision, np.eye(p + prob.q), lower=True)

