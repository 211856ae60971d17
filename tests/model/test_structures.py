"""Structured terms' levels, structure matrices, constraints and scaling factors (misterp.model.terms)."""

import numpy as np
import pandas as pd
import pytest

from misterp.data.adjacency import adjacency_from_table, read_adjacency
from misterp.errors import MisterpInputError
from misterp.model.formula import parse_formula
from misterp.model.terms import Structure, build_structures


def _adjacency(pairs):
    return adjacency_from_table(pd.DataFrame(pairs, columns=["area", "neighbour"]), "adj.csv")


def test_random_walk_matrices_are_the_differences_penalties():
    rw1, rw2 = Structure("rw1", tuple("abcde")), Structure("rw2", tuple("abcde"))
    D1 = np.diff(np.eye(5), axis=0)
    D2 = np.diff(np.eye(5), n=2, axis=0)
    assert np.allclose(rw1.matrix().toarray(), D1.T @ D1)
    assert np.allclose(rw2.matrix().toarray(), D2.T @ D2)
    # the constraints span each matrix's null space
    for s in (rw1, rw2):
        C = s.constraints()
        assert np.allclose(s.matrix() @ C.T, 0.0)
        assert np.linalg.matrix_rank(s.matrix().toarray()) == 5 - len(C)
    assert rw2.constraints().shape == (2, 5) and Structure("ar1", tuple("abc")).constraints().shape == (0, 3)


def test_graph_components_islands_and_scaling_factor():
    # a path a-b-c, a pair d-e, and an island f
    s = Structure("bym2", tuple("abcdef"), np.array([[0, 1], [1, 2], [3, 4]]))
    assert [c.tolist() for c in s.components] == [[0, 1, 2], [3, 4], [5]]
    assert s.islands.tolist() == [5]
    R = s.matrix().toarray()
    assert R[5, 5] == 1.0 and np.allclose(R[:3, :3], [[1, -1, 0], [-1, 2, -1], [0, -1, 1]])
    assert s.constraints().tolist() == [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]]
    # the path's generalised inverse has diagonal (5, 2, 5) / 9: geometric mean (50)^(1/3) / 9
    path = np.linalg.pinv(R[:3, :3])
    assert np.allclose(np.diag(path), [5 / 9, 2 / 9, 5 / 9])
    assert s.scale_factors[:3] == pytest.approx([50 ** (1 / 3) / 9] * 3)
    assert s.scale_factors[3:5] == pytest.approx([0.25, 0.25]) and s.scale_factors[5] == 1.0


@pytest.mark.parametrize("kind", ["rw1", "rw2", "icar", "bym2"])
def test_field_basis_gives_the_constrained_generalised_inverse(kind):
    edges = np.array([[0, 1], [1, 2], [2, 3], [0, 3], [3, 4], [6, 7]])
    s = Structure(kind, tuple("abcdefgh"), edges if kind in ("icar", "bym2") else np.zeros((0, 2), int))
    B = s.field_basis(islands=kind != "bym2")
    R = s.matrix().toarray()
    if kind == "bym2":
        R[s.islands, s.islands] = 0.0
    assert np.allclose(B @ B.T, np.linalg.pinv(R), atol=1e-10)
    assert np.allclose(s.constraints() @ B, 0.0, atol=1e-10)


def test_levels_come_from_survey_and_frame_in_order():
    f = parse_formula("y ~ rw1(age) + icar(area)")
    survey = pd.DataFrame({"y": [0, 1], "age": ["30-39", "18-29"], "area": ["a", "b"]})
    frame = pd.DataFrame({"age": ["40+", "18-29", "30-39"], "area": ["a", "b", "c"]})
    adjacency = _adjacency([("a", "b"), ("b", "c"), ("c", "a")])
    out, notes = build_structures(f, survey, frame, adjacency=adjacency)
    assert out["rw1(age)"].levels == ("18-29", "30-39", "40+")
    assert out["icar(area)"].levels == ("a", "b", "c") and len(out["icar(area)"].edges) == 3 and notes == []
    out, _ = build_structures(f, survey, frame, order={"age": ["40+", "30-39", "18-29"]}, adjacency=adjacency)
    assert out["rw1(age)"].levels == ("40+", "30-39", "18-29")
    # a frame area outside the table is an island, with a note
    out, notes = build_structures(f, survey, pd.concat([frame, pd.DataFrame({"age": ["40+"], "area": ["d"]})]),
                                  adjacency=adjacency)
    assert out["icar(area)"].islands.tolist() == [3] and "['d']" in notes[0]


