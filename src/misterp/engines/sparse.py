"""Sparse symmetric factorisation with selected inversion, for large random-effect terms.

H (q, q), symmetric positive definite with a fixed sparsity pattern (Z'Z's plus the diagonal), is
factorised as lme4 does with CHOLMOD: a fill-reducing order and the symbolic work once
(:class:`Elimination`), then a numeric factorisation at every evaluation (:class:`Factor`). The
order is multiple minimum degree (Liu 1985): each stage eliminates at once an independent set of
columns of low degree, so that its pivot block D is diagonal,

    H = [[D, B'], [B, C]] = [[I, 0], [B D^-1, I]] [[D, 0], [0, S]] [[I, D^-1 B'], [0, I]],
    S = C - B D^-1 B',

and the whole stage is a few gathers and sums over precomputed index arrays. Stages go on while S
is large and sparse; the dense rest (the tail) goes to LAPACK. For random intercepts the first
stage is the largest term (its levels never share a cell), so a county model's tail is its states
and demographics.

The stages taken in reverse give H^-1 on H's pattern (selected inversion, the Takahashi
equations), which the exact gradient needs,

    Sigma_RI = -Sigma_S B D^-1,  diag Sigma_II = (1 - diag(B' Sigma_RI)) / D,

where Sigma_S, S^-1 on S's pattern, holds every pair of rows of each column of B, and draws
x ~ N(0, H^-1) by back-substitution: x_R from S, then x_I = z_I / sqrt(D) - D^-1 B' x_R.
Time and memory grow with the fill, sum over eliminated columns of their degree squared, not q^2.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve, solve_triangular
from scipy.linalg.lapack import dpotri

# a rest this small, or this full, is cheaper as one dense LAPACK factorisation
DENSE_TAIL = 400
DENSE_FILL = 0.2


def _pairs_within(indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (first, second) of entries within each group; groups are indptr's slices."""
    counts = np.diff(indptr)
    sizes = counts * counts
    group = np.repeat(np.arange(len(counts)), sizes)
    k = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    c = counts[group]
    return indptr[group] + k // c, indptr[group] + k % c


