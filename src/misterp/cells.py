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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .design import Design, Levels
from .errors import MisterpInputError
from .family import BINOMIAL, Binomial, log_choose
from .formula import Formula, parse_formula
from .frame import Frame
from .survey import Survey
from .tables import require_columns


@dataclass(frozen=True)
class Cells:
    """Model data on cells.

    Attributes
    ----------
    design : Design
    table : DataFrame
        Predictor values of each cell, shape (n_cells, n_predictors).
    stats : dict of (n_cells,) arrays
        The family's cell statistics (binomial: successes, trials).
    X : (n_cells, n_fixed) array
    groups : (n_terms, n_cells) int array
        Level index of each cell in each grouping term.
    offset : (n_cells,) array
    family : Binomial
    row_log_choose : float
        Sum of log C(n_i, s_i) over the input rows (0 for 0/1 respondents);
        lme4's logLik on rows given as cells includes it.
    """

    design: Design
    table: pd.DataFrame
    stats: dict
    X: np.ndarray
    groups: np.ndarray
    offset: np.ndarray
    family: Binomial = BINOMIAL
    row_log_choose: float = 0.0

    @property
    def n_cells(self) -> int:
        return len(self.table)

    def with_stats(self, stats: dict) -> "Cells":
        """The same cells with other statistics (for simulated refits)."""
        return Cells(self.design, self.table, stats, self.X, self.groups, self.offset, self.family,
                     self.row_log_choose)


def as_formula(formula) -> Formula:
    return formula if isinstance(formula, Formula) else parse_formula(formula)


def collapse(survey: Survey, formula, family: Binomial = BINOMIAL) -> Cells:
    """Collapse ``survey`` into cells of the formula's predictors.

    The survey must already be complete in the formula's columns (see
    :meth:`Survey.complete`).
    """
    formula = as_formula(formula)
    if formula.response != survey.outcome:
        raise MisterpInputError(
            f"The formula's outcome {formula.response!r} is not the survey's outcome column "
            f"{survey.outcome!r}. Use the same column in both."
        )
    data = survey.data
    require_columns(data, formula.columns, "survey")
    y, trials, row_log_choose = outcome_counts(data, formula, survey, family)
    predictors = formula.predictors
    if predictors:
        levels, codes = Levels.learn(data, predictors)
        table = levels.table().astype({c: data[c].dtype for c in predictors})
    else:
        codes, table = np.zeros(len(data), dtype=np.int64), pd.DataFrame(index=[0])
    stats = family.cell_stats(y, codes, len(table), trials)
    successes, total = stats["successes"].sum(), stats["trials"].sum()
    if successes == 0 or successes == total:
        raise MisterpInputError(
            f"The outcome {formula.response!r} is {'0' if successes == 0 else '1'} for every one of the "
            f"{int(total)} respondents, so there is nothing to model (the estimate would be "
            f"{'0' if successes == 0 else '1'} everywhere). Check the outcome coding, or the rows selected."
        )
    design = Design.learn(formula, table)
    return Cells(design, table, stats, design.fixed_matrix(table), design.group_index(table),
                 design.offset(table), family, row_log_choose)


def outcome_counts(data: pd.DataFrame, formula: Formula, survey: Survey, family: Binomial = BINOMIAL):
    """Successes (n,), trials (n,) or None for 0/1 rows, and sum of log C(n_i, s_i) over rows."""
    y = data[formula.response]
    if formula.failures:
        trials, names = y.to_numpy(float) + pd.to_numeric(data[formula.failures], errors="coerce").to_numpy(float), \
            (formula.response, f"{formula.response} + {formula.failures}")
    elif formula.trials or survey.trials:
        column = formula.trials or survey.trials
        require_columns(data, [column], "survey", "Name the survey's trials column (--trials).")
        trials, names = pd.to_numeric(data[column], errors="coerce").to_numpy(float), (formula.response, column)
    else:
        family.check_outcome(y.to_numpy(), formula.response)
        return y.to_numpy(float), None, 0.0
    family.check_counts(y.to_numpy(), trials, names)
    successes = y.to_numpy(float)
    return successes, trials, float(log_choose(trials, successes).sum())


def check_frame_covers(cells: Cells, frame: Frame) -> None:
    """Raise if a survey level of a categorical or grouping column is absent from the frame."""
    design = cells.design
    cols = list(design.categorical) + [c for g in design.group_terms for c in g.columns]
    for col in dict.fromkeys(cols):
        survey_levels = pd.Index(cells.table[col].unique())
        absent = survey_levels.difference(pd.Index(frame.data[col].unique()))
        if len(absent):
            raise MisterpInputError(
                f"Survey column {col!r} has level(s) {[str(v) for v in absent][:10]} that the frame "
                f"never has (the frame's levels are {[str(v) for v in sorted(frame.data[col].unique(), key=str)][:20]}). "
                "Recode the survey to the frame's categories, or add those cells to the frame."
            )


def prepare(survey: Survey, frame: Frame | None, formula, drop_missing: bool = False,
            family: Binomial = BINOMIAL) -> tuple[Cells, list[str]]:
    """Validate survey and frame against the formula, then collapse.

    Returns the cells and a list of notes for the user (such as rows dropped).
    """
    formula = as_formula(formula)
    if formula.response != survey.outcome:
        survey = Survey(survey.data, formula.response, survey.weights, trials=survey.trials)
    require_columns(survey.data, formula.columns, "survey")
    survey, dropped = survey.complete(formula.columns, drop_missing)
    notes = [f"dropped {dropped} survey row(s) with missing values"] if dropped else []
    cells = collapse(survey, formula, family)
    if frame is not None:
        frame.check_cells(formula.predictors)
        check_frame_covers(cells, frame)
    return cells, notes
