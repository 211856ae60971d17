"""Area adjacency for spatial terms (``icar(state)``, ``bym2(county)``): a table of neighbouring areas.

A table has the columns ``area`` and ``neighbour`` (``neighbor`` is read too), one row per pair of
areas that share a border, each pair given once or twice (either way round). Areas are read as text,
so "01" and "1" are different areas.

The package ships ``us-states`` (:data:`US_STATES`), the 50 states by their postal codes:

- two states are neighbours when they share a land border of positive length (rook adjacency):
  at the Four Corners, Arizona-Colorado and New Mexico-Utah touch at a point only and are not
  neighbours; borders across water alone are not edges (Michigan-Illinois, Michigan-Minnesota,
  New York-Rhode Island), borders along rivers are (the Ohio, the Mississippi, the Potomac);
- 105 edges among the 48 contiguous states, one connected graph, checked edge by edge against
  Knuth's ``contiguous-usa.dat`` (which differs only by its DC edges);
- Alaska and Hawaii have no edges: a model treats them as islands (an area with no neighbour gets an
  independent effect);
- the District of Columbia is not in the table: a survey or frame with DC makes it an island too,
  or give your own table with DC-MD and DC-VA.

Example
-------
>>> adj = read_adjacency("us-states")
>>> len(adj.pairs), "CO" in adj.neighbours("AZ")
(105, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

from ..errors import MisterpInputError
from .tables import describe_rows, read_table

US_STATES = "us-states"
BUILT_IN = {US_STATES: "us_states_adjacency.csv"}


@dataclass(frozen=True)
class Adjacency:
    """Neighbouring areas.

    Attributes
    ----------
    pairs : tuple of (str, str)
        Each edge once, the smaller name first, sorted.
    source : str
        The file, or the built-in table's name.
    """

    pairs: tuple
    source: str

    @property
    def built_in(self) -> bool:
        return self.source in BUILT_IN

    @property
    def areas(self) -> list[str]:
        """Every area named by an edge, sorted."""
        return sorted({a for pair in self.pairs for a in pair})

    def neighbours(self, area: str) -> list[str]:
        return sorted({b if a == area else a for a, b in self.pairs if area in (a, b)})


def read_adjacency(source) -> Adjacency:
    """The adjacency table at ``source`` (a CSV or other table file), or the built-in ``"us-states"``.

    Raises :class:`MisterpInputError` for a missing column, an empty name, or an area named as its own
    neighbour."""
    if isinstance(source, str) and source in BUILT_IN:
        with resources.files("misterp.data").joinpath(BUILT_IN[source]).open() as f:
            table = pd.read_csv(f, dtype=str)
    else:
        table = read_table(source, "adjacency").astype(str)
    return adjacency_from_table(table, str(source))


def adjacency_from_table(table: pd.DataFrame, source: str) -> Adjacency:
    """An :class:`Adjacency` from a table with ``area`` and ``neighbour`` (or ``neighbor``) columns."""
    table = table.rename(columns={"neighbor": "neighbour"})
    missing = [c for c in ("area", "neighbour") if c not in table.columns]
    if missing:
        raise MisterpInputError(
            f"The adjacency table {source!r} lacks the column(s) {missing}; it has {list(table.columns)}. Give one "
            "row per pair of neighbouring areas, with the columns 'area' and 'neighbour'.")
    area = table["area"].astype(str).str.strip()
    neighbour = table["neighbour"].astype(str).str.strip()
    empty = (area == "") | (neighbour == "") | table[["area", "neighbour"]].isna().any(axis=1).to_numpy() | \
        area.isin(["nan", "None"]) | neighbour.isin(["nan", "None"])
    if empty.any():
        raise MisterpInputError(
            f"The adjacency table {source!r} has rows with no area or no neighbour (rows "
            f"{describe_rows(empty.to_numpy().nonzero()[0] + 1)}). Fill them in or remove them; an area with no "
            "neighbour needs no row (it is an island).")
    self_edge = (area == neighbour).to_numpy()
    if self_edge.any():
        raise MisterpInputError(
            f"The adjacency table {source!r} names an area as its own neighbour: {sorted(set(area[self_edge]))} "
            f"(rows {describe_rows(self_edge.nonzero()[0] + 1)}). Remove those rows: an area borders other areas.")
    pairs = sorted({(min(a, b), max(a, b)) for a, b in zip(area, neighbour)})
    return Adjacency(tuple(pairs), source)