class _Stage:
    """One elimination of an independent set I from a pattern of m columns (local indices).

    Index arrays into the parent's values (sorted (row, col) entries): ``diag_pos`` (|I|,) D's
    entries; ``b_pos``, ``b_pos_t`` (nb,) B's entries (r, i) and (i, r), column by column, with
    their local row ``b_row`` in R and column ``b_col`` in I; ``rr_pos`` -> ``rr_target`` copies
    C into the child; ``pair_first``, ``pair_second`` (entries of B in one column) -> ``pair_target``
    (their (r, r') in the child) carry the update B D^-1 B'.
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, m: int, chosen: np.ndarray):
        keys = rows * m + cols
        r_loc = np.cumsum(~chosen) - 1
        i_loc = np.cumsum(chosen) - 1
        self.n_parent, self.n_i, self.n_r = len(rows), int(chosen.sum()), int(m - chosen.sum())
        self.i_local, self.r_local = np.flatnonzero(chosen), np.flatnonzero(~chosen)
        self.diag_pos = np.flatnonzero((rows == cols) & chosen[rows])
        sel = np.flatnonzero(~chosen[rows] & chosen[cols])
        sel = sel[np.lexsort((rows[sel], cols[sel]))]  # column by column
        self.b_pos = sel
        self.b_pos_t = np.searchsorted(keys, cols[sel] * m + rows[sel])
        self.b_row, self.b_col = r_loc[rows[sel]], i_loc[cols[sel]]
        self.b_indptr = np.concatenate([[0], np.cumsum(np.bincount(self.b_col, minlength=self.n_i))])
        self.pair_first, self.pair_second = _pairs_within(self.b_indptr)
        self.pair_col = self.b_col[self.pair_first]
        self.rr_pos = np.flatnonzero(~chosen[rows] & ~chosen[cols])
        n = self.n_r
        rr_keys = r_loc[rows[self.rr_pos]] * n + r_loc[cols[self.rr_pos]]
        fill_keys = self.b_row[self.pair_first] * n + self.b_row[self.pair_second]
        child = np.unique(np.concatenate([rr_keys, fill_keys]))
        self.rr_target = np.searchsorted(child, rr_keys)
        self.pair_target = np.searchsorted(child, fill_keys)
        self.child_rows, self.child_cols = child // n, child % n


class Elimination:
    """The symbolic factorisation of a symmetric pattern (q, q): stages, then a dense tail.

    Parameters
    ----------
    q : int
    rows, cols : int arrays
        Entries of the pattern (both triangles; repeats allowed); the diagonal is added.
    keep : (q,) bool array, optional
        Columns left to the dense tail (dense blocks such as fixed effects).

    Values are given in the order of ``self.rows``, ``self.cols`` (sorted, unique);
    :meth:`positions` finds entries in it.
    """

    def __init__(self, q: int, rows: np.ndarray, cols: np.ndarray, keep: np.ndarray | None = None):
        self.q = int(q)
        keys = np.unique(np.concatenate([np.asarray(rows, np.int64) * q + np.asarray(cols, np.int64),
                                         np.arange(q, dtype=np.int64) * (q + 1)]))
        self.keys = keys
        self.rows, self.cols = keys // q, keys % q
        keep = np.zeros(q, bool) if keep is None else np.asarray(keep, bool)
        self.stages: list[_Stage] = []
        self.global_i: list[np.ndarray] = []
        self.global_r: list[np.ndarray] = []
        alive = np.arange(q)
        r, c, m = self.rows, self.cols, q
        while m > DENSE_TAIL and len(r) < DENSE_FILL * m * m:
            chosen = _independent_set(r, c, m, keep[alive])
            if not chosen.any():
                break
            stage = _Stage(r, c, m, chosen)
            self.stages.append(stage)
            self.global_i.append(alive[stage.i_local])
            self.global_r.append(alive[stage.r_local])
            alive = alive[stage.r_local]
            r, c, m = stage.child_rows, stage.child_cols, stage.n_r
        self.tail = alive
        self.tail_flat = r * m + c
        self.tail_rows, self.tail_cols = r, c

    @property
    def nnz(self) -> int:
        return len(self.keys)

    @property
    def fill(self) -> int:
        """Entries of the tail plus update pairs of every stage: the factorisation's work."""
        return len(self.tail) ** 2 + sum(len(s.pair_first) for s in self.stages)

    def positions(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Positions of entries (rows, cols) in the pattern's value order; each must be in it."""
        keys = np.asarray(rows, np.int64) * self.q + np.asarray(cols, np.int64)
        pos = np.searchsorted(self.keys, keys)
        if np.any(pos >= len(self.keys)) or np.any(self.keys[np.minimum(pos, len(self.keys) - 1)] != keys):
            raise ValueError("an entry is outside the pattern")
        return pos

    def factor(self, values: np.ndarray) -> "Factor":
        """The numeric factorisation of the matrix with these values (nnz,)."""
        return Factor(self, np.asarray(values, float))


def _independent_set(rows: np.ndarray, cols: np.ndarray, m: int, keep: np.ndarray) -> np.ndarray:
    """Columns to eliminate together (m,) bool: no two adjacent, each of low degree.

    Candidates have degree at most 3 d + 8, d the least (multiple minimum degree); among them a column
    is taken when its (degree, index) is below every candidate neighbour's, in a few rounds
    (Luby's scheme, deterministic), so the set is found by vectorised passes.
    """
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=m))])
    degree = np.diff(indptr) - 1
    candidate = ~keep
    if not candidate.any():
        return candidate
    least = degree[candidate].min()
    available = candidate & (degree <= 3 * least + 8)
    key = degree.astype(np.int64) * m + np.arange(m)
    off = rows != cols
    chosen = np.zeros(m, bool)
    big = np.iinfo(np.int64).max
    for _ in range(10):
        neighbour = np.where(off & available[cols], key[cols], big)
        lowest = np.minimum.reduceat(neighbour, indptr[:-1])
        win = available & (key < lowest)
        chosen |= win
        touched = np.zeros(m, bool)
        touched[rows[off & win[cols]]] = True
        available &= ~win & ~touched
        if not available.any():
            break
    return chosen


