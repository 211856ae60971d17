"""Raking (iterative proportional fitting) of weights to known margins.

One routine serves two uses: raking survey weights to the frame's margins
(the classical comparison for MRP, as R's ``survey::rake``), and building a
poststratification table from a seed table and known marginal totals
(multilevel regression with synthetic poststratification, MrsP).

Example
-------
>>> import numpy as np
>>> w = rake(np.ones(4), [np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])],
...          [np.array([30.0, 70.0]), np.array([40.0, 60.0])])
>>> np.round(w, 6).tolist()
[12.0, 18.0, 28.0, 42.0]
"""

from __future__ import annotations

import numpy as np

from ..errors import MisterpInputError


def rake(weights: np.ndarray, codes: list[np.ndarray], targets: list[np.ndarray], tol: float = 1e-10,
         max_iter: int = 1000, names: list[str] | None = None) -> np.ndarray:
    """Scale ``weights`` (n,) until their sums by each margin match its targets.

    Parameters
    ----------
    weights : (n,) array
        Starting weights (design weights, or ones), all > 0.
    codes : list of (n,) int arrays
        For each margin, the category of every row (0 .. K_m - 1).
    targets : list of (K_m,) arrays
        The totals each margin must reach.
    tol : float
        Largest relative gap |sum / target - 1| allowed on every margin.
    max_iter : int
        Passes over all margins before giving up with an error.
    names : list of str, optional
        Margin names for messages.

    Returns
    -------
    (n,) array of raked weights.
    """
    names = names or [f"margin {m + 1}" for m in range(len(codes))]
    w = np.asarray(weights, dtype=float).copy()
    for name, code, target in zip(names, codes, targets):
        current = np.bincount(code, weights=w, minlength=len(target))
        empty = (current <= 0) & (np.asarray(target) > 0)
        if empty.any():
            raise MisterpInputError(
                f"Cannot rake to the margin {name!r}: its categories {np.flatnonzero(empty).tolist()} have a "
                "positive target but no rows to carry it. Merge those categories or drop that margin."
            )
    for _ in range(max_iter):
        for code, target in zip(codes, targets):
            current = np.bincount(code, weights=w, minlength=len(target))
            w *= np.divide(target, current, out=np.zeros(len(target)), where=current > 0)[code]
        gap = max((_gap(code, target, w) for code, target in zip(codes, targets)), default=0.0)  # no margins: as given
        if gap < tol:
            return w
    raise MisterpInputError(
        f"Raking did not converge in {max_iter} passes: the margins still differ by up to {gap:.2e} "
        "(relative). The margins may contradict each other (different grand totals, or a structure "
        "the rows cannot reach); check that every margin sums to the same total."
    )


def _gap(code: np.ndarray, target: np.ndarray, w: np.ndarray) -> float:
    current = np.bincount(code, weights=w, minlength=len(target))
    positive = target > 0
    return float(np.max(np.abs(current[positive] / target[positive] - 1.0), initial=0.0))
