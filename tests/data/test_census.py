"""Frames from census microdata (DuckDB) and from margins (raking, MrsP)."""

import numpy as np
import pandas as pd
import pytest

from misterp import MisterpInputError
from misterp.data.census import frame_from_margins, frame_from_microdata

RULES = {
    "state": {"column": "ST", "map": {1: "AL", 2: "AK", 4: "AZ"}},
    "male": {"column": "SEX", "map": {1: 0.5, 2: -0.5}},
    "age": {"column": "AGEP", "bins": [18, 30, 45, 65], "labels": ["18-29", "30-44", "45-64", "65+"]},
    "eth": {"sql": "CASE WHEN HISP > 1 THEN 'Hispanic' WHEN RAC1P = 1 THEN 'White' "
                   "WHEN RAC1P = 2 THEN 'Black' ELSE 'Other' END"},
}


def pums(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ST": rng.choice([1, 2, 4], n), "AGEP": rng.integers(0, 96, n),
                         "SEX": rng.integers(1, 3, n), "RAC1P": rng.integers(1, 10, n),
                         "HISP": rng.choice([1, 1, 1, 2, 3], n), "SCHL": rng.integers(1, 25, n),
                         "PWGTP": rng.integers(1, 200, n)})


def expected_table(people):
    adults = people[people["AGEP"] >= 18]
    eth = np.select([adults["HISP"] > 1, adults["RAC1P"] == 1, adults["RAC1P"] == 2],
                    ["Hispanic", "White", "Black"], "Other")
    age = pd.cut(adults["AGEP"], [18, 30, 45, 65, 200], right=False, labels=["18-29", "30-44", "45-64", "65+"])
    keys = pd.DataFrame({"state": adults["ST"].map({1: "AL", 2: "AK", 4: "AZ"}),
                         "male": adults["SEX"].map({1: 0.5, 2: -0.5}), "age": age.astype(str), "eth": eth})
    return keys.assign(n=adults["PWGTP"]).groupby(["state", "male", "age", "eth"], as_index=False)["n"].sum()


@pytest.mark.parametrize("fmt", ["parquet", "csv", "frame"])
def test_microdata_table_matches_pandas(tmp_path, fmt):
    people = pums()
    source = people
    if fmt != "frame":
        source = tmp_path / f"pums.{fmt}"
        people.to_parquet(source) if fmt == "parquet" else people.to_csv(source, index=False)
    frame = frame_from_microdata(source, RULES, where="AGEP >= 18")
    got = frame.data.sort_values(["state", "male", "age", "eth"]).reset_index(drop=True)
    want = expected_table(people).sort_values(["state", "male", "age", "eth"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want.astype({"n": float}), check_dtype=False)


def test_rules_from_yaml(tmp_path):
    rules = tmp_path / "cells.yaml"
    rules.write_text("state:\n  column: ST\n  map: {1: AL, 2: AK, 4: AZ}\nage:\n  column: AGEP\n"
                     "  bins: [0, 18, 65]\n  labels: [child, adult, senior]\n")
    frame = frame_from_microdata(pums(2000), rules)
    assert frame.counts.sum() == pums(2000)["PWGTP"].sum()
    assert set(frame.data["age"]) == {"child", "adult", "senior"}


def test_uncovered_values_are_named():
    with pytest.raises(MisterpInputError, match=r"Cell variable 'age' has no rule for .* values such as \["):
        frame_from_microdata(pums(2000), {"age": RULES["age"]})  # children are not binned, and no where


@pytest.mark.parametrize("people, rules, fragment", [
    (pums(100).assign(PWGTP=-1), {"state": "ST"}, "negative or non-finite weight"),
    (pums(100), {"state": "STATE"}, "microdata query failed"),
    (pums(100), {"age": {"column": "AGEP", "bins": [0, 18], "labels": ["a", "b", "c"]}}, "2 bin edges and 3 labels"),
])
def test_microdata_errors(people, rules, fragment):
    with pytest.raises(MisterpInputError, match=fragment):
        frame_from_microdata(people, rules)


def test_missing_microdata_file(tmp_path):
    with pytest.raises(MisterpInputError, match="does not exist"):
        frame_from_microdata(tmp_path / "none.parquet", {"state": "ST"})


def test_margins_are_met():
    seed = pd.DataFrame([(s, a) for s in ["AL", "AK", "AZ"] for a in ["young", "old"]], columns=["state", "age"])
    seed["n"] = [1.0, 2.0, 1.0, 1.0, 3.0, 1.0]
    margins = {"state": {"AL": 400.0, "AK": 100.0, "AZ": 500.0}, "age": {"young": 450.0, "old": 550.0}}
    frame = frame_from_margins(seed, margins)
    for col, totals in margins.items():
        got = frame.data.groupby(col)["n"].sum()
        np.testing.assert_allclose(got[list(totals)], list(totals.values()), rtol=1e-8)


def test_margins_errors():
    seed = pd.DataFrame({"a": ["x", "x", "y"], "b": ["u", "v", "u"], "n": [1.0, 1.0, 1.0]})
    with pytest.raises(MisterpInputError, match="different grand totals"):
        frame_from_margins(seed, {"a": {"x": 1.0, "y": 1.0}, "b": {"u": 1.0, "v": 5.0}})
    # y only meets u, so u's total must hold all of y's: these margins have no solution
    with pytest.raises(MisterpInputError, match="did not converge"):
        frame_from_margins(seed, {"a": {"x": 1.0, "y": 9.0}, "b": {"u": 5.0, "v": 5.0}}, max_iter=200)
    with pytest.raises(MisterpInputError, match="categories \\['y'\\]"):
        frame_from_margins(seed, {"a": {"x": 3.0}})


def test_yaml_rule_can_name_a_column(tmp_path):
    """`state: ST` works from YAML as it does from a dict (the rules have their own loader)."""
    rules = tmp_path / "cells.yaml"
    rules.write_text("ST: ST\nage:\n  column: AGEP\n  bins: [0, 18]\n  labels: [child, adult]\n")
    people = pums(500)
    from_yaml = frame_from_microdata(people, rules)
    from_dict = frame_from_microdata(people, {"ST": "ST", "age": {"column": "AGEP", "bins": [0, 18],
                                                                  "labels": ["child", "adult"]}})
    pd.testing.assert_frame_equal(from_yaml.data, from_dict.data)
    assert sorted(from_yaml.data["ST"].unique()) == [1, 2, 4]
    (tmp_path / "bad.yaml").write_text("state: [1, 2]\n")
    with pytest.raises(MisterpInputError, match="rule for cell variable 'state'"):
        frame_from_microdata(people, tmp_path / "bad.yaml")