class Factor:
    """The numeric factorisation of one matrix on an :class:`Elimination`'s pattern.

    Attributes: ``pivots`` (D of each stage, (|I_s|,)), ``blocks`` (B's values of each stage,
    column by column), ``tail_lower`` (m, m) the tail's lower Cholesky factor.
    """

    def __init__(self, elim: Elimination, values: np.ndarray):
        self.elim = elim
        self.pivots, self.blocks = [], []
        data = values
        for st in elim.stages:
            D = data[st.diag_pos]
            if not np.all(D > 0):
                raise np.linalg.LinAlgError("the matrix is not positive definite")
            B = data[st.b_pos]
            child = np.zeros(len(st.child_rows))
            child[st.rr_target] = data[st.rr_pos]
            update = B[st.pair_first] * (B[st.pair_second] / D[st.pair_col])
            child -= np.bincount(st.pair_target, weights=update, minlength=len(child))
            self.pivots.append(D)
            self.blocks.append(B)
            data = child
        m = len(elim.tail)
        dense = np.zeros(m * m)
        dense[elim.tail_flat] = data
        # raises LinAlgError when not positive definite, as the dense path does
        self.tail_lower = np.linalg.cholesky(dense.reshape(m, m)) if m else np.zeros((0, 0))
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

    def whiten(self, z: np.ndarray) -> np.ndarray:
        """x ~ N(0, H^-1) from z ~ N(0, I), both (q, d): back-substitution through the stages."""
        x = np.array(z, dtype=float)
        el, mats = self.elim, self._b_matrices()
        if len(el.tail):
            x[el.tail] = solve_triangular(self.tail_lower, x[el.tail], lower=True, trans="T", check_finite=False)
        for gi, gr, D, Bm in zip(el.global_i[::-1], el.global_r[::-1], self.pivots[::-1], mats[::-1]):
            x[gi] = x[gi] / np.sqrt(D)[:, None] - (Bm.T @ x[gr]) / D[:, None]
        return x

    def inverse(self) -> np.ndarray:
        """H^-1 on H's pattern (nnz,), in the Elimination's value order (selected inversion)."""
        el = self.elim
        m = len(el.tail)
        if m:
            inv, info = dpotri(self.tail_lower, lower=1)
            if info != 0:
                raise np.linalg.LinAlgError("the tail is not positive definite")
            inv = np.tril(inv) + np.tril(inv, -1).T  # potri fills one triangle
            sigma = inv.ravel()[el.tail_flat]
        else:
            sigma = np.zeros(0)
        for st, D, B in zip(el.stages[::-1], self.pivots[::-1], self.blocks[::-1]):
            s_b = -np.bincount(st.pair_first, weights=sigma[st.pair_target] * B[st.pair_second],
                               minlength=len(B)) / D[st.b_col]
            s_diag = (1.0 - np.bincount(st.b_col, weights=B * s_b, minlength=st.n_i)) / D
            parent = np.empty(st.n_parent)
            parent[st.rr_pos] = sigma[st.rr_target]
            parent[st.b_pos] = s_b
            parent[st.b_pos_t] = s_b
            parent[st.diag_pos] = s_diag
            sigma = parent
        return sigma


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
    """

    def __init__(self, xtwx: np.ndarray, zx: np.ndarray, elim: Elimination, h: np.ndarray, scale: float = 1.0):
        self.xtwx, self.zx, self.elim, self.h, self.scale = xtwx, zx, elim, h, float(scale)
        self.factor = elim.factor(h)
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
        x_u = self.factor.whiten(z[self.p:]) - self.K @ x_beta
        return mean + np.sqrt(self.scale) * np.vstack([x_beta, x_u]).T

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
