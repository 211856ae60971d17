"""Calibration to known totals: the one-way and two-way shift on the link scale.

Ghitza and Gelman (2013), as ccesMRPrun's ``calib_oneway`` and ``calib_twoway``: each cell's
prediction moves on the link scale (logit for a share, the identity for a mean) by a shift per
group, chosen so that the poststratified value of every group matches its known total, such as
turnout by state. Two margins (say state, and age group) are matched together by alternating
one-way shifts until both hold. It works draw by draw, so the uncertainty carries through: every
draw is shifted to the totals, and the spread that remains is within the groups.

A census-sized frame read in chunks is calibrated by :class:`CalibratedPredictor`: one pass sums
the population of each distinct model cell within each calibration group (the shifts depend on
nothing else), the shifts are solved on those units as :func:`calibrate` solves them on a frame,
and each chunk's rows then take their unit's shifted predictions (see
:func:`misterp.results.stream.poststratify_stream`).

Example
-------
>>> import numpy as np, pandas as pd
>>> from misterp import CellDraws, Frame, poststratify
>>> from misterp.model.family import BINOMIAL
>>> frame = Frame(pd.DataFrame({"g": ["a", "a", "b"], "N": [1, 1, 2]}), "N")
>>> cells = CellDraws(point=np.array([0.2, 0.4, 0.5]))
>>> shifted = calibrate(cells, frame, [pd.DataFrame({"g": ["a", "b"], "target": [0.5, 0.7]})], BINOMIAL)
>>> poststratify(shifted, frame, by="g").table["estimate"].round(10).tolist()
[0.5, 0.7]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.frame import Frame, FrameChunks
from ..errors import MisterpInputError
from .draws import CellDraws, LinearDraws, Predictor
from .poststratify import row_codes

CELL_BUDGET = 2**22  # draws x cells whose shifts are solved at a time (32 MB per array of them)


@dataclass(frozen=True)
class Margin:
    """One table of known totals: the frame's groups it covers and their targets.

    Attributes
    ----------
    columns : list of str
        The frame columns that name a group.
    group : (n_cells,) int array
        The group of each frame cell.
    weights : sparse (n_groups, n_cells)
        N_c / N_g within each group.
    target : (n_groups,) array
    """

    columns: list
    group: np.ndarray
    weights: sp.csr_matrix
    target: np.ndarray


def margin(frame: Frame, totals: pd.DataFrame) -> Margin:
    """A :class:`Margin` from a table with the group columns and ``target``; every group of the
    table must be in the frame and every frame group in the table (groups are matched as text, so a
    table's 1 is a frame's "1")."""
    columns = group_columns(totals, frame.data.columns)
    table_keys, frame_keys = _keys(totals, columns), _keys(frame.data, columns)
    frame_groups = frame_keys.unique()
    unknown, uncovered = table_keys.difference(frame_groups), frame_groups.difference(table_keys)
    repeats = table_keys.duplicated().any()
    if len(unknown) or len(uncovered) or repeats:
        named = lambda keys: sorted(":".join(k) for k in keys)[:10] or "no"  # noqa: E731
        raise MisterpInputError(
            f"The calibration table on {columns} and the frame must name the same groups, once each: the table "
            f"has {named(unknown)} unknown group(s), the frame {named(uncovered)} group(s) without a "
            f"target{', and the table repeats groups' if repeats else ''}. Fix the table.")
    group = table_keys.get_indexer(frame_keys)
    counts = frame.counts
    population = np.bincount(group, weights=counts, minlength=len(totals))
    weights = sp.csr_matrix((counts / np.where(population > 0, population, 1.0)[group], (group, np.arange(len(counts)))),
                            shape=(len(totals), len(counts)))
    return Margin(columns, group, weights, pd.to_numeric(totals["target"]).to_numpy(float))


def _keys(data: pd.DataFrame, columns: list) -> pd.MultiIndex:
    """Each row's group, one level of text per column (each distinct value turned to text once)."""
    arrays = []
    for col in columns:
        codes, uniques = pd.factorize(data[col], use_na_sentinel=False)
        arrays.append(np.asarray(pd.Index(uniques).astype(str), dtype=object)[codes])
    return pd.MultiIndex.from_arrays(arrays, names=columns)


def group_columns(totals: pd.DataFrame, frame_columns) -> list[str]:
    """A calibration table's group columns (all but ``target``), which must be among ``frame_columns``."""
    if "target" not in totals:
        raise MisterpInputError(f"A calibration table needs a 'target' column; its columns are {list(totals)}.")
    columns = [c for c in totals.columns if c != "target"]
    missing = [c for c in columns if c not in frame_columns]
    if not columns or missing:
        raise MisterpInputError(
            f"A calibration table's group columns must be frame columns; {missing or 'it has none'} "
            f"{'are not' if missing else ''} (the frame's columns are {list(frame_columns)}).")
    return columns


