"""The symbolic factorisation: an elimination order in stages and the index arrays of each stage.

A stage eliminates an independent set I of columns at once, so that its pivot block D is diagonal,

    H = [[D, B'], [B, C]],   S = C - B D^-1 B',

and the numeric work is a few gathers and sums over index arrays computed here, once per model.
Stages go on while S is large and sparse; the dense rest (the tail) goes to LAPACK. The stage
whose child is the tail writes its update straight into the tail's dense lower triangle (Fortran
order, as LAPACK reads it), over the pairs of one triangle only.

Example
-------
>>> import numpy as np
>>> rows, cols = np.array([0, 3, 1, 3, 2, 3]), np.array([3, 0, 3, 1, 3, 2])  # a star: 0, 1, 2 -- 3
>>> elim = Elimination(4, rows, cols)
>>> elim.nnz, len(elim.tail)
(10, 4)
"""

from __future__ import annotations

import numpy as np

from .ordering import cheapest_group, independent_set, lower_pairs, pairs_within, unique_sorted

# a rest this small, or this full, is cheaper as one dense LAPACK factorisation
DENSE_TAIL = 400
DENSE_FILL = 0.2
# a child this large is never made dense (its n^2 mask would not fit comfortably)
DENSE_LIMIT = 6000
# rows of B in at least this share of a dense stage's columns are heavy: their update is a
# sparse-dense product (nnz(B) multiply-adds each, compiled) rather than pairs (their count times
# the columns' degree, in numpy); at most HEAVY_MAX of them
HEAVY = 0.1
HEAVY_MAX = 256


