"""Choosing what each stage of the elimination eliminates, and the pairs its update visits.

Example
-------
>>> import numpy as np
>>> [a.tolist() for a in lower_pairs(np.array([0, 2, 3]))]
[[2, 0, 1, 1], [2, 0, 0, 1]]
"""

from __future__ import annotations

import numpy as np


def unique_sorted(keys: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, ascending: a sort and a comparison (numpy 2's
    np.unique hashes wide-ranged integers, six to fifteen times slower here)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def pairs_within(indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (first, second) of entries within each group; groups are indptr's slices."""
    return _pairs(indptr, lambda c: np.divmod(np.arange(c * c), c))


def lower_pairs(indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (first, second) with first >= second within each group (indptr's slices): one
    triangle of :func:`pairs_within`'s, the diagonal included."""
    return _pairs(indptr, lambda c: np.tril_indices(c))


def _pairs(indptr: np.ndarray, template) -> tuple[np.ndarray, np.ndarray]:
    """Pairs within groups from one template of local pairs per group size, broadcast over the
    groups of that size (a few sizes, so no per-entry repeats); groups in order within a size."""
    counts = np.diff(indptr)
    firsts, seconds = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for c in np.unique(counts[counts > 0]):
        start = indptr[:-1][counts == c][:, None]
        a, b = template(int(c))
        firsts.append((start + a).ravel())
        seconds.append((start + b).ravel())
    return np.concatenate(firsts), np.concatenate(seconds)


def cheapest_group(rows: np.ndarray, cols: np.ndarray, m: int, keep: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The columns (m,) bool of the group with the least sum of degree squared among groups whose
    columns are pairwise apart and not kept; minimum degree's set when there is none."""
    off = rows != cols
    labels, group = np.unique(groups, return_inverse=True)
    degree = np.bincount(rows[off], minlength=m).astype(float)
    cost = np.bincount(group, weights=degree * degree, minlength=len(labels))
    joined = np.bincount(group[rows[off & (group[rows] == group[cols])]], minlength=len(labels)) > 0
    kept = np.bincount(group[keep], minlength=len(labels)) > 0
    cost[joined | kept] = np.inf
    if not np.isfinite(cost).any():
        return independent_set(rows, cols, m, keep)
    return group == np.argmin(cost)


def independent_set(rows: np.ndarray, cols: np.ndarray, m: int, keep: np.ndarray) -> np.ndarray:
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
