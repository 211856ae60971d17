"""Survey <-> census harmonisation: recode survey answers onto census categories.

A mapping is ``{column: {survey value: census value}}``, many to one: seven
survey age bands onto four census bands, or "Asian", "Mixed" and "Other" onto
"Other". Values the mapping does not name are kept as they are, so anything
left unmatched surfaces in the coverage check (a survey level the frame lacks
is an error that names it), never as a silently dropped row.

A mapping can be a dict, a YAML file (``column: {from: to}``) or a CSV file
with columns ``column,from,to``.

Example
-------
>>> import pandas as pd
>>> recode(pd.DataFrame({"eth": ["Asian", "White", "Mixed"]}), {"eth": {"Asian": "Other", "Mixed": "Other"}})["eth"].tolist()
['Other', 'White', 'Other']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from .tables import read_table, read_yaml


def load_mapping(source) -> dict[str, dict]:
    """A mapping from a dict, or a YAML or CSV file."""
    if source is None:
        return {}
    if isinstance(source, dict):
        mapping = source
    else:
        path = Path(source)
        if path.suffix.lower() in (".yaml", ".yml"):
            mapping = read_yaml(path, "mapping")
        else:
            table = read_table(path, "mapping")
            missing = [c for c in ("column", "from", "to") if c not in table.columns]
            if missing:
                raise MisterpInputError(
                    f"The mapping CSV {str(path)!r} needs the columns column, from, to; it lacks {missing}."
                )
            mapping = {}
            for col, part in table.groupby("column", sort=False):
                mapping[col] = dict(zip(part["from"], part["to"]))
    if not isinstance(mapping, dict) or not all(isinstance(v, dict) for v in mapping.values()):
        raise MisterpInputError(
            "A mapping must give, for each column, a table of survey value -> census value, such as "
            "{'age': {'18-24': '18-29', '25-29': '18-29'}}."
        )
    return mapping


def recode(data: pd.DataFrame, mapping, what: str = "survey") -> pd.DataFrame:
    """``data`` with each mapped column recoded; unnamed values are kept as they are."""
    mapping = load_mapping(mapping)
    out = data.copy()
    for col, table in mapping.items():
        if col not in out.columns:
            raise MisterpInputError(
                f"The mapping recodes column {col!r}, which the {what} does not have "
                f"(its columns are {list(out.columns)}). Fix the column name in the mapping."
            )
        values = out[col]
        keyed = {_key(k): v for k, v in table.items()}
        mapped = values.map(lambda v: keyed.get(_key(v), v))
        out[col] = mapped
    return out


def _key(value):
    """Match 1, 1.0 and "1" alike, as mapping files spell values as text."""
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)

