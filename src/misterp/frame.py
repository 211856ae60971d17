"""Frame: the poststratification table, one row per cell, with a population count."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import MisterpInputError
from .join import as_tables, join_table
from .tables import describe_rows, missing_rows, read_table, require_columns


@dataclass(frozen=True)
class Frame:
    """Population cells and their counts.

    Parameters
    ----------
    data : DataFrame or path
        One row per cell (CSV or Parquet path, or a DataFrame).
    count : str
        The population-count column. Counts must be finite and >= 0; zero is
        a valid count.
    join : table or list of tables, optional
        Group-level predictors joined on by their shared key columns.
    """

    data: pd.DataFrame
    count: str = "N"
    join: object = ()

    def __post_init__(self):
        data = read_table(self.data, "frame")
        for table in as_tables(self.join):
            data = join_table(data, table, "frame")
        object.__setattr__(self, "data", data)
        if len(data) == 0:
            raise MisterpInputError("The frame has no rows. Give a table with one row per population cell.")
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

    def check_cells(self, columns) -> None:
        """Raise if ``columns`` are missing, hold missing values, or repeat a cell."""
        columns = list(columns)
        require_columns(self.data, columns, "frame",
                        "The frame needs every predictor of the formula; add the column or change the formula.")
        rows = missing_rows(self.data, columns)
        if len(rows):
            raise MisterpInputError(
                f"The frame has missing values in its cell columns {columns}, in file rows "
                f"{describe_rows(self.data.index.get_indexer(rows) + 2)}. Every cell must be fully "
                "labelled; fill them in or remove those rows."
            )
        # a cell is labelled by every column but the count; the model may use fewer
        labels = [c for c in self.data.columns if c != self.count]
        dup = self.data.duplicated(subset=labels, keep=False)
        if dup.any():
            example = self.data.loc[dup, labels].iloc[0].to_dict()
            raise MisterpInputError(
                f"The frame repeats cells: {int(dup.sum())} rows share their values of {labels}, "
                f"for example {example} (file rows {describe_rows(np.flatnonzero(dup) + 2)}). "
                "Sum their counts into one row per cell first."
            )
