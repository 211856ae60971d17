"""Frame: the poststratification table, one row per cell, with a population count.

A :class:`Frame` is a plain value: a table and the name of its count column,
checked when made. :func:`read_frame` builds one from a file and joins
group-level tables onto it.

Example
-------
>>> import pandas as pd
>>> Frame(pd.DataFrame({"g": ["a", "b"], "N": [10, 30]}), "N").counts.tolist()
[10.0, 30.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from .join import as_tables, join_table
from .tables import describe_rows, read_table, require_columns, require_rows


@dataclass(frozen=True)
class Frame:
    """Population cells and their counts.

    Parameters
    ----------
    data : DataFrame
        One row per cell (read files with :func:`read_frame`).
    count : str
        The population-count column. Counts must be finite and >= 0; zero is
        a valid count.
    """

    data: pd.DataFrame
    count: str = "N"

    def __post_init__(self):
        data = self.data
        require_rows(data, "Frame", "misterp.read_frame(path, count)",
                     "The frame has no rows. Give a table with one row per population cell.")
        require_columns(data, [self.count], "frame", "Name the frame's population-count column (--count).")
        n = pd.to_numeric(data[self.count], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(n) | (n < 0)
        if bad.any():
            values = sorted(set(data[self.count][bad].astype(str)))[:5]
            raise MisterpInputError(
                f"Frame count column {self.count!r} must hold finite numbers >= 0, but rows "
                f"{describe_rows(np.flatnonzero(bad) + 2)} of the file hold {values}. Fix those "
                "counts (a cell with no population has count 0)."
            )

    @property
    def counts(self) -> np.ndarray:
        """Population counts, shape (n_cells,)."""
        return self.data[self.count].to_numpy(dtype=float)


def read_frame(source, count: str = "N", *, join=()) -> Frame:
    """A :class:`Frame` from a CSV or Parquet path (or a DataFrame, copied).

    ``join`` takes group-level tables (DataFrames or paths) joined on by
    their shared key columns (see :mod:`misterp.data.join`).

    Examples
    --------
    >>> import pandas as pd
    >>> read_frame(pd.DataFrame({"state": ["AK"], "N": [5]}), "N",
    ...            join=pd.DataFrame({"state": ["AK"], "repvote": [0.6]})).data.columns.tolist()
    ['state', 'N', 'repvote']
    """
    data = read_table(source, "frame")
    for table in as_tables(join):
        data = join_table(data, table, "frame")
    return Frame(data, count)
