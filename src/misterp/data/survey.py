"""Survey: the respondent table, its outcome column and optional design weights.

A :class:`Survey` is a plain value, checked when made; :func:`read_survey`
builds one from a file, with answers recoded onto census categories and
group-level tables joined on. Design weights describe how respondents were
sampled; they are never used as likelihood weights.

Example
-------
>>> import pandas as pd
>>> Survey(pd.DataFrame({"y": [1, 0, 1], "g": ["a", "b", "a"]}), "y").data.shape
(3, 2)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from .harmonise import recode as recode_columns
from .join import as_tables, join_table
from .tables import describe_rows, missing_rows, read_table, require_columns, require_rows


@dataclass(frozen=True)
class Survey:
    """Respondents, one row each.

    Parameters
    ----------
    data : DataFrame
        The respondent table (read files with :func:`read_survey`).
    outcome : str
        The outcome column (0/1 answers), or the successes column when
        ``trials`` is given.
    weights : str, optional
        A column of design weights (kept for weighted summaries, not for fitting).
    trials : str, optional
        For a survey given as cells: the column of respondents per row
        (lme4's ``cbind(successes, trials - successes)``).
    exposure : str, optional
        For a count outcome: the time each row was observed (its person-time).
    """

    data: pd.DataFrame
    outcome: str
    weights: str | None = None
    trials: str | None = None
    exposure: str | None = None

    def __post_init__(self):
        data = self.data
        require_rows(data, "Survey", "misterp.read_survey(path, outcome)",
                     "The survey has no rows. Give a survey table with at least one respondent.")
        require_columns(data, [self.outcome], "survey", "Name the survey's outcome column.")
        if self.weights is not None:
            require_columns(data, [self.weights], "survey", "Name the survey's weight column.")
            w = pd.to_numeric(data[self.weights], errors="coerce")
            bad = ~(np.isfinite(w) & (w > 0))
            if bad.any():
                raise MisterpInputError(
                    f"Survey weight column {self.weights!r} must be positive and finite; rows "
                    f"{describe_rows(np.flatnonzero(bad) + 1)} are not. Fix or remove those weights."
                )

    def complete(self, columns, drop_missing: bool = False) -> tuple["Survey", int]:
        """Check ``columns`` for missing values.

        Returns the survey (without those rows when ``drop_missing``) and the
        number of rows dropped. Without ``drop_missing`` a missing value is an
        error naming the rows (1-based, as in the file after its header).
        """
        cols = [c for c in columns if c in self.data.columns]
        cols += [c for c in (self.weights, self.trials, self.exposure) if c and c not in cols]
        rows = missing_rows(self.data, cols)
        if len(rows) == 0:
            return self, 0
        if not drop_missing:
            positions = self.data.index.get_indexer(rows) + 1
            which = [c for c in cols if self.data.loc[rows, c].isna().any()]
            raise MisterpInputError(
                f"The survey has missing values in column(s) {which}, in {len(rows)} row(s): "
                f"rows {describe_rows(positions)}. Fill them in, or drop those rows with "
                "--drop-missing (drop_missing=True in Python)."
            )
        kept = self.data.drop(index=rows)
        if len(kept) == 0:
            raise MisterpInputError(
                "Every survey row has a missing value in the model's columns, so none is left "
                "after --drop-missing. Check the formula's columns."
            )
        return replace(self, data=kept.reset_index(drop=True)), len(rows)


def read_survey(source, outcome: str, *, weights: str | None = None, trials: str | None = None,
                exposure: str | None = None, join=(), recode=None) -> Survey:
    """A :class:`Survey` from a CSV or Parquet path (or a DataFrame, copied).

    Parameters
    ----------
    source : path or DataFrame
    outcome, weights, trials, exposure : str
        As in :class:`Survey`.
    join : table or list of tables, optional
        Group-level predictors joined on by their shared key columns
        (DataFrames or CSV/Parquet paths; see :mod:`misterp.data.join`).
    recode : dict or path, optional
        Survey answers mapped onto census categories, applied before the
        joins (see :mod:`misterp.data.harmonise`).

    Examples
    --------
    >>> import pandas as pd
    >>> read_survey(pd.DataFrame({"y": [1, 0], "age": ["18-24", "75+"]}), "y",
    ...             recode={"age": {"18-24": "18-29", "75+": "65+"}}).data["age"].tolist()
    ['18-29', '65+']
    """
    data = read_table(source, "survey")
    if recode is not None:
        data = recode_columns(data, recode)
    for table in as_tables(join):
        data = join_table(data, table, "survey")
    return Survey(data, outcome, weights, trials, exposure)