def shifts(eta: np.ndarray, margins: list[Margin], family, tol: float = 1e-12, max_iter: int = 200,
           start: list | None = None) -> list:
    """The link-scale shift of each group of each margin, [(n_draws, n_groups)], for eta
    (n_draws, n_cells): Newton steps per group, alternated across margins until all hold. Newton
    starts at 0, or at ``start`` (one (n_groups,) array per margin: the point's shifts, say)."""
    eta = np.atleast_2d(eta)
    deltas = [np.zeros((len(eta), len(m.target))) + (0.0 if start is None else start[k]) for k, m in enumerate(margins)]
    total = lambda: sum(d[:, m.group] for d, m in zip(deltas, margins))  # noqa: E731
    for _ in range(max_iter):
        for k, m in enumerate(margins):
            others = total() - deltas[k][:, m.group]
            for _ in range(50):  # Newton per group: the poststratified mean is increasing in the shift
                shifted = eta + others + deltas[k][:, m.group]
                gap = np.asarray(m.weights @ family.mean(shifted).T).T - m.target
                slope = np.asarray(m.weights @ family.mean_deriv(shifted).T).T
                step = gap / np.where(slope > 0, slope, np.inf)
                deltas[k] -= np.clip(step, -2.0, 2.0)
                if np.max(np.abs(gap), initial=0.0) < tol:
                    break
        if len(margins) == 1 and np.max(np.abs(gap), initial=0.0) < tol:
            return deltas  # one margin: its Newton steps met it
        # the other margins may have moved: check them all
        gaps = [np.max(np.abs(np.asarray(m.weights @ family.mean(eta + total()).T).T - m.target), initial=0.0)
                for m in margins]
        if max(gaps) < 10 * tol:
            return deltas
    raise MisterpInputError(
        f"Calibration did not reach the totals (largest gap {max(gaps):.2e}): the margins may contradict each "
        "other (different overall totals), or a target lies outside what the cells can reach.")


@dataclass(frozen=True)
class ShiftedDraws:
    """Draws of cell means with a per-draw shift on the link scale (the calibrated draws).

    Attributes
    ----------
    base : LinearDraws
    deltas : list of (n_draws, n_groups) arrays
        Each margin's shift per group and draw.
    groups : list of (n_cells,) int arrays
        Each margin's group of every cell.
    """

    base: LinearDraws
    deltas: list
    groups: list

    @property
    def n_draws(self) -> int:
        return self.base.n_draws

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """Yield calibrated cell means, (<= size, n_cells) per chunk, in draw order."""
        base = self.base
        for start in range(0, self.n_draws, size):
            eta = np.asarray(base.matrix @ base.coef[start:start + size].T).T + base.offset
            for delta, group in zip(self.deltas, self.groups):
                eta += delta[start:start + size][:, group]
            yield base.family.mean(eta, out=eta)


