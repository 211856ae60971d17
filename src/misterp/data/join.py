"""Group-level predictors: a table keyed by grouping columns, joined onto survey and frame.

MRP models often add predictors measured on groups, such as a state's
previous vote share or its region. The key is every column the table shares
with the data (``state``); its other columns are added. ``Survey`` and
``Frame`` take such tables as ``join=``, and the CLI as ``--join FILE``. A survey row or frame cell without a match is an error that names
the keys, and nothing is dropped.

Example
-------
>>> import pandas as pd
>>> states = pd.DataFrame({"state": ["AL", "AK"], "repvote": [0.64, 0.58]})
>>> join_table(pd.DataFrame({"state": ["AK", "AL", "AK"]}), states, "survey")["repvote"].tolist()
[0.58, 0.64, 0.58]
"""

from __future__ import annotations

import pandas as pd

from ..errors import MisterpInputError
from .tables import read_table


def as_tables(join) -> list:
    """``join=`` as a list: one table (DataFrame or path) or several."""
    if join is None:
        return []
    if isinstance(join, (str, pd.DataFrame)) or hasattr(join, "__fspath__"):
        return [join]
    return list(join)


def join_onto(data: pd.DataFrame, table: pd.DataFrame, key: list[str], what: str) -> pd.DataFrame:
    """``data`` with ``table``'s other columns added by ``key``; same rows, same order."""
    merged = data.merge(table, on=key, how="left", validate="many_to_one", indicator="_joined")
    unmatched = merged["_joined"] == "left_only"
    if unmatched.any():
        keys = merged.loc[unmatched, key].drop_duplicates().astype(str).agg(":".join, axis=1).tolist()
        raise MisterpInputError(
            f"{int(unmatched.sum())} {what} row(s) have no match in the join table on {key}: "
            f"{keys[:10]}{' ...' if len(keys) > 10 else ''}. Add those keys to the join table or "
            f"fix their spelling in the {what}."
        )
    return merged.drop(columns="_joined")


def join_table(data: pd.DataFrame, source, what: str) -> pd.DataFrame:
    """``data`` with one group-level table (DataFrame or path) joined on.

    The key is every column of the table that ``data`` has; the table's other
    columns are added. ``what`` names ``data`` in messages ("survey", "frame").
    """
    table = read_table(source, "join table")
    key = [c for c in table.columns if c in data.columns]
    if not key:
        raise MisterpInputError(
            f"The join table's columns {list(table.columns)} share no column with the {what} "
            f"({list(data.columns)}), so there is no key to join on. Name the key column as in the "
            f"{what} (e.g. 'state')."
        )
    if len(key) == len(table.columns):
        raise MisterpInputError(
            f"Every column of the join table ({key}) is already in the {what}, so it adds no predictor. "
            "Rename the predictor columns that clash, or drop the join."
        )
    dup = table.duplicated(subset=key, keep=False)
    if dup.any():
        keys = table.loc[dup, key].drop_duplicates().astype(str).agg(":".join, axis=1).tolist()
        raise MisterpInputError(
            f"The join table has several rows for the key(s) {keys[:10]} on {key}; it needs one row per key."
        )
    return join_onto(data, table, key, what)
