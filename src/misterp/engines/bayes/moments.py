"""A quadratic log-likelihood on sufficient statistics: the cells summed once, before sampling.

A family whose log-likelihood is quadratic in the linear predictor (the gaussian;
:class:`misterp.model.family.Quadratic`) needs, at each evaluation, only

    sum_c w_c (t_c - offset_c - a_c' theta)^2
        = S - 2 theta' s + theta' (A' W A) theta,    s = A' W (t - offset),

for the cells' rows a_c of A = [F Z] (F: the intercept and centred predictors, Z: the
group effects' columns) and theta = (fixed, b): whatever the covariates, continuous ones
included, so the cost is that of A' W A's nonzeros and not of the cells. A model where
every respondent is its own cell (a continuous score) has thousands of cells but few
nonzeros in A' W A: F'WF is p x p, F'WZ is p x q and Z'WZ is block diagonal for one
grouping term (one K x K block per level), with a block per pair of levels that meet in
some cell for crossed terms.

The expansion is exact algebra: the log density and its gradient equal the cell-by-cell
ones up to rounding. To keep the rounding small (S is a sum of squares of the outcome,
and the quadratic form cancels most of it near the mode), the squares are expanded about
the fixed effects' weighted least-squares fit theta0 = (f0, 0): S and s are those of
its residuals e = t - offset - F f0, and the form is evaluated in d = fixed - f0 and b.

Example
-------
>>> import numpy as np, scipy.sparse as sp
>>> from misterp.model.family import Quadratic
>>> F, Z = np.ones((3, 1)), sp.csr_matrix(np.array([[1.0], [1.0], [0.0]]))
>>> m = build_moments(Quadratic(np.ones(3), np.array([1.0, 2.0, 4.0]), 0.0, 3.0), F, Z, np.zeros(3))
>>> float(np.round(m.squares(np.array([2.0]), np.array([-0.5])), 12))  # (1-1.5)^2 + (2-1.5)^2 + (4-2)^2
4.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...model.family import Quadratic


@dataclass(frozen=True)
class Moments:
    """The weighted sum of squares as a quadratic in (fixed, b).

    Attributes
    ----------
    quadratic : Quadratic
        The family's statement of its log-likelihood (its fixed squares, count and NumPyro site).
    base : float
        sum_c w_c e_c^2 of the residuals e at the reference fit.
    fixed_ref : (p,) array
        The reference f0 of the fixed part (intercept, then coefficients).
    fixed_score, random_score : (p,) and (q,) arrays
        F' W e and Z' W e.
    fixed_gram : (p, p) array
        F' W F.
    cross : (p, q) array
        F' W Z.
    rows, cols : (nnz,) int arrays
        Entries of Z' W Z on and above the diagonal,
    vals : (nnz,) array
        their values, off-diagonal ones doubled (each stands for its mirror too).
    """

    quadratic: Quadratic
    base: float
    fixed_ref: np.ndarray
    fixed_score: np.ndarray
    random_score: np.ndarray
    fixed_gram: np.ndarray
    cross: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray

    def squares(self, fixed, b):
        """sum_c w_c (t_c - eta_c)^2 at fixed effects ``fixed`` (p,) and group effects ``b`` (q,)
        (NumPy or JAX arrays; JAX differentiates it)."""
        xp = _namespace(fixed, b)
        d = fixed - xp.asarray(self.fixed_ref)
        total = self.base - 2.0 * (d @ xp.asarray(self.fixed_score) + b @ xp.asarray(self.random_score))
        total = total + d @ (xp.asarray(self.fixed_gram) @ d) + 2.0 * d @ (xp.asarray(self.cross) @ b)
        return total + xp.sum(xp.asarray(self.vals) * b[xp.asarray(self.rows)] * b[xp.asarray(self.cols)])

    @property
    def cost(self) -> int:
        """Multiply-adds per evaluation: the nonzeros of A' W A that it visits."""
        return moments_cost(*self.cross.shape, len(self.vals))


def _namespace(*arrays):
    if any(type(a).__module__.startswith("jax") for a in arrays):
        import jax.numpy as jnp

        return jnp
    return np


def rows_cost(n_cells: int, n_fixed: int, z_width: int) -> int:
    """Multiply-adds per evaluation cell by cell: each cell's fixed row and its Z entries."""
    return n_cells * (n_fixed + z_width)


def moments_cost(n_fixed: int, q: int, z_gram_nnz: int) -> int:
    """Multiply-adds per evaluation on the moments: F'WF, F'WZ and the upper triangle of Z'WZ."""
    return n_fixed * n_fixed + n_fixed * q + z_gram_nnz


def z_gram_nnz(Z: sp.csr_matrix) -> int:
    """Entries of Z'Z on and above the diagonal (those of Z'WZ for positive weights)."""
    pattern = Z.copy()
    pattern.data = np.ones_like(pattern.data)
    return int(sp.triu(pattern.T @ pattern).nnz)


def build_moments(quadratic: Quadratic, F: np.ndarray, Z: sp.csr_matrix, offset: np.ndarray) -> Moments:
    """Sum the cells into the moments of the quadratic.

    Parameters
    ----------
    quadratic : Quadratic
        Weights and targets of the cells, (n_cells,) each.
    F : (n_cells, p) array
        The fixed part of the linear predictor (intercept column, centred predictors).
    Z : sparse (n_cells, q)
        The group effects' columns.
    offset : (n_cells,) array

    Returns
    -------
    Moments
    """
    w = np.asarray(quadratic.weight, dtype=float)
    y = np.asarray(quadratic.target, dtype=float) - offset
    root = np.sqrt(w)
    fixed_ref = np.linalg.lstsq(F * root[:, None], y * root, rcond=None)[0] if F.shape[1] else np.zeros(0)
    e = y - F @ fixed_ref
    we = w * e
    Z = sp.csr_matrix(Z)
    gram = sp.triu((Z.T @ sp.diags(w) @ Z).tocoo()).tocoo()
    vals = np.where(gram.row == gram.col, 1.0, 2.0) * gram.data
    return Moments(quadratic, float(we @ e), fixed_ref, F.T @ we, Z.T @ we, F.T @ (F * w[:, None]),
                   np.asarray((Z.T @ (F * w[:, None])).T), gram.row.astype(np.int64), gram.col.astype(np.int64),
                   vals)