class Stage:
    """One elimination of an independent set I from a pattern of m columns (local indices).

    Index arrays into the parent's values (sorted (row, col) entries): ``diag_pos`` (|I|,) D's
    entries; ``b_pos``, ``b_pos_t`` (nb,) B's entries (r, i) and (i, r), column by column, with
    their local row ``b_row`` in R and column ``b_col`` in I; ``rr_pos`` -> ``rr_target`` copies
    C into the child; ``pair_first``, ``pair_second`` (entries of B in one column) -> ``pair_target``
    (their (r, r') in the child) carry the update B D^-1 B'.

    When ``dense`` (the child is the dense tail), the child's values are its (n_r, n_r) matrix
    flattened in Fortran order, lower triangle only: the pairs, among light rows only, have
    ``pair_first`` >= ``pair_second`` (``pair_off`` marks those off the diagonal); the heavy rows
    ``heavy_rows`` (h,) hold the entries ``heavy_pos`` (their row's place ``heavy_index`` among
    them) and are updated as a block; ``rr_pos``, ``rr_target`` copy C's lower entries; ``rr_all``,
    ``rr_all_target`` map every entry of C to its lower twin (for the inverse).
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, m: int, chosen: np.ndarray):
        keys = rows * m + cols
        r_loc = np.cumsum(~chosen) - 1
        i_loc = np.cumsum(chosen) - 1
        self.n_parent, self.n_i, self.n_r = len(rows), int(chosen.sum()), int(m - chosen.sum())
        self.i_local, self.r_local = np.flatnonzero(chosen), np.flatnonzero(~chosen)
        self.diag_pos = np.flatnonzero((rows == cols) & chosen[rows])
        sel = np.flatnonzero(~chosen[rows] & chosen[cols])
        sel = sel[np.lexsort((rows[sel], cols[sel]))]  # column by column, rows ascending
        self.b_pos = sel
        self.b_pos_t = np.searchsorted(keys, cols[sel] * m + rows[sel])
        self.b_row, self.b_col = r_loc[rows[sel]], i_loc[cols[sel]]
        self.b_indptr = np.concatenate([[0], np.cumsum(np.bincount(self.b_col, minlength=self.n_i))])
        self.rr_all = np.flatnonzero(~chosen[rows] & ~chosen[cols])
        rr_r, rr_c = r_loc[rows[self.rr_all]], r_loc[cols[self.rr_all]]
        self.dense = False
        if self.n_r <= DENSE_LIMIT:  # try the child as the dense tail
            rr_target = np.minimum(rr_r, rr_c) * self.n_r + np.maximum(rr_r, rr_c)  # each entry's lower twin
            self._dense_child(rr_target)
            self.dense = self.n_r <= DENSE_TAIL or self._child_fill(rr_target) >= DENSE_FILL * self.n_r ** 2
        if self.dense:
            lower = rr_r >= rr_c
            self.rr_pos, self.rr_target = self.rr_all[lower], rr_target[lower]
            self.rr_all_target = rr_target
            self.child_rows = self.child_cols = None
        else:
            self._sparse_child(rr_r, rr_c)
        self.pair_col = self.b_col[self.pair_first]

    def _dense_child(self, rr_target: np.ndarray) -> None:
        """Index arrays for a dense child: one triangle of pairs among the light rows, and the
        heavy rows (in at least HEAVY of the columns) as a block, whose update is one sparse-dense
        product, ``heavy_target`` (n_r, h) placing each (row, heavy row) at its lower twin."""
        n = self.n_r
        count = np.bincount(self.b_row, minlength=n)
        heavy = count >= max(HEAVY * self.n_i, 2.0)
        if heavy.sum() > HEAVY_MAX:
            heavy[:] = False
        self.heavy_rows = np.flatnonzero(heavy)
        light = np.flatnonzero(~heavy[self.b_row])  # entries of light rows, still column by column
        first, second = lower_pairs(np.concatenate([[0], np.cumsum(np.bincount(self.b_col[light],
                                                                                minlength=self.n_i))]))
        self.pair_first, self.pair_second = light[first], light[second]
        self.pair_off = first != second
        # (r, r'), r >= r', in Fortran order
        self.pair_target = self.b_row[self.pair_second] * n + self.b_row[self.pair_first]
        self.heavy_pos = np.flatnonzero(heavy[self.b_row])
        self.heavy_index = np.searchsorted(self.heavy_rows, self.b_row[self.heavy_pos])
        rows = np.arange(n)[:, None]
        self.heavy_target = np.minimum(rows, self.heavy_rows) * n + np.maximum(rows, self.heavy_rows)

    def _child_fill(self, rr_target: np.ndarray) -> int:
        """Entries, both triangles, of the dense child: C's, the pairs' and the heavy rows'."""
        n = self.n_r
        mask = np.zeros(n * n, bool)
        for target in (rr_target, self.pair_target, self.heavy_target.ravel()):
            mask[target] = True
        return 2 * int(mask.sum()) - n

    def _sparse_child(self, rr_r: np.ndarray, rr_c: np.ndarray) -> None:
        n = self.n_r
        self.pair_first, self.pair_second = pairs_within(self.b_indptr)
        self.pair_off = None
        rr_keys = rr_r * n + rr_c
        fill_keys = self.b_row[self.pair_first] * n + self.b_row[self.pair_second]
        child = unique_sorted(np.concatenate([rr_keys, fill_keys]))
        self.rr_pos, self.rr_target = self.rr_all, np.searchsorted(child, rr_keys)
        self.rr_all_target = self.rr_target
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
    groups : (q,) int array, optional
        A label per column, such as each random effect's term (and effect): the first stage
        eliminates the group whose columns are pairwise apart and cost the least update work (sum
        of degree squared). A term's levels never share a cell, so in a crossed design the whole
        smaller side goes first, as one diagonal block, where minimum degree alone would start
        from the other side's rarest levels and fill both in.

    Values are given in the order of ``self.rows``, ``self.cols`` (sorted, unique);
    :meth:`positions` finds entries in it. ``tail`` (m,) lists the tail's global columns; when no
    stage wrote it densely, ``tail_pos`` -> ``tail_target`` place the last values' lower entries
    in its Fortran-ordered (m, m) matrix and ``tail_all_target`` maps every entry to its lower twin.
    """

    def __init__(self, q: int, rows: np.ndarray, cols: np.ndarray, keep: np.ndarray | None = None,
                 groups: np.ndarray | None = None):
        self.q = int(q)
        keys = unique_sorted(np.concatenate([np.asarray(rows, np.int64) * q + np.asarray(cols, np.int64),
                                         np.arange(q, dtype=np.int64) * (q + 1)]))
        self.keys = keys
        self.rows, self.cols = keys // q, keys % q
        keep = np.zeros(q, bool) if keep is None else np.asarray(keep, bool)
        self.stages: list[Stage] = []
        self.global_i: list[np.ndarray] = []
        self.global_r: list[np.ndarray] = []
        alive = np.arange(q)
        r, c, m = self.rows, self.cols, q
        while m > DENSE_TAIL and len(r) < DENSE_FILL * m * m:
            if groups is not None and not self.stages:
                chosen = cheapest_group(r, c, m, keep, np.asarray(groups))
            else:
                chosen = independent_set(r, c, m, keep[alive])
            if not chosen.any():
                break
            stage = Stage(r, c, m, chosen)
            self.stages.append(stage)
            self.global_i.append(alive[stage.i_local])
            self.global_r.append(alive[stage.r_local])
            alive = alive[stage.r_local]
            if stage.dense:
                break
            r, c, m = stage.child_rows, stage.child_cols, stage.n_r
        self.tail = alive
        if not self.dense_tail:
            lower = r >= c
            self.tail_pos, self.tail_target = np.flatnonzero(lower), c[lower] * m + r[lower]
            self.tail_all_target = np.minimum(r, c) * m + np.maximum(r, c)

    @property
    def dense_tail(self) -> bool:
        """Whether the last stage writes the tail's matrix itself."""
        return bool(self.stages) and self.stages[-1].dense

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

    def factor(self, values: np.ndarray):
        """The numeric factorisation (:class:`.factor.Factor`) of the matrix with these values (nnz,)."""
        from .factor import Factor

        return Factor(self, np.asarray(values, float))
