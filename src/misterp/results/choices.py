"""Choice sets: the categories that stand in each area (a seat's candidates), applied to cell shares.

A categorical model predicts every category's share in every cell. Where a category does not stand in an
area, its share there is 0 and the others are renormalised over the area's set, draw by draw:
p'_ck = m_ck p_ck / sum_j m_cj p_cj, with m_ck = 1 where category k stands in cell c's area.

Example
-------
>>> import numpy as np, pandas as pd
>>> from misterp import Frame
>>> frame = Frame(pd.DataFrame({"seat": ["x", "y"], "N": [1, 1]}), "N")
>>> sets = pd.DataFrame({"seat": ["x", "x", "y", "y", "y"], "category": ["a", "b", "a", "b", "c"]})
>>> cells = CellDraws(point=np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), categories=("a", "b", "c"))
>>> restrict_choices(cells, frame, sets).point.round(3).tolist()
[[0.625, 0.375, 0.0], [0.5, 0.3, 0.2]]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import pandas as pd

from ..data.frame import Frame
from ..data.tables import require_columns
from ..errors import MisterpInputError
from .draws import CellDraws


def choice_mask(frame: Frame, sets: pd.DataFrame, categories: tuple) -> np.ndarray:
    """m (n_rows, K): 1 where the category stands in the row's area.

    ``sets`` has one row per area and standing category: the area column (named as in the frame; the
    one column other than ``category``) and ``category``. An area of the frame with no category, or a
    category the model never saw, is an error that names them.
    """
    require_columns(sets, ["category"], "choice sets", "Give one row per area and category that stands there, "
                    "with columns <area column>, category.")
    areas = [c for c in sets.columns if c != "category"]
    if len(areas) != 1:
        raise MisterpInputError(
            f"The choice sets must have two columns, the area column and category; they have {list(sets.columns)}. "
            "Keep the frame's area column and category.")
    area = areas[0]
    require_columns(frame.data, [area], "frame", f"The choice sets name areas by {area!r}; the frame needs it too.")
    named = sets["category"].astype(str)
    unknown = sorted(set(named) - set(categories))
    if unknown:
        raise MisterpInputError(
            f"The choice sets name {unknown}, which the model's outcome never holds (its categories are "
            f"{list(categories)}). Fix the names, or drop those rows.")
    stands = pd.crosstab(sets[area].astype(str), pd.Categorical(named, categories=categories), dropna=False) > 0
    rows = frame.data[area].astype(str)
    missing = sorted(set(rows) - set(stands.index))
    if missing:
        raise MisterpInputError(
            f"The frame's {area} {missing[:10]}{' ...' if len(missing) > 10 else ''} have no category in the choice "
            f"sets: every area needs at least one. Add their rows to the choice sets.")
    mask = stands.loc[rows].to_numpy(float)
    empty = stands.index[~stands.any(axis=1)].tolist()
    if empty:
        raise MisterpInputError(f"The choice sets leave {area} {empty[:10]} with no category. Add one.")
    return mask


@dataclass(frozen=True)
class RestrictedDraws:
    """Draws of shares renormalised over each cell's choice set (``mask`` (n_cells, K))."""

    inner: object
    mask: np.ndarray

    @property
    def n_draws(self) -> int:
        return self.inner.n_draws

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for chunk in self.inner.chunks(size):
            yield _renormalise(chunk, self.mask)


def _renormalise(shares: np.ndarray, mask: np.ndarray) -> np.ndarray:
    kept = shares * mask
    return kept / kept.sum(axis=-1, keepdims=True)


def restrict_choices(cells: CellDraws, frame: Frame, sets: pd.DataFrame) -> CellDraws:
    """``cells`` (a categorical model's, for ``frame``'s rows) with every share renormalised over the row's
    area's choice set (:func:`choice_mask`), in the point, in every draw and in the delta method's Jacobian."""
    if cells.categories is None:
        raise MisterpInputError("Choice sets apply to a categorical outcome's shares (--family categorical).")
    mask = choice_mask(frame, sets, cells.categories)
    point = _renormalise(cells.point, mask)
    delta = se = None
    if cells.delta is not None:
        jacobian, cov = cells.delta
        total = (cells.point * mask).sum(axis=-1)[:, None, None]
        kept = mask[:, :, None] * jacobian
        # d (m_k p_k / S) = (m_k dp_k - p'_k sum_j m_j dp_j) / S
        jacobian = (kept - point[:, :, None] * kept.sum(axis=1, keepdims=True)) / total
        delta = (jacobian, cov)
        se = np.sqrt(np.einsum("...j,jk,...k->...", jacobian, cov, jacobian))
    draws = None if cells.draws is None else RestrictedDraws(cells.draws, mask)
    return replace(cells, point=point, draws=draws, delta=delta, se=se)
