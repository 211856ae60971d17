"""Frame: the poststratification table, one row per cell, with a population count.

A :class:`Frame` is a plain value: a table and the name of its count column,
checked when made. :func:`read_frame` builds one from a file and joins
group-level tables onto it; :class:`FrameChunks` reads a census-sized frame
as a sequence of Frames of at most ``rows`` rows (a Parquet file batch by
batch, a CSV file chunk by chunk, never whole).

Example
-------
>>> import pandas as pd
>>> Frame(pd.DataFrame({"g": ["a", "b"], "N": [10, 30]}), "N").counts.tolist()
[10.0, 30.0]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from .join import as_tables, join_table
from .tables import (describe_rows, file_rows, read_csv_chunks, read_table, require_columns, require_rows,
                     strip_labels)


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
                f"{describe_rows(file_rows(data, np.flatnonzero(bad)))} of the file hold {values}. Fix those "
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


def is_parquet(source) -> bool:
    """Whether ``source`` is a path to a Parquet file (by its suffix)."""
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".parquet", ".pq")


@dataclass(frozen=True)
class FrameChunks:
    """A frame as consecutive chunks of rows, each a checked :class:`Frame`.

    A Parquet path is read ``rows`` rows at a time (pyarrow's
    ``iter_batches``) and a CSV path ``rows`` rows at a time by the parser
    that reads it whole (pandas' ``read_csv``, with the same options and the
    same errors: see :func:`misterp.data.tables.read_csv_chunks`), so memory
    is bounded by the chunk; a DataFrame is cut into chunks. ``join`` tables
    are joined onto each chunk. Each chunk keeps the file's row numbers as
    its index (0-based, in file order), so errors name the file's rows.

    Examples
    --------
    >>> import pandas as pd
    >>> chunks = FrameChunks(pd.DataFrame({"g": list("abc"), "N": [1, 2, 3]}), "N", rows=2)
    >>> [len(f.data) for f in chunks], chunks.n_rows
    ([2, 1], 3)
    """

    source: object
    count: str = "N"
    join: tuple = ()
    rows: int = 200_000

    def __iter__(self) -> Iterator[Frame]:
        tables = [read_table(t, "join table") for t in as_tables(self.join)]
        start = 0
        for data in self._pieces():
            if not len(data):
                continue
            for table in tables:
                data = join_table(data, table, "frame")
            data.index = pd.RangeIndex(start, start + len(data))  # after the join, which renumbers
            start += len(data)
            yield Frame(data, self.count)
        if not start:
            Frame(pd.DataFrame(), self.count)  # its error for a frame without rows

    def distinct(self, columns) -> dict:
        """Each of ``columns``' distinct values over every chunk (one pass), column -> array; a column the
        frame lacks is left out."""
        seen: dict = {}
        for frame in self:
            for col in columns:
                if col in frame.data.columns:
                    seen.setdefault(col, []).append(pd.unique(frame.data[col]))
        return {col: pd.unique(np.concatenate(parts)) for col, parts in seen.items()}

    def _pieces(self) -> Iterator[pd.DataFrame]:
        """The source's rows, ``rows`` at a time, labels stripped, before any join."""
        if is_parquet(self.source):
            for batch in self._parquet().iter_batches(batch_size=self.rows):
                yield strip_labels(batch.to_pandas(), "frame")
        elif isinstance(self.source, (str, os.PathLike)):
            yield from read_csv_chunks(self.source, "frame", self.rows)
        else:
            data = read_table(self.source, "frame")
            for start in range(0, len(data), self.rows):
                yield data.iloc[start:start + self.rows]

    @property
    def n_rows(self) -> int:
        """The frame's rows (a Parquet file's from its metadata, without reading the rows)."""
        if is_parquet(self.source):
            return self._parquet().metadata.num_rows
        return sum(len(piece) for piece in self._pieces())

    def _parquet(self):
        import pyarrow.parquet as pq

        if not Path(self.source).is_file():
            read_table(self.source, "frame")  # its message for a missing file
        try:
            return pq.ParquetFile(self.source)
        except Exception as e:  # every reader failure is the user's file
            raise MisterpInputError(f"The frame file {str(self.source)!r} cannot be read as Parquet: "
                                    f"{' '.join(str(e).split())}.") from None
