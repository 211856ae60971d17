"""Collapse respondents into cells, the unit every engine fits on.

When every predictor is categorical or cell-level, a Bernoulli model equals a
binomial model on the unique predictor combinations: same estimates, same
Laplace approximation, likelihoods that differ by a constant. 60,000
respondents become at most a few thousand cells.

Example
-------
>>> import pandas as pd
>>> from misterp import Survey
>>> c = collapse(Survey(pd.DataFrame({"y": [1, 0, 1], "g": ["a", "a", "b"]}), "y"), "y ~ (1|g)")
>>> c.stats["successes"].tolist(), c.stats["trials"].tolist()
([1.0, 1.0], [2.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..data import checks
from ..data.adjacency import Adjacency
from ..data.frame import Frame
from ..data.survey import Survey
from ..data.tables import require_columns
from ..errors import MisterpInputError
from .design import Design, Levels, offset_values
from .family import DEFAULT_FAMILY, Family, as_family
from .formula import Formula, parse_formula
from .terms import build_structures


@dataclass(frozen=True)
class Cells:
    """Model data on cells.

    Attributes
    ----------
    design : Design
    table : DataFrame
        Predictor values of each cell, shape (n_cells, n_predictors).
    stats : dict of (n_cells,) arrays
        The family's cell statistics.
    X : (n_cells, n_fixed) array
    groups : (n_terms, n_cells) int array
        Level index of each cell in each grouping term.
    offset : (n_cells,) array
    family : Family
    row_constant : float
        The likelihood's constant over the input rows that the cells do not
        carry (see :class:`misterp.model.family.RowOutcome`).
    """

    design: Design
    table: pd.DataFrame
    stats: dict
    X: np.ndarray
    groups: np.ndarray
    offset: np.ndarray
    family: Family = DEFAULT_FAMILY
    row_constant: float = 0.0

    @classmethod
    def build(cls, formula: Formula, table: pd.DataFrame, stats: dict, family: Family,
              row_constant: float = 0.0, structures: dict | None = None) -> "Cells":
        """Cells from their predictor table and statistics: the design is learned from ``table`` (and a
        structured term's levels from ``structures``)."""
        design = Design.learn(formula, table, structures)
        return cls(design, table, stats, design.fixed_matrix(table), design.group_index(table),
                   design.offset(table), family, row_constant)

    @property
    def n_cells(self) -> int:
        return len(self.table)

    @property
    def n_respondents(self) -> int:
        return int(self.family.count(self.stats).sum())

    def with_stats(self, stats: dict) -> "Cells":
        """The same cells with other statistics (for simulated refits)."""
        return replace(self, stats=stats)


def as_formula(formula) -> Formula:
    return formula if isinstance(formula, Formula) else parse_formula(formula)


def collapse(survey: Survey, formula, family: Family | str = DEFAULT_FAMILY, structures: dict | None = None) -> Cells:
    """Collapse ``survey`` into cells of the formula's predictors.

    The survey must already be complete in the formula's columns (see
    :meth:`Survey.complete`). ``structures`` gives the structured terms' levels
    (:func:`misterp.model.terms.build_structures`; by default the survey's own).

    Examples
    --------
    >>> import pandas as pd
    >>> collapse(Survey(pd.DataFrame({"y": [1, 0, 1], "g": ["a", "a", "b"]}), "y"), "y ~ (1|g)").n_respondents
    3
    """
    formula, family = as_formula(formula), as_family(family)
    if formula.response != survey.outcome:
        raise MisterpInputError(
            f"The formula's outcome {formula.response!r} is not the survey's outcome column "
            f"{survey.outcome!r}. Use the same column in both."
        )
    data = survey.data
    require_columns(data, formula.columns, "survey")
    family = family.bind(data[formula.response])  # a categorical family learns its categories here
    rows = family.rows(data, formula, trials=survey.trials, exposure=survey.exposure)
    offset_values(formula, data, "survey")  # named by the survey's rows, before they become cells
    predictors = formula.predictors
    if predictors:
        levels, codes = Levels.learn(data, predictors)
        table = levels.table().astype({c: data[c].dtype for c in predictors})
    else:
        codes, table = np.zeros(len(data), dtype=np.int64), pd.DataFrame(index=[0])
    stats = family.cell_stats(rows, codes, len(table))
    family.check_cell_stats(stats, formula.response)
    return Cells.build(formula, table, stats, family, rows.constant, structures)


def check_frame(cells: Cells, frame: Frame) -> None:
    """Every survey-against-frame check for these cells' model (see :mod:`misterp.data.checks`)."""
    design = cells.design
    checks.check_frame_cells(frame, design.formula.predictors)
    grouping = [c for g in design.group_terms for c in g.columns]
    checks.check_levels_covered(cells.table, frame, list(design.categorical) + grouping)
    checks.check_fixed_levels(cells.table, frame, list(design.categorical))
    checks.check_fixed_levels(cells.table, frame, list(design.slope_levels), slope=True)


def prepare(survey: Survey, frame: Frame | None, formula, drop_missing: bool = False,
            family: Family | str = DEFAULT_FAMILY, order: dict | None = None,
            adjacency: Adjacency | None = None, frame_levels: dict | None = None) -> tuple[Cells, list[str]]:
    """Validate survey and frame against the formula, then collapse.

    Returns the cells and a list of notes for the user (such as rows dropped).
    A structured term takes its levels from the survey and the frame, in
    ``order`` (column -> levels) where given, and a spatial one its neighbours
    from ``adjacency`` (:mod:`misterp.model.terms`); ``frame_levels`` (column ->
    values) stands for a frame that is streamed, not given.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> survey = Survey(pd.DataFrame({"y": [1, 0, np.nan], "g": ["a", "b", "b"]}), "y")
    >>> cells, notes = prepare(survey, None, "y ~ (1|g)", drop_missing=True)
    >>> cells.n_cells, notes
    (2, ['dropped 1 survey row(s) with missing values'])
    """
    formula = as_formula(formula)
    if formula.response != survey.outcome:
        survey = replace(survey, outcome=formula.response)
    require_columns(survey.data, formula.columns, "survey")
    survey, dropped = survey.complete(formula.columns, drop_missing)
    notes = [f"dropped {dropped} survey row(s) with missing values"] if dropped else []
    structures = None
    if any(g.structured for g in formula.groups) or order:
        structures, more = build_structures(formula, survey.data, frame_levels if frame is None else frame.data,
                                            order, adjacency)
        notes += more
    cells = collapse(survey, formula, family, structures)
    if frame is not None:
        check_frame(cells, frame)
    return cells, notes


COVERAGE_MAX_VALUES = 20  # as raking's margins: a numeric column with more values is a continuous covariate


def coverage_columns(cells: Cells) -> list[str]:
    """The predictors a frame cell is matched on to count it as having respondents: those that take
    levels (:attr:`misterp.model.design.Design.level_columns`) and numeric ones with at most 20 values
    among the respondents (a 0/1 ``male``). A continuous covariate (``ses``, ``repvote``) is left out:
    the model predicts any value of it, and a frame on a grid rarely repeats the survey's values."""
    leveled = set(cells.design.level_columns)
    return [c for c in cells.design.formula.predictors
            if c in leveled or cells.table[c].nunique() <= COVERAGE_MAX_VALUES]


def frame_coverage(cells: Cells, frame: Frame) -> dict:
    """Frame cells with and without respondents, matched on :func:`coverage_columns`."""
    return checks.coverage(cells.table, frame, coverage_columns(cells))


def cell_proportions(cells: Cells, frame: Frame) -> np.ndarray:
    """Each frame cell's raw survey mean (proportion), shape (n_cells,).

    Every frame cell must have respondents: simple poststratification cannot
    fill an empty cell (a model can).
    """
    where = checks.match_cells(cells.table, frame, cells.design.formula.predictors)
    return cells.family.observed_mean(cells.stats)[where]
