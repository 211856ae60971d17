"""Poststratification tables from census microdata, or from margins by raking.

``frame_from_microdata`` sums person weights into cells in one DuckDB query
over a CSV or Parquet file (or a DataFrame), with DuckDB's memory limit set,
so ten million ACS PUMS rows never pass through pandas. Each cell variable is
declared, as in the survey mapping, by a value map, numeric bins or an SQL
expression:

    state: {column: ST, map: {1: AL, 2: AK}}
    age:   {column: AGEP, bins: [18, 30, 45, 65], labels: [18-29, 30-44, 45-64, 65+]}
    eth:   {sql: "CASE WHEN HISP > 1 THEN 'Hispanic' WHEN RAC1P = 1 THEN 'White' ELSE 'Other' END"}

A person whose value no rule covers is an error that names the values, not a
dropped row; restrict the universe explicitly with ``where`` (``AGEP >= 18``).

``frame_from_margins`` rakes a seed table to known marginal totals, as in
multilevel regression with synthetic poststratification (MrsP).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from .frame import Frame
from .raking import rake
from .tables import read_yaml


def _literal(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(float(value)) if isinstance(value, (float, np.floating)) else str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def load_rules(source) -> dict:
    """Cell variable -> rule, from a dict or a YAML file.

    A rule is a column name (``state: ST``) or a mapping with ``column`` and
    ``map`` or ``bins``/``labels``, or with ``sql``.
    """
    rules = source if isinstance(source, dict) else read_yaml(source, "cell rules")
    if not isinstance(rules, dict):
        raise MisterpInputError(
            "Cell rules must map each cell variable to a column name or a rule, such as "
            "{'state': 'ST', 'age': {'column': 'AGEP', 'bins': [18, 30], 'labels': ['18-29', '30+']}}."
        )
    for name, rule in rules.items():
        if not isinstance(rule, (str, dict)):
            raise MisterpInputError(
                f"The rule for cell variable {name!r} is {rule!r}; give a column name or a mapping with "
                "'column' and 'map' or 'bins', or with 'sql'."
            )
    return rules


def cell_expression(name: str, rule) -> str:
    """The SQL expression of one cell variable; NULL where no rule applies."""
    if isinstance(rule, str):
        return _quote(rule)
    if not isinstance(rule, dict):
        raise MisterpInputError(f"The rule for cell variable {name!r} must be a column name or a mapping.")
    if "sql" in rule:
        return f"({rule['sql']})"
    column = rule.get("column")
    if column is None:
        raise MisterpInputError(f"The rule for cell variable {name!r} needs 'column' (with 'map' or 'bins') or 'sql'.")
    col = _quote(column)
    if "map" in rule:
        cases = " ".join(f"WHEN {col} = {_literal(k)} THEN {_literal(v)}" for k, v in rule["map"].items())
        return f"(CASE {cases} END)"
    if "bins" in rule:
        bins, labels = list(rule["bins"]), list(rule.get("labels", []))
        if len(labels) not in (len(bins) - 1, len(bins)):
            raise MisterpInputError(
                f"Cell variable {name!r} has {len(bins)} bin edges and {len(labels)} labels; give one label per "
                "interval [edge_i, edge_i+1), plus one for the last edge upward if it is open-ended."
            )
        edges = bins + [None]
        cases = []
        for i, label in enumerate(labels):
            upper = f" AND {col} < {_literal(edges[i + 1])}" if edges[i + 1] is not None else ""
            cases.append(f"WHEN {col} >= {_literal(edges[i])}{upper} THEN {_literal(label)}")
        return f"(CASE {' '.join(cases)} END)"
    return col


def frame_from_microdata(source, cells, weight: str = "PWGTP", where: str | None = None,
                         count: str = "n", memory_limit: str = "1GB", threads: int = 2) -> Frame:
    """Sum person weights into cells.

    Parameters
    ----------
    source : path (CSV or Parquet) or DataFrame
        Person records, such as ACS PUMS (ST, AGEP, SEX, RAC1P, HISP, SCHL, PWGTP).
    cells : dict or YAML path
        Cell variable -> rule (a column name, ``{column, map}``, ``{column, bins, labels}``
        or ``{sql}``).
    weight : str
        The person-weight column; weights must be finite and >= 0.
    where : str, optional
        An SQL condition restricting the universe (``"AGEP >= 18"``).
    count : str
        Name of the count column of the result.
    memory_limit, threads : DuckDB settings.

    Returns
    -------
    Frame with one row per cell seen, sorted by the cell variables.
    """
    import duckdb

    rules = load_rules(cells)
    if not rules:
        raise MisterpInputError("Give at least one cell variable, such as {'state': 'ST'}.")
    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": threads})
    try:
        relation = _relation(con, source)
        exprs = {name: cell_expression(name, rule) for name, rule in rules.items()}
        universe = f"WHERE {where}" if where else ""
        base = f"(SELECT * FROM {relation} {universe})"
        _check_rules(con, base, exprs, rules, weight)
        select = ", ".join(f"{e} AS {_quote(n)}" for n, e in exprs.items())
        query = (f"SELECT {select}, SUM({_quote(weight)}) AS {_quote(count)} FROM {base} "
                 f"GROUP BY ALL ORDER BY ALL")
        table = con.execute(query).df()
    except duckdb.Error as e:
        raise MisterpInputError(f"The microdata query failed: {e}. Check the column names in the cell rules, "
                                f"the weight column {weight!r} and the where condition.") from None
    finally:
        con.close()
    table[count] = table[count].astype(float)
    return Frame(table, count)


def _relation(con, source) -> str:
    if isinstance(source, pd.DataFrame):
        con.register("microdata", source)
        return "microdata"
    path = Path(source)
    if not path.is_file():
        raise MisterpInputError(f"The microdata file {str(path)!r} does not exist. Check the path.")
    reader = "read_parquet" if path.suffix.lower() in (".parquet", ".pq") else "read_csv_auto"
    return f"{reader}({_literal(str(path))})"


def _check_rules(con, base: str, exprs: dict, rules: dict, weight: str) -> None:
    """Raise on persons no rule covers, and on bad weights, naming the values."""
    for name, expr in exprs.items():
        rule = rules[name]
        source = rule.get("column") if isinstance(rule, dict) else rule
        shown = _quote(source) if source else "'(sql)'"
        rows = con.execute(f"SELECT {shown} AS v, COUNT(*) AS k FROM {base} WHERE {expr} IS NULL "
                           f"GROUP BY ALL HAVING COUNT(*) > 0 ORDER BY k DESC LIMIT 10").fetchall()
        if rows:
            values = [r[0] for r in rows]
            raise MisterpInputError(
                f"Cell variable {name!r} has no rule for {sum(r[1] for r in rows)} or more persons, with "
                f"{source or 'its expression'} values such as {values}. Add them to the rule, or leave "
                "those persons out with an explicit where condition."
            )
    bad = con.execute(f"SELECT COUNT(*) FROM {base} WHERE {_quote(weight)} IS NULL OR {_quote(weight)} < 0 "
                      f"OR NOT isfinite({_quote(weight)}::DOUBLE)").fetchone()[0]
    if bad:
        raise MisterpInputError(f"{bad} persons have a missing, negative or non-finite weight {weight!r}. "
                                "Fix the weights or leave those persons out with a where condition.")


def frame_from_margins(seed: pd.DataFrame, margins: dict, count: str = "n", tol: float = 1e-10,
                       max_iter: int = 1000) -> Frame:
    """Rake a seed table's counts to known margins (MrsP).

    Parameters
    ----------
    seed : DataFrame
        One row per cell with a positive seed count in ``count`` (often 1, or
        a joint distribution from another source); zero cells stay zero.
    margins : dict
        Column -> {category: population total}. Every margin must have the
        same grand total.

    Returns
    -------
    Frame whose counts meet every margin within ``tol`` (relative); an error
    if raking does not converge within ``max_iter`` passes.
    """
    codes, targets = [], []
    for col, totals in margins.items():
        if col not in seed.columns:
            raise MisterpInputError(f"The seed table has no column {col!r} for the margin of that name.")
        totals = pd.Series(totals, dtype=float)
        code = pd.Index(totals.index).get_indexer(seed[col])
        if (code < 0).any():
            missing = sorted(set(seed.loc[code < 0, col].astype(str)))
            raise MisterpInputError(f"The seed table's column {col!r} has categories {missing[:10]} that the "
                                    "margin does not give. Add them to the margin (with 0 if empty).")
        codes.append(code)
        targets.append(totals.to_numpy())
    grand = [t.sum() for t in targets]
    if max(grand) - min(grand) > 1e-9 * max(grand):
        raise MisterpInputError(f"The margins have different grand totals {dict(zip(margins, grand))}; "
                                "raking needs them equal.")
    weights = rake(seed[count].to_numpy(float), codes, targets, tol=tol, max_iter=max_iter, names=list(margins))
    return Frame(seed.assign(**{count: weights}), count)
