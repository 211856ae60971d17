"""Reading tables: pandas DataFrames, CSV or Parquet paths, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import MisterpInputError


def read_table(source, what: str) -> pd.DataFrame:
    """Return ``source`` as a DataFrame; ``source`` is a DataFrame or a CSV/Parquet path.

    ``what`` names the table in error messages ("survey", "frame").
    """
    if isinstance(source, pd.DataFrame):
        return source.copy()
    path = Path(source)
    if not path.is_file():
        raise MisterpInputError(
            f"The {what} file {str(path)!r} does not exist or is not a file. "
            "Check the path (it is read relative to the current directory)."
        )
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as e:  # every reader failure is the user's file, not our bug
        raise MisterpInputError(
            f"The {what} file {str(path)!r} cannot be read as "
            f"{'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'}: {e}. "
            "Give a CSV file with a header row, or a Parquet file (.parquet)."
        ) from None


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
