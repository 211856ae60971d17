"""Terms with slopes on the sparse path: H = Lambda' A Lambda + I for a block-diagonal Lambda(theta).

A term with K effects gives each level a K x K block of Lambda (its lower-triangular T, see
:mod:`.structure`) and of H. H's pattern is A = Z'WZ's made block-closed (an entry between two
levels' blocks brings the whole K x K' block), and every column is one effect of one level, so the
elimination (:mod:`.linalg`) treats each coefficient as a column: the intercepts of all counties
form one independent set, their slopes the next. Index arrays computed here, once per model, turn
theta and A's values into

- H's values: H_ij = sum over A's entries (k, l) of Lambda_ki A_kl Lambda_lj (:meth:`h_values`);
- the traces of the exact gradient, tr(H^-1 Lambda' A E_m) for every entry m of Lambda
  (:meth:`traces`), = sum_j H^-1_cj (Lambda'A)_jr for the entry (r, c), with H^-1 only on the
  pattern (selected inversion);
- each cell's leverage z' Lambda H^-1 Lambda' z (:meth:`leverage`).

Example
-------
>>> import numpy as np
>>> from misterp.engines.structure import Structure
>>> s = Structure(np.array([2]), np.array([3]))  # a term with an intercept and a slope, 3 levels
>>> groups, values = [np.array([0, 1, 2, 2])], [np.array([[1, 0.5], [1, -1.0], [1, 2.0], [1, 0.0]])]
>>> terms = SparseTerms(s, groups, values)
>>> A = terms.ztwz(np.ones(4))
>>> H = terms.h_values(terms.lambda_values(np.array([1.0, 0.5, 2.0])), A)
>>> Lam, Ad = s.matrix(np.array([1.0, 0.5, 2.0])), np.zeros((6, 6))
>>> Ad[terms.elim.rows, terms.elim.cols] = A
>>> bool(np.allclose(H, (Lam.T @ Ad @ Lam + np.eye(6))[terms.elim.rows, terms.elim.cols]))
True
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .linalg import Elimination
from .structure import Structure


class SparseTerms:
    """The sparse-path arrays of a model's terms on one set of cells.

    Parameters
    ----------
    structure : Structure
    groups : list of (n_cells,) int arrays
        Each term's level of every cell.
    values : list of (n_cells, K) arrays
        Each term's effect values in every cell (1 for an intercept, x for a slope).
    """

    def __init__(self, structure: Structure, groups: list, values: list):
        s = self.structure = structure
        q = s.q
        starts = np.concatenate([[0], np.cumsum(s.n_effects * s.n_levels)])
        # each cell's columns of Z, term by term (n_cells, width) with their values
        self.cell_cols = np.hstack([starts[k] + g[:, None] * K + np.arange(K)
                                    for k, (g, K) in enumerate(zip(groups, s.n_effects))])
        self.cell_vals = np.hstack([np.asarray(v, float).reshape(len(g), -1) for g, v in zip(groups, values)])
        n, width = self.cell_cols.shape
        self.Z = sp.csr_matrix((self.cell_vals.ravel(), self.cell_cols.ravel(), np.arange(n + 1) * width), shape=(n, q))
        # H's pattern: every pair of a cell's columns (blocks are whole: a cell has all K of a level's)
        pair_r = np.repeat(self.cell_cols, width, axis=1).ravel()
        pair_c = np.tile(self.cell_cols, (1, width)).ravel()
        effect = np.concatenate([np.tile(np.arange(K), J) + first for K, J, first in
                                 zip(s.n_effects, s.n_levels, np.concatenate([[0], np.cumsum(s.n_effects)]))])
        self.elim = Elimination(q, pair_r, pair_c, groups=effect)
        self.diag = (self.elim.rows == self.elim.cols).astype(float)
        # Z'WZ as one sparse product with w: each cell's pairs to their pattern position
        products = (self.cell_vals[:, :, None] * self.cell_vals[:, None, :]).ravel()
        self.pairs = sp.csr_matrix((products, (self.elim.positions(pair_r, pair_c), np.repeat(np.arange(n), width ** 2))),
                                   shape=(self.elim.nnz, n))
        self._lambda_rows(q)
        self._h_map()
        self._trace_map()

    @classmethod
    def of(cls, cells) -> "SparseTerms":
        """The arrays of a Cells' design on its cells."""
        design = cells.design
        values = [design.effect_values(k, cells.table) for k in range(len(design.group_terms))]
        return cls(Structure.of(design), list(cells.groups), values)

    def _lambda_rows(self, q: int) -> None:
        """Lambda's entries by row, padded (q, Kmax): column, entry number, and a mask."""
        s = self.structure
        order = np.lexsort((s.cols, s.rows))
        count = np.bincount(s.rows, minlength=q)
        width = int(count.max(initial=1))
        slot = np.arange(len(order)) - np.repeat(np.cumsum(count) - count, count)
        self.row_col = np.zeros((q, width), dtype=np.int64)
        self.row_entry = np.zeros((q, width), dtype=np.int64)
        self.row_mask = np.zeros((q, width), dtype=bool)
        rows = s.rows[order]
        self.row_col[rows, slot], self.row_entry[rows, slot], self.row_mask[rows, slot] = s.cols[order], order, True

    def _h_map(self) -> None:
        """H_ij = sum Lambda_ki A_kl Lambda_lj: for each pattern entry (k, l) and Lambda's entries (k, i)
        and (l, j), the target (i, j) and the three factors' positions."""
        el = self.elim
        k, l = el.rows, el.cols
        a = np.arange(el.nnz)[:, None, None]
        ok = self.row_mask[k][:, :, None] & self.row_mask[l][:, None, :]
        i = np.broadcast_to(self.row_col[k][:, :, None], ok.shape)[ok]
        j = np.broadcast_to(self.row_col[l][:, None, :], ok.shape)[ok]
        self.h_target = el.positions(i, j)
        self.h_left = np.broadcast_to(self.row_entry[k][:, :, None], ok.shape)[ok]
        self.h_right = np.broadcast_to(self.row_entry[l][:, None, :], ok.shape)[ok]
        self.h_a = np.broadcast_to(a, ok.shape)[ok]

    def _trace_map(self) -> None:
        """For each Lambda entry f = (r, c), each pattern entry e = (k, r) and each Lambda entry
        g = (k, j): tr's term H^-1_cj Lambda_kj A_kr, as positions (f, (c, j), g, e)."""
        s, el = self.structure, self.elim
        by_col = np.lexsort((el.rows, el.cols))  # pattern entries column by column
        indptr = np.concatenate([[0], np.cumsum(np.bincount(el.cols, minlength=s.q))])
        count = np.diff(indptr)[s.rows]
        f = np.repeat(np.arange(len(s.rows)), count)
        e = by_col[np.arange(len(f)) - np.repeat(np.cumsum(count) - count, count) + np.repeat(indptr[s.rows], count)]
        k = el.rows[e]
        ok = self.row_mask[k]
        f, e = np.broadcast_to(f[:, None], ok.shape)[ok], np.broadcast_to(e[:, None], ok.shape)[ok]
        self.t_entry, self.t_a, self.t_lambda = f, e, self.row_entry[k][ok]
        self.t_h = el.positions(s.cols[f], self.row_col[k][ok])

    def lambda_values(self, theta: np.ndarray) -> np.ndarray:
        """Lambda's entries, (n_entries,)."""
        return np.asarray(theta, float)[self.structure.index]

    def lambda_matrix(self, theta: np.ndarray) -> sp.csr_matrix:
        """Lambda(theta), sparse (q, q)."""
        s = self.structure
        return sp.csr_matrix((self.lambda_values(theta), (s.rows, s.cols)), shape=(s.q, s.q))

    def ztwz(self, w: np.ndarray) -> np.ndarray:
        """Z' diag(w) Z on H's pattern, (nnz,)."""
        return self.pairs @ w

    def h_values(self, lam: np.ndarray, A: np.ndarray) -> np.ndarray:
        """H = Lambda' A Lambda + I on the pattern, (nnz,), from Lambda's entries and A's values."""
        terms = lam[self.h_left] * A[self.h_a] * lam[self.h_right]
        return np.bincount(self.h_target, weights=terms, minlength=self.elim.nnz) + self.diag

    def traces(self, lam: np.ndarray, A: np.ndarray, hinv: np.ndarray) -> np.ndarray:
        """tr(H^-1 Lambda' A E_f) for every entry f of Lambda, (n_entries,), from H^-1 on the pattern."""
        terms = hinv[self.t_h] * lam[self.t_lambda] * A[self.t_a]
        return np.bincount(self.t_entry, weights=terms, minlength=len(self.structure.rows))

    def leverage(self, ZL: sp.csr_matrix, hinv: np.ndarray) -> np.ndarray:
        """Each cell's z' Lambda H^-1 Lambda' z, (n_cells,), for ZL = Z Lambda with H^-1 on the pattern
        (a cell's columns of ZL are its levels' blocks, so every pair of them is on the pattern)."""
        H = sp.csr_matrix((hinv, (self.elim.rows, self.elim.cols)), shape=(self.structure.q,) * 2)
        return np.asarray((ZL @ H).multiply(ZL).sum(axis=1)).ravel()
