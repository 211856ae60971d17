"""Reading tables: pandas DataFrames, CSV or Parquet paths, with clear errors."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..errors import MisterpInputError


def read_table(source, what: str) -> pd.DataFrame:
    """Return ``source`` as a DataFrame; ``source`` is a DataFrame or a CSV/Parquet path.

    ``what`` names the table in error messages ("survey", "frame"). A CSV
    file is UTF-8 (a byte-order mark is allowed) and comma-separated, every
    row with as many fields as the header; another separator, a row too
    long or too short, or another encoding is a :class:`MisterpInputError`
    naming the line. Spaces around column names and text labels are dropped,
    from files and DataFrames alike, so " a " and "a" are one level.
    """
    if isinstance(source, pd.DataFrame):
        return strip_labels(source.copy(), what)
    path = _existing(source, what)
    parquet = path.suffix.lower() in (".parquet", ".pq")
    if not parquet:
        _check_separator(path, what)
    try:
        if parquet:
            data = pd.read_parquet(path)
        else:
            with warnings.catch_warnings():
                # a header shorter than every row: pandas would silently take the first column as the index
                warnings.simplefilter("error", pd.errors.ParserWarning)
                data = pd.read_csv(path, **CSV_OPTIONS)
    except Exception as e:  # every reader failure is the user's file, not our bug
        raise read_error(path, what, e) from None
    if not parquet and data.isna().to_numpy().any():
        _check_short_rows(path, what)  # pandas fills a short row with missing values; only then look
    return strip_labels(data, what)


CSV_OPTIONS = {"skipinitialspace": True, "index_col": False}


def read_csv_chunks(source, what: str, rows: int) -> Iterator[pd.DataFrame]:
    r"""A CSV file as DataFrames of at most ``rows`` rows, read and checked as :func:`read_table` reads
    it whole (the same parser and options, the same errors), never holding more than one chunk.

    Each chunk keeps the file's row numbers as its index (0-based, in file order), and its labels
    are stripped. The short-row check that a missing value calls for reads the file once more, at
    most once.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "f.csv"
    >>> _ = path.write_text("g,N\na,1\n b ,2\nc,3\n")
    >>> [(c.index.tolist(), c["g"].tolist()) for c in read_csv_chunks(path, "frame", rows=2)]
    [([0, 1], ['a', 'b']), ([2], ['c'])]
    """
    path = _existing(source, what)
    _check_separator(path, what)
    checked = False
    reader = _csv_step(path, what, lambda: pd.read_csv(path, chunksize=rows, **CSV_OPTIONS))
    with reader:
        while (chunk := _csv_step(path, what, lambda: next(reader, None))) is not None:
            if not checked and chunk.isna().to_numpy().any():
                _check_short_rows(path, what)
                checked = True
            yield strip_labels(chunk, what)


def _csv_step(path: Path, what: str, step):
    """``step()`` (a call into pandas' CSV reader) with read_table's warnings and errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return step()
    except Exception as e:  # every reader failure is the user's file, not our bug
        raise read_error(path, what, e) from None


def _existing(source, what: str) -> Path:
    path = Path(source)
    if not path.is_file():
        raise MisterpInputError(
            f"The {what} file {str(path)!r} does not exist or is not a file. "
            "Check the path (it is read relative to the current directory)."
        )
    return path


def read_error(path: Path, what: str, error: Exception) -> MisterpInputError:
    """The clear error for a reader's failure on the file ``path`` (CSV or Parquet, by its suffix)."""
    parquet = Path(path).suffix.lower() in (".parquet", ".pq")
    if isinstance(error, UnicodeDecodeError):
        return MisterpInputError(
            f"The {what} file {str(path)!r} is not UTF-8 text (byte {error.start} is not valid UTF-8). "
            "Save it as UTF-8 CSV (in Excel: 'CSV UTF-8')."
        )
    if not parquet and isinstance(error, (pd.errors.ParserError, pd.errors.ParserWarning)):
        return _ragged(Path(path), what)
    return MisterpInputError(
        f"The {what} file {str(path)!r} cannot be read as "
        f"{'Parquet' if parquet else 'CSV'}: {' '.join(str(error).split())}. "
        "Give a CSV file with a header row, or a Parquet file (.parquet)."
    )


SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _header(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        return f.readline().rstrip("\r\n")


def _check_separator(path: Path, what: str) -> None:
    """Raise if the header has no comma but another common separator: the file is not comma-separated."""
    header = _header(path)
    if "," in header:
        return
    for sep, name in SEPARATORS.items():
        if sep in header:
            raise MisterpInputError(
                f"The {what} file {str(path)!r} looks {name}-separated (its header is {header[:80]!r}), but "
                "misterp reads comma-separated CSV. Save it with commas between the fields (in Excel: "
                "'CSV UTF-8 (Comma delimited)'), or convert it, e.g. pandas.read_csv(path, sep="
                f"{sep!r}).to_csv(new_path, index=False)."
            )


def _field_counts(path: Path):
    """(line number, fields) of each non-blank record after the header, and the header's fields."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, skipinitialspace=True)
        header = next(reader, [])
        rows = ((reader.line_num, len(row)) for row in reader if row and any(field != "" for field in row))
        yield len(header)
        yield from rows


def _ragged_lines(path: Path, short: bool) -> tuple[int, list[tuple[int, int]]]:
    counts = _field_counts(path)
    width = next(counts)
    bad = [(line, n) for line, n in counts if (n < width if short else n != width)]
    return width, bad


def _ragged_error(path: Path, what: str, width: int, bad: list[tuple[int, int]]) -> MisterpInputError:
    shown = ", ".join(f"line {line} has {n}" for line, n in bad[:5])
    more = f" (and {len(bad) - 5} more lines)" if len(bad) > 5 else ""
    return MisterpInputError(
        f"The {what} file {str(path)!r} has rows whose number of fields differs from its header's {width}: "
        f"{shown}{more}. A value with a comma in it must be quoted (\"a, b\"); fix or remove those rows."
    )


def _ragged(path: Path, what: str) -> MisterpInputError:
    """The error for a file pandas could not split into the header's columns."""
    width, bad = _ragged_lines(path, short=False)
    if not bad:  # a fault the field counts do not show (an unclosed quote, say)
        return MisterpInputError(
            f"The {what} file {str(path)!r} cannot be split into the columns of its header (an unclosed "
            "quote?). Check that quotes pair up and every row has the header's fields."
        )
    return _ragged_error(path, what, width, bad)


def _check_short_rows(path: Path, what: str) -> None:
    width, bad = _ragged_lines(path, short=True)
    if bad:
        raise _ragged_error(path, what, width, bad)


def strip_labels(data: pd.DataFrame, what: str) -> pd.DataFrame:
    """``data`` without spaces around its column names and text values (in place, and returned).

    A column that is numbers once stripped becomes numeric, as pandas would
    have read it; column names that become equal are an error naming them.
    """
    names = [c.strip() if isinstance(c, str) else c for c in data.columns]
    if len(set(names)) < len(names):
        repeated = sorted({str(n) for n in names if names.count(n) > 1})
        raise MisterpInputError(
            f"The {what} has column names that differ only by spaces around them: {repeated} "
            f"(its columns are {[str(c) for c in data.columns]}). Rename them."
        )
    data.columns = names
    for column in data.columns:
        values = data[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        codes, uniques = pd.factorize(values)  # strip each distinct label once, not each row
        stripped = [u.strip() if isinstance(u, str) else u for u in uniques]
        if all(a == b for a, b in zip(stripped, uniques)):
            continue
        text = pd.Series(pd.array(stripped, dtype=object)[codes], index=data.index, dtype=object)
        text[codes < 0] = None
        try:
            data[column] = pd.to_numeric(text)
        except (ValueError, TypeError):
            data[column] = text.astype(values.dtype)
    return data


def require_rows(data, what: str, reader: str, empty: str) -> None:
    """Raise unless ``data`` is a DataFrame with rows; ``what`` is the class, ``reader`` the
    call that reads files, ``empty`` the message for a table without rows."""
    if not isinstance(data, pd.DataFrame):
        raise MisterpInputError(
            f"{what} takes a DataFrame, not {type(data).__name__}; read a CSV or Parquet file with {reader}.")
    if len(data) == 0:
        raise MisterpInputError(empty)


def require_columns(df: pd.DataFrame, columns, what: str, hint: str = "") -> None:
    """Raise unless every name in ``columns`` is a column of ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MisterpInputError(
            f"The {what} has no column(s) {missing}; its columns are {list(df.columns)}. "
            + (hint or "Fix the column names in the formula or rename the columns.")
        )


def missing_rows(df: pd.DataFrame, columns) -> pd.Index:
    """Index labels of rows with a missing value in any of ``columns``."""
    return df.index[df[list(columns)].isna().any(axis=1)]


def file_rows(data: pd.DataFrame, positions) -> np.ndarray:
    """Line numbers in the file (the header is line 1) of the rows at ``positions`` of ``data``: from
    its row numbers when it keeps the file's (a RangeIndex, as the readers and a frame's chunks give
    it), else from the positions."""
    positions = np.asarray(positions, dtype=np.int64)
    index = data.index
    if isinstance(index, pd.RangeIndex) and index.step == 1:
        return positions + index.start + 2
    return positions + 2


def describe_rows(rows, limit: int = 8) -> str:
    """'rows 3, 7, 9 and 12 more' (1-based positions) for messages."""
    shown = ", ".join(str(r) for r in list(rows)[:limit])
    more = len(rows) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def read_yaml(source, what: str):
    """The parsed content of a YAML file, with clear errors; ``what`` names it in messages."""
    import yaml

    path = Path(source)
    if not path.is_file():
        raise MisterpInputError(f"The {what} file {str(path)!r} does not exist. Check the path.")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise MisterpInputError(f"The {what} file {str(path)!r} is not valid YAML: {e}") from None
