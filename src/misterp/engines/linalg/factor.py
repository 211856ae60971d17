"""The numeric factorisation on an :class:`.elimination.Elimination`: solves, draws, selected inversion.

The stages taken in reverse give H^-1 on H's pattern (selected inversion, the Takahashi
equations), which the exact gradients need,

    Sigma_RI = -Sigma_S B D^-1,  diag Sigma_II = (1 - diag(B' Sigma_RI)) / D,

where Sigma_S, S^-1 on S's pattern, holds every pair of rows of each column of B; and draws
x ~ N(0, H^-1) by back-substitution: x_R from S, then x_I = z_I / sqrt(D) - D^-1 B' x_R.

Example
-------
>>> import numpy as np
>>> from misterp.engines.linalg import Elimination
>>> H = 3.0 * np.eye(4)
>>> H[3, :3] = H[:3, 3] = 1.0  # a star: 0, 1, 2 -- 3
>>> elim = Elimination(4, *np.nonzero(H))
>>> f = elim.factor(H[elim.rows, elim.cols])
>>> bool(np.allclose(f.solve(np.ones(4)), np.linalg.solve(H, np.ones(4))))
True
>>> bool(np.allclose(f.inverse_diagonal(), np.diag(np.linalg.inv(H))))
True
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve, solve_triangular
from scipy.linalg.lapack import dpotrf, dpotri


class Factor:
    """The numeric factorisation of one matrix on an Elimination's pattern.

    Attributes: ``pivots`` (D of each stage, (|I_s|,)), ``blocks`` (B's values of each stage,
    column by column), ``tail_lower`` (m, m) the tail's lower Cholesky factor (upper triangle 0).
    """

    def __init__(self, elim, values: np.ndarray):
        self.elim = elim
        self.pivots, self.blocks = [], []
        data = values
        for st in elim.stages:
            D = data[st.diag_pos]
            if not np.all(D > 0):
                raise np.linalg.LinAlgError("the matrix is not positive definite")
            B = data[st.b_pos]
            scaled = B / np.sqrt(D)[st.b_col]  # B D^-1/2: each pair's update is one product
            update = scaled[st.pair_first] * scaled[st.pair_second]
            size = st.n_r * st.n_r if st.dense else len(st.child_rows)
            child = _sums(st.pair_target, update, size)
            if st.dense and len(st.heavy_rows):  # the heavy rows' columns of B D^-1 B', as a block
                child[st.heavy_target] = _b_sparse(st, scaled) @ _heavy_block(st, scaled).T
            np.negative(child, out=child)
            child[st.rr_target] += data[st.rr_pos]
            self.pivots.append(D)
            self.blocks.append(B)
            data = child
        self.tail_lower = _cholesky(elim, data)
        self._matrices = None

    @property
    def logdet(self) -> float:
        """log det of the matrix."""
        return float(sum(np.log(D).sum() for D in self.pivots) + 2.0 * np.log(np.diag(self.tail_lower)).sum())

    def _b_matrices(self) -> list:
        """B of every stage as sparse (|R|, |I|) matrices, built once when first needed."""
        if self._matrices is None:
            self._matrices = [sp.csc_matrix((B, st.b_row, st.b_indptr), shape=(st.n_r, st.n_i))
                              for st, B in zip(self.elim.stages, self.blocks)]
        return self._matrices

    def solve(self, b: np.ndarray) -> np.ndarray:
        """x with H x = b, for b (q,) or (q, d)."""
        x = np.array(b, dtype=float)
        vec = x.ndim == 1
        if vec:
            x = x[:, None]
        el, mats = self.elim, self._b_matrices()
        for gi, gr, D, Bm in zip(el.global_i, el.global_r, self.pivots, mats):
            x[gr] -= Bm @ (x[gi] / D[:, None])
        if len(el.tail):
            x[el.tail] = cho_solve((self.tail_lower, True), x[el.tail], check_finite=False)
        for gi, gr, D, Bm in zip(el.global_i[::-1], el.global_r[::-1], self.pivots[::-1], mats[::-1]):
            x[gi] = (x[gi] - Bm.T @ x[gr]) / D[:, None]
        return x[:, 0] if vec else x

    def whiten(self, z: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """x ~ N(0, H^-1) from z ~ N(0, I), both (q, d): back-substitution through the stages
        (in z itself with ``overwrite``)."""
        x = z if overwrite else np.array(z, dtype=float)
        el, mats = self.elim, self._b_matrices()
        if len(el.tail):
            x[el.tail] = solve_triangular(self.tail_lower, x[el.tail], lower=True, trans="T", check_finite=False,
                                          overwrite_b=True)
        for gi, gr, D, Bm in zip(el.global_i[::-1], el.global_r[::-1], self.pivots[::-1], mats[::-1]):
            part = x[gi]
            part /= np.sqrt(D)[:, None]
            part -= (Bm.T @ x[gr]) / D[:, None]
            x[gi] = part
        return x

    def _tail_inverse(self) -> np.ndarray:
        """The tail's inverse, its lower triangle flattened in Fortran order, (m * m,)."""
        m = len(self.elim.tail)
        if not m:
            return np.zeros(0)
        inv, info = dpotri(self.tail_lower, lower=1, overwrite_c=0)
        if info != 0:
            raise np.linalg.LinAlgError("the tail is not positive definite")
        return inv.ravel(order="F")

    def _child_sigma(self, upto: int) -> np.ndarray:
        """S^-1 on the pattern of the child of stage ``upto - 1`` (the tail's when ``upto`` is the
        number of stages): stages from the last back to ``upto`` inverted in turn."""
        el = self.elim
        flat = self._tail_inverse()
        sigma = flat if el.dense_tail else flat[el.tail_all_target]
        for k in range(len(el.stages) - 1, upto - 1, -1):
            sigma = self._parent_sigma(el.stages[k], self.pivots[k], self.blocks[k], sigma)
        return sigma

    def _parent_sigma(self, st, D: np.ndarray, B: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """H^-1 on a stage's parent pattern from S^-1 on its child's (the Takahashi equations)."""
        s_b = _takahashi(st, D, B, sigma)
        s_diag = (1.0 - np.bincount(st.b_col, weights=B * s_b, minlength=st.n_i)) / D
        parent = np.empty(st.n_parent)
        parent[st.rr_all] = sigma[st.rr_all_target]
        parent[st.b_pos] = s_b
        parent[st.b_pos_t] = s_b
        parent[st.diag_pos] = s_diag
        return parent

    def inverse(self) -> np.ndarray:
        """H^-1 on H's pattern (nnz,), in the Elimination's value order (selected inversion)."""
        el = self.elim
        if el.stages:
            return self._parent_sigma(el.stages[0], self.pivots[0], self.blocks[0], self._child_sigma(1))
        return self._child_sigma(0)

    def inverse_diagonal(self) -> np.ndarray:
        """diag(H^-1) (q,) in column order: the first stage's from the pairs of its columns,
        diag = 1 / D + (b' S^-1 b) / D^2 for each column's b, without its off-diagonal entries."""
        el = self.elim
        out = np.empty(el.q)
        if not el.stages:
            out[el.tail] = self._child_sigma(0)[_diagonal_positions(el, None)]
            return out
        st, D, B = el.stages[0], self.pivots[0], self.blocks[0]
        sigma = self._child_sigma(1)
        out[el.global_i[0]] = 1.0 / D + _quadratic_forms(st, B / D[st.b_col], sigma)
        out[el.global_r[0]] = sigma[_diagonal_positions(el, st)]
        return out


def _quadratic_forms(st, scaled: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """b' S^-1 b for each column b of the stage's B D^-1 (``scaled``), (n_i,): over pairs of light rows
    (each off-diagonal pair of a dense child twice), plus, with heavy rows h, 2 b_h' (S^-1 b)_h less
    b_h' S^-1_hh b_h (counted twice), so that no (n_r, n_i) product is formed."""
    weight = sigma[st.pair_target] * scaled[st.pair_first] * scaled[st.pair_second]
    if st.dense:
        weight[st.pair_off] *= 2.0
    q = _sums(st.pair_col, weight, st.n_i)
    if st.dense and len(st.heavy_rows):
        sigma_h = sigma[st.heavy_target]  # S^-1[:, heavy], (n_r, h)
        block = _heavy_block(st, scaled)  # (h, n_i)
        full = _b_sparse(st, scaled).T @ sigma_h  # (n_i, h): (S^-1 b)_h for each column
        q += 2.0 * np.einsum("hi,ih->i", block, full)
        q -= np.einsum("hi,hk,ki->i", block, sigma_h[st.heavy_rows], block, optimize=True)
    return q


def _takahashi(st, D: np.ndarray, B: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """H^-1's entries on B's pattern, -S^-1 B D^-1 there (nb,), from S^-1 on the child's pattern:
    pairs of light rows (one triangle of them, each off-diagonal pair standing for two, in a dense
    child), and the heavy rows through S^-1's heavy columns (n_r, h)."""
    scaled = B / D[st.b_col]
    picked = sigma[st.pair_target]
    s_b = _sums(st.pair_first, picked * scaled[st.pair_second], len(B))
    if st.dense:
        off = st.pair_off
        s_b += _sums(st.pair_second[off], (picked * scaled[st.pair_first])[off], len(B))
        if len(st.heavy_rows):
            sigma_h = sigma[st.heavy_target]  # S^-1[:, heavy]
            s_b += (sigma_h @ _heavy_block(st, scaled))[st.b_row, st.b_col]  # light rows: their heavy part
            full = _b_sparse(st, scaled).T @ sigma_h  # (n_i, h): heavy rows, everything
            s_b[st.heavy_pos] = full[st.b_col[st.heavy_pos], st.heavy_index]
    return -s_b


def _sums(index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``weights`` by ``index`` into (size,) floats (bincount gives integers when empty)."""
    return np.bincount(index, weights=weights, minlength=size).astype(float, copy=False)


def _b_sparse(st, values: np.ndarray):
    """B's values on the stage's pattern as a sparse (n_r, n_i) matrix."""
    return sp.csc_matrix((values, st.b_row, st.b_indptr), shape=(st.n_r, st.n_i))


def _heavy_block(st, values: np.ndarray) -> np.ndarray:
    """The heavy rows of B's values, dense (h, n_i)."""
    block = np.zeros((len(st.heavy_rows), st.n_i))
    block[st.heavy_index, st.b_col[st.heavy_pos]] = values[st.heavy_pos]
    return block


def _diagonal_positions(elim, stage) -> np.ndarray:
    """Where the diagonal of a stage's child (of H itself for None) sits in its values."""
    if stage is None:
        return np.flatnonzero(elim.rows == elim.cols)
    if stage.dense:
        return np.arange(stage.n_r) * (stage.n_r + 1)
    return np.flatnonzero(stage.child_rows == stage.child_cols)


def _cholesky(elim, data: np.ndarray) -> np.ndarray:
    """The tail's lower Cholesky factor (m, m) from the last values: the dense stage's lower triangle
    (Fortran order) or the pattern's lower entries."""
    m = len(elim.tail)
    if not m:
        return np.zeros((0, 0))
    if elim.dense_tail:
        flat = data
    else:
        flat = np.zeros(m * m)
        flat[elim.tail_target] = data[elim.tail_pos]
    lower, info = dpotrf(flat.reshape(m, m, order="F"), lower=1, clean=0, overwrite_a=1)
    if info != 0:  # as the dense path does
        raise np.linalg.LinAlgError("the matrix is not positive definite")
    return lower
