"""Poststratification of a census-sized frame, streamed in chunks of rows.

:func:`scan_frame` makes every survey-against-frame check of
:func:`misterp.model.cells.check_frame`, the coverage count and the raking
margins in one pass over the chunks; :func:`poststratify_stream` then
predicts each chunk's distinct model cells (draws x chunk cells at most, in
chunks of draws) and adds them to one :class:`GroupSums` per grouping, so
several groupings come out of one pass and memory is bounded by the chunk,
never by draws x frame cells. On a frame that fits in memory it gives what
``poststratify(cell_draws(fit, frame), frame, by=...)`` gives.

Example
-------
>>> import pandas as pd
>>> from misterp import Frame, GlmEngine, Survey, collapse
>>> from misterp.data.frame import FrameChunks
>>> survey = Survey(pd.DataFrame({"y": [1, 0, 1, 1, 0, 1], "g": ["a", "a", "b", "b", "b", "b"]}), "y")
>>> fit = GlmEngine().fit(collapse(survey, "y ~ g"))
>>> chunks = FrameChunks(pd.DataFrame({"g": ["a", "b", "b"], "h": [1, 1, 2], "N": [1, 1, 2]}), "N", rows=2)
>>> [e.table["estimate"].round(3).tolist() for e in poststratify_stream(fit, chunks, by=[[], ["h"]])]
[[0.688], [0.625, 0.75]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import checks
from ..data.frame import Frame, FrameChunks
from ..data.tables import describe_rows
from ..engines.fit import Fit
from ..errors import MisterpInputError
from ..model.cells import Cells, coverage_columns
from .calibrate import CalibratedPredictor
from .compare import FrameMargins
from .draws import Predictor
from .estimate import Estimate
from .extras import extra
from .poststratify import GroupSums, row_codes

# draws x cells predicted at a time: 16 MB of float64, under glibc's largest mmap threshold (32 MB),
# so each chunk reuses the last one's memory; at 2**24 (128 MB) every chunk faulted in fresh pages,
# 0.5 s of system time for 1,000 draws over a 73,000-cell frame
CELL_BUDGET = 2**21


def scan_frame(cells: Cells, chunks: FrameChunks, margins: FrameMargins | None = None,
               notes: list | None = None) -> dict:
    """Check the frame against the survey's cells chunk by chunk; add each chunk to ``margins``.

    Raises as :func:`misterp.model.cells.check_frame` does (missing labels,
    repeated cells, survey levels the frame lacks, frame levels a fixed
    effect cannot predict). Returns :func:`misterp.model.cells.frame_coverage`'s
    counts summed over the chunks; they are an extra
    (:mod:`misterp.results.extras`): where they cannot be counted, a note
    goes to ``notes``, the counts read "?" and the checks go on.
    """
    notes = [] if notes is None else notes
    design = cells.design
    predictors = design.formula.predictors
    grouping = [c for g in design.group_terms for c in g.columns]
    covered = list(dict.fromkeys(list(design.categorical) + grouping))
    levels = {col: set() for col in covered}
    matched = coverage_columns(cells)  # as frame_coverage matches them, found once for every chunk
    cover = {"frame_cells": 0, "with_respondents": 0, "without_respondents": 0, "population_without_respondents": 0.0}
    hashes, rows, counting = [], 0, True
    for frame in chunks:
        checks.check_frame_cells(frame, predictors)
        checks.check_fixed_levels(cells.table, frame, list(design.categorical))
        checks.check_fixed_levels(cells.table, frame, list(design.slope_levels), slope=True)
        for col in covered:
            levels[col].update(frame.data[col].unique())
        if counting:
            counted = extra("the frame's coverage count", notes, checks.coverage, cells.table, frame, matched)
            counting = counted is not None
            for key, value in (counted or {}).items():
                cover[key] += value
        rows += len(frame.data)
        hashes.append(_row_hashes(frame))
        if margins is not None:
            margins.add(frame)
    for col, values in levels.items():
        # the frame's levels of one column, as a frame of its own, for the in-memory check and its message
        checks.check_levels_covered(cells.table, Frame(pd.DataFrame({col: list(values), "__count": 0}), "__count"), [col])
    hashes = np.concatenate(hashes)
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated):
        _raise_repeated(chunks, np.unique(repeated))
    return cover if counting else {**{key: "?" for key in cover}, "frame_cells": rows}


def _row_hashes(frame: Frame) -> np.ndarray:
    """A 64-bit hash of each row's cell labels (every column but the count), (n_rows,)."""
    labels = [c for c in frame.data.columns if c != frame.count]
    return pd.util.hash_pandas_object(frame.data[labels], index=False).to_numpy()


