"""Adjacency tables (misterp.data.adjacency)."""

import pandas as pd
import pytest
from scipy.sparse.csgraph import connected_components

from misterp.data.adjacency import adjacency_from_table, read_adjacency
from misterp.errors import MisterpInputError
from misterp.model.terms import Structure


def test_built_in_us_states_table():
    adj = read_adjacency("us-states")
    assert len(adj.pairs) == 105 and len(adj.areas) == 48 and adj.built_in
    assert not {"AK", "HI", "DC"} & set(adj.areas)
    assert "CO" not in adj.neighbours("AZ") and "UT" not in adj.neighbours("NM")  # the Four Corners
    assert len(adj.neighbours("MO")) == len(adj.neighbours("TN")) == 8 and adj.neighbours("ME") == ["NH"]
    position = {a: i for i, a in enumerate(adj.areas)}
    s = Structure("icar", tuple(adj.areas), [[position[a], position[b]] for a, b in adj.pairs])
    assert connected_components(s.matrix(), directed=False)[0] == 1


def test_edges_given_twice_or_reversed_are_one_edge():
    adj = adjacency_from_table(pd.DataFrame({"area": ["a", "b", "b"], "neighbor": ["b", "a", "c"]}), "t")
    assert adj.pairs == (("a", "b"), ("b", "c"))


def test_self_edges_missing_columns_and_empty_names_are_errors(tmp_path):
    with pytest.raises(MisterpInputError, match=r"own neighbour: \['a'\] \(rows 2\)"):
        adjacency_from_table(pd.DataFrame({"area": ["a", "a"], "neighbour": ["b", "a"]}), "t")
    with pytest.raises(MisterpInputError, match="lacks the column"):
        adjacency_from_table(pd.DataFrame({"from": ["a"], "to": ["b"]}), "t")
    path = tmp_path / "adj.csv"
    path.write_text("area,neighbour\na,b\n,c\n")
    with pytest.raises(MisterpInputError, match="no area or no neighbour"):
        read_adjacency(path)