def calibrate(cells: CellDraws, frame: Frame, totals: list[pd.DataFrame], family) -> CellDraws:
    """``cells`` shifted to the known totals (one table for a one-way shift, two for two-way).

    Parameters
    ----------
    cells : CellDraws
        Predictions for the frame's cells (their point and draws are shifted alike).
    frame : Frame
    totals : list of DataFrame
        Each with group columns of the frame and ``target`` (a share for binomial models, a mean
        for gaussian ones).
    family : Family
        The model's family: its link is the scale of the shift.
    """
    if not 1 <= len(totals) <= 2:
        raise MisterpInputError("Calibration takes one table of totals (one-way) or two (two-way).")
    margins = [margin(frame, t) for t in totals]
    groups = [m.group for m in margins]
    point_eta = family.link_function(cells.point)
    point_deltas = shifts(point_eta[None, :], margins, family)
    point = family.mean(point_eta + sum(d[0][g] for d, g in zip(point_deltas, groups)))
    draws = cells.draws
    if draws is not None:  # in chunks: draws x cells never sits in memory at once
        parts, size = [], max(1, min(256, CELL_BUDGET // len(cells.point)))
        for start in range(0, draws.n_draws, size):
            eta = np.asarray(draws.matrix @ draws.coef[start:start + size].T).T + draws.offset
            parts.append(shifts(eta, margins, family, start=[d[0] for d in point_deltas]))
        draws = ShiftedDraws(draws, [np.vstack([p[k] for p in parts]) for k in range(len(margins))], groups)
    return replace(cells, point=point, draws=draws, se=None, delta=None,
                   interval=cells.interval if draws is not None else "none",
                   method=f"{cells.method}, calibrated" if cells.method != "none" else "calibrated")


class CalibratedPredictor:
    """A fit's predictions for a frame read in chunks, every draw shifted to known totals.

    One pass over ``chunks`` sums the population of each distinct combination of the model's
    predictors and the tables' group columns (a unit: its rows share their prediction and their
    groups, so a shift moves them alike); the units are predicted and calibrated by
    :func:`calibrate` as a frame of their own, which gives what calibrating the whole frame gives.
    :meth:`cells` then hands any chunk's units their calibrated predictions.

    Parameters
    ----------
    predictor : Predictor
        The fit's parameter draws (made once, as for an uncalibrated stream).
    chunks : FrameChunks
    totals : list of DataFrame
        As :func:`calibrate` takes them.

    Attributes
    ----------
    columns : list of str
        The columns that make a unit.
    units : Frame
        One row per unit, (n_units,), with its summed count.

    Examples
    --------
    >>> import pandas as pd
    >>> from misterp import GlmEngine, Survey, collapse
    >>> survey = Survey(pd.DataFrame({"y": [1, 0, 1, 1], "g": ["a", "a", "b", "b"]}), "y")
    >>> fit = GlmEngine().fit(collapse(survey, "y ~ 1"))
    >>> chunks = FrameChunks(pd.DataFrame({"g": ["a", "b", "b"], "h": [1, 1, 2], "N": [1, 1, 2]}), "N", rows=2)
    >>> calibrated = CalibratedPredictor(Predictor(fit), chunks, [pd.DataFrame({"g": ["a", "b"], "target": [0.2, 0.9]})])
    >>> len(calibrated.units.data), calibrated.cells(pd.DataFrame({"g": ["b"]})).point.round(6).tolist()
    (2, [0.9])
    """

    def __init__(self, predictor: Predictor, chunks: FrameChunks, totals: list[pd.DataFrame]):
        if not 1 <= len(totals) <= 2:
            raise MisterpInputError("Calibration takes one table of totals (one-way) or two (two-way).")
        fit = predictor.fit
        self.columns, self.units = _units(chunks, fit.design.formula.predictors, totals)
        unit_cells = predictor.cells(self.units.data, with_delta=False)  # calibration drops the delta method's pieces
        self.calibrated = calibrate(unit_cells, self.units, totals, fit.family)
        self.index = pd.MultiIndex.from_frame(self.units.data[self.columns])

    def cells(self, data: pd.DataFrame) -> CellDraws:
        """The calibrated predictions of the rows of ``data`` (each a unit of the frame), in row order."""
        where = self.index.get_indexer(pd.MultiIndex.from_frame(data[self.columns]))
        if (where < 0).any():
            raise ValueError("rows that are no unit of the calibrated frame: was it changed between passes?")
        cells = self.calibrated
        draws = cells.draws
        if draws is not None:
            base = replace(draws.base, matrix=draws.base.matrix[where], offset=draws.base.offset[where])
            draws = replace(draws, base=base, groups=[g[where] for g in draws.groups])
        return replace(cells, point=cells.point[where], draws=draws)


def _units(chunks: FrameChunks, predictors: list, totals: list[pd.DataFrame]) -> tuple[list, Frame]:
    """The unit columns (predictors, then the tables' group columns) and the frame summed over them:
    distinct combinations in order of first appearance, (n_units,) rows, in one pass over ``chunks``."""
    columns, parts, rows, count = None, [], 0, chunks.count
    for frame in chunks:
        if columns is None:
            groups = [c for t in totals for c in group_columns(t, frame.data.columns)]
            columns = list(dict.fromkeys(list(predictors) + groups))
        code, first = row_codes(frame.data, columns)
        part = frame.data[columns].iloc[first].reset_index(drop=True)
        parts.append(part.assign(**{count: np.bincount(code, weights=frame.counts)}))
        rows += len(part)
        if rows > 1_000_000 and len(parts) > 1:  # fold the parts, so memory grows with units, not rows
            parts = [_sum_units(parts, columns, count)]
            rows = len(parts[0])
    return columns, Frame(_sum_units(parts, columns, count), count)


def _sum_units(parts: list, columns: list, count: str) -> pd.DataFrame:
    """Parts' rows summed by ``columns``, in order of first appearance."""
    table = pd.concat(parts, ignore_index=True)
    return table.groupby(columns, sort=False, dropna=False, observed=True)[count].sum().reset_index()
