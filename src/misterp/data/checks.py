"""Survey against frame: every check that the two tables fit together, in one place.

Each function takes the survey's cells (one row per distinct combination of
the model's columns, as the survey has them), the frame, and the columns to
compare; the model stage decides which columns those are. A mismatch is a
:class:`MisterpInputError` that names the column, the values and the fix.

- :func:`check_frame_cells`: the frame has the columns, no missing labels and
  no repeated cells.
- :func:`check_levels_covered`: every survey level of a categorical or
  grouping column is in the frame (a survey level the frame lacks would be
  fitted but never poststratified).
- :func:`check_fixed_levels`: every frame level of a fixed categorical column
  is in the survey (a fixed effect cannot predict an unseen level).
- :func:`match_cells`: which survey cell each frame cell is, for simple
  poststratification, which needs respondents in every frame cell.
- :func:`coverage`: how many frame cells have respondents.

Example
-------
>>> import pandas as pd
>>> from misterp.data.frame import Frame
>>> frame = Frame(pd.DataFrame({"g": ["a", "b", "c"], "N": [1, 2, 3]}), "N")
>>> coverage(pd.DataFrame({"g": ["a", "b"]}), frame, ["g"])["without_respondents"]
1
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from .frame import Frame
from .tables import describe_rows, file_rows, missing_rows, require_columns


def check_frame_cells(frame: Frame, columns) -> None:
    """Raise if the frame lacks ``columns``, leaves one empty, or repeats a cell."""
    columns = list(columns)
    data = frame.data
    require_columns(data, columns, "frame",
                    "The frame needs every predictor of the formula; add the column or change the formula.")
    rows = missing_rows(data, columns)
    if len(rows):
        raise MisterpInputError(
            f"The frame has missing values in its cell columns {columns}, in file rows "
            f"{describe_rows(file_rows(data, data.index.get_indexer(rows)))}. Every cell must be fully "
            "labelled; fill them in or remove those rows."
        )
    # a cell is labelled by every column but the count; the model may use fewer
    labels = [c for c in data.columns if c != frame.count]
    dup = data.duplicated(subset=labels, keep=False)
    if dup.any():
        example = data.loc[dup, labels].iloc[0].to_dict()
        raise MisterpInputError(
            f"The frame repeats cells: {int(dup.sum())} rows share their values of {labels}, "
            f"for example {example} (file rows {describe_rows(file_rows(data, np.flatnonzero(dup)))}). "
            "Sum their counts into one row per cell first."
        )


def check_levels_covered(survey_cells: pd.DataFrame, frame: Frame, columns) -> None:
    """Raise if a survey level of one of ``columns`` never occurs in the frame."""
    for col in dict.fromkeys(columns):
        absent = pd.Index(survey_cells[col].unique()).difference(pd.Index(frame.data[col].unique()))
        if len(absent):
            frame_levels = [str(v) for v in sorted(frame.data[col].unique(), key=str)][:20]
            raise MisterpInputError(
                f"Survey column {col!r} has level(s) {[str(v) for v in absent][:10]} that the frame "
                f"never has (the frame's levels are {frame_levels}). "
                + (padding_hint(absent, frame.data[col].unique()) or
                   "Recode the survey to the frame's categories, or add those cells to the frame.")
            )


def padding_hint(levels, others) -> str:
    """The fix when ``levels`` differ from ``others`` only by spaces around them (tables made in
    Python: the file readers strip them), else ''."""
    stripped = {v.strip(): v for v in map(str, others)}
    pairs = [(str(v), stripped[str(v).strip()]) for v in levels if str(v).strip() in stripped]
    if not pairs:
        return ""
    shown = ", ".join(f"{a!r} vs {b!r}" for a, b in pairs[:5])
    return (f"They differ from the other table's levels only by spaces around them ({shown}): strip the "
            "spaces (read_survey and read_frame strip them when they read a table).")


def unseen_fixed_level(col: str, unseen, survey_levels, slope: bool = False) -> MisterpInputError:
    """The error for levels of a categorical column of fixed effects (or of a factor slope) that the
    survey never has."""
    what = "A factor slope" if slope else "A fixed effect"
    fix = "Drop those cells or merge the levels." if slope else \
        f"Drop those cells, merge the levels, or model {col!r} as a random effect '(1|{col})'."
    return MisterpInputError(
        f"Column {col!r} has level(s) {[str(v) for v in unseen][:10]} that the survey never has. "
        f"{what} cannot predict an unseen level; the survey's levels are "
        f"{[str(v) for v in survey_levels][:20]}. {padding_hint(unseen, survey_levels) or fix}"
    )


def check_fixed_levels(survey_cells: pd.DataFrame, frame: Frame, columns, slope: bool = False) -> None:
    """Raise if the frame has a level of one of ``columns`` (fixed categorical, or factor slopes) that
    the survey lacks."""
    for col in dict.fromkeys(columns):
        survey_levels = pd.Index(survey_cells[col].unique())
        unseen = pd.Index(frame.data[col].unique()).difference(survey_levels)
        if len(unseen):
            raise unseen_fixed_level(col, sorted(unseen.astype(str)), sorted(survey_levels, key=str), slope)


def match_cells(survey_cells: pd.DataFrame, frame: Frame, columns) -> np.ndarray:
    """Row of ``survey_cells`` that each frame cell is, (n_frame_cells,).

    Raises when a frame cell has no respondents: simple poststratification
    cannot fill an empty cell (a model can).
    """
    columns = list(columns)
    where = _positions(survey_cells, frame, columns)
    if (where < 0).any():
        empty = frame.data.loc[where < 0, columns].drop_duplicates().head(5).to_dict("records")
        raise MisterpInputError(
            f"Simple poststratification needs respondents in every frame cell, but cells such as "
            f"{empty} have none. Use a model (the glm or laplace engine) to predict empty cells."
        )
    return where


def coverage(survey_cells: pd.DataFrame, frame: Frame, columns) -> dict:
    """How the survey covers the frame: frame cells (model cells) with and without respondents."""
    columns = list(columns)
    if not columns:
        return {"frame_cells": len(frame.data), "with_respondents": len(frame.data), "without_respondents": 0,
                "population_without_respondents": 0.0}
    has = _positions(survey_cells[columns].drop_duplicates(), frame, columns) >= 0  # cells share these columns
    return {"frame_cells": len(frame.data), "with_respondents": int(has.sum()),
            "without_respondents": int((~has).sum()),
            "population_without_respondents": float(frame.counts[~has].sum())}


def _positions(survey_cells: pd.DataFrame, frame: Frame, columns: list) -> np.ndarray:
    seen = pd.MultiIndex.from_frame(survey_cells[columns])
    return seen.get_indexer(pd.MultiIndex.from_frame(frame.data[columns]))