def test_numeric_levels_keep_their_type_and_order():
    f = parse_formula("y ~ rw1(wave)")
    out, _ = build_structures(f, pd.DataFrame({"y": [0, 1, 1], "wave": [10, 2, 1]}), None)
    assert out["rw1(wave)"].levels == (1, 2, 10)
    out, _ = build_structures(f, pd.DataFrame({"y": [0, 1, 1], "wave": [10, 2, 1]}), None, order={"wave": ["10", "2", "1"]})
    assert out["rw1(wave)"].levels == (10, 2, 1)


@pytest.mark.parametrize("order, words", [
    ({"age": ["a", "b", "x"]}, ["names ['x']", "leaves out ['c']"]),
    ({"age": ["a", "b", "c", "a"]}, ["repeats ['a']"]),
    ({"other": ["a"]}, ["no rw1(), rw2() or ar1() term"]),
])
def test_bad_order_is_a_clear_error(order, words):
    f = parse_formula("y ~ rw1(age)")
    with pytest.raises(MisterpInputError) as error:
        build_structures(f, pd.DataFrame({"y": [0, 1, 1], "age": ["a", "b", "c"]}), None, order=order)
    assert all(w in str(error.value) for w in words)


def test_too_few_levels_missing_adjacency_and_unknown_table_areas():
    data = pd.DataFrame({"y": [0, 1], "age": ["a", "b"], "area": ["p", "q"]})
    with pytest.raises(MisterpInputError, match="at least 3 levels"):
        build_structures(parse_formula("y ~ rw1(age)"), data)
    with pytest.raises(MisterpInputError, match="--adjacency"):
        build_structures(parse_formula("y ~ bym2(area)"), data)
    with pytest.raises(MisterpInputError, match=r"lacks: \['r'\]"):
        build_structures(parse_formula("y ~ bym2(area)"), data, pd.DataFrame({"area": ["p", "q"]}),
                         adjacency=_adjacency([("p", "q"), ("q", "r")]))


def test_the_built_in_table_drops_areas_the_frame_lacks_with_a_note():
    data = pd.DataFrame({"y": [0, 1], "state": ["CA", "OR"]})
    out, notes = build_structures(parse_formula("y ~ icar(state)"), data, pd.DataFrame({"state": ["CA", "OR", "WA"]}),
                                  adjacency=read_adjacency("us-states"))
    assert out["icar(state)"].levels == ("CA", "OR", "WA") and out["icar(state)"].edges.tolist() == [[0, 1], [1, 2]]
    assert "left out" in notes[0]


def test_structure_round_trips_through_json():
    s = Structure("bym2", (1, 2, 3), np.array([[0, 1]]))
    back = Structure.from_json(s.to_json(), np.int64)
    assert back.levels == (1, 2, 3) and back.edges.tolist() == [[0, 1]] and back.kind == "bym2"


def test_rw2_without_a_linear_fixed_effect_says_it_has_no_trend():
    data = pd.DataFrame({"y": [0, 1, 1, 0], "age": ["a", "b", "c", "d"], "k": [1, 2, 3, 4]})
    _, notes = build_structures(parse_formula("y ~ rw2(age)"), data)
    assert "carries no linear trend" in notes[0]
    _, notes = build_structures(parse_formula("y ~ factor(age) + rw2(age)"), data)
    assert notes == []


def test_table_areas_of_another_type_than_the_column_are_a_clear_error():
    data = pd.DataFrame({"y": [0, 1], "fips": [1001, 1003]})
    with pytest.raises(MisterpInputError, match="not values of 'fips'"):
        build_structures(parse_formula("y ~ icar(fips)"), data, adjacency=_adjacency([("1001", "AB")]))