def _raise_repeated(chunks: FrameChunks, suspects: np.ndarray) -> None:
    """A second pass over the rows whose hashes repeat: raise if they repeat a cell (not a hash collision)."""
    rows = pd.concat([f.data[np.isin(_row_hashes(f), suspects)] for f in chunks])
    labels = [c for c in rows.columns if c != chunks.count]
    dup = rows.duplicated(subset=labels, keep=False)
    if dup.any():
        file_rows = rows.index[dup.to_numpy()].to_numpy() + 2
        raise MisterpInputError(
            f"The frame repeats cells: {int(dup.sum())} rows share their values of {labels}, for example "
            f"{rows.loc[dup.to_numpy(), labels].iloc[0].to_dict()} (file rows "
            f"{describe_rows(file_rows)}). Sum their counts into one row per cell first."
        )


def poststratify_stream(fit: Fit, chunks: FrameChunks, by=None, interval: str = "auto", *,
                        n_draws: int | None = None, seed=None, weight: str | None = None,
                        chunk_size: int = 256, totals=()) -> list[Estimate]:
    """Poststratify ``fit``'s draws onto a frame read in chunks: one :class:`Estimate` per grouping.

    Parameters
    ----------
    fit : Fit
    chunks : FrameChunks
    by : list of groupings, optional
        Each a list of frame columns (``[]`` for overall), such as
        ``[["county"], ["county", "tract"]]``; by default the overall estimate.
    interval, weight, chunk_size
        As :func:`misterp.poststratify` takes them; ``chunk_size`` draws are
        reduced at a time, fewer when a chunk has many cells.
    n_draws, seed
        As :func:`misterp.cell_draws` takes them: the parameters are drawn
        once, for every chunk.
    totals : list of DataFrame, optional
        Known totals to calibrate every draw to, as
        :func:`misterp.results.calibrate.calibrate` takes them (one pass over
        the chunks more: see :class:`~misterp.results.calibrate.CalibratedPredictor`).

    Returns
    -------
    list of Estimate
        In the order of ``by``, each as ``poststratify(cell_draws(fit, frame), frame, by=...)``
        (of ``calibrate(cell_draws(...), frame, totals, fit.family)`` with ``totals``) would give it
        for the whole frame.
    """
    by = [[]] if by is None else [[b] if isinstance(b, str) else list(b) for b in by]
    predictor = Predictor(fit, n_draws=n_draws, seed=seed)
    wanted = interval if interval != "auto" else getattr(fit, "interval", None) or \
        ("draws" if predictor.n_draws else "delta")
    delta = wanted not in ("draws", "quantile")  # else skip the delta method's dense pieces
    columns = fit.design.formula.predictors
    if totals:
        calibrated = CalibratedPredictor(predictor, chunks, list(totals))
        columns, predict = calibrated.columns, calibrated.cells
    else:
        predict = lambda rows: predictor.cells(rows, with_delta=delta)  # noqa: E731
    sums = [GroupSums(b, interval, chunk_size, weight) for b in by]
    for frame in chunks:
        data = frame.data
        unit, first = _distinct_cells(data, columns)
        cells = predict(data.iloc[first])
        for s in sums:
            s.chunk_size = max(1, min(chunk_size, CELL_BUDGET // len(first)))
            s.add(data, frame.counts, cells, unit)
    return [s.estimate() for s in sums]


def _distinct_cells(data: pd.DataFrame, columns: list) -> tuple[np.ndarray, np.ndarray]:
    """Each row's unit (its values of ``columns``), (n_rows,), and each unit's first row, (n_units,):
    a frame finer than the model (tracts of a county model) is predicted once per model cell."""
    return row_codes(data, columns)
