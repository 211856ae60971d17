import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from misterp import Frame, LaplaceEngine, MisterpInputError, Survey, cell_draws, poststratify, prepare
from misterp.results.compare import add_comparisons, margin_columns, raking_weights
from misterp.data.raking import rake


@pytest.fixture(scope="module")
def sample(cces_all):
    rows = pd.read_csv(FIXTURES / "cces_sample5000_rows.csv")["row"].to_numpy() - 1
    return Survey(cces_all.iloc[rows].reset_index(drop=True), "abortion")


def test_raked_weights_match_r_survey_rake(sample, cces_frame):
    """tests/fixtures/r/make_rake.R: survey::rake to convergence."""
    ours, notes = raking_weights(sample, cces_frame, ["state", "eth", "educ", "age", "male"])
    assert notes == []
    theirs = pd.read_csv(FIXTURES / "rake_cces_sample5000.csv")["weight"].to_numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)


def test_margins_are_met_within_1e8(sample, cces_frame):
    w, _ = raking_weights(sample, cces_frame, ["state", "eth", "male"])
    for col in ["state", "eth", "male"]:
        got = pd.Series(w).groupby(sample.data[col].to_numpy()).sum()
        want = cces_frame.data.groupby(col)["n"].sum()
        np.testing.assert_allclose(got.to_numpy(), want.loc[got.index].to_numpy(), rtol=1e-8)


def test_inconsistent_margins_do_not_converge():
    with pytest.raises(MisterpInputError, match="did not converge in 50 passes"):
        rake(np.ones(4), [np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])],
             [np.array([50.0, 50.0]), np.array([30.0, 80.0])], max_iter=50)


def test_empty_category_is_named():
    with pytest.raises(MisterpInputError, match=r"margin 'eth'.*categories \[2\]"):
        rake(np.ones(3), [np.array([0, 1, 1])], [np.array([1.0, 2.0, 3.0])], names=["eth"])


def test_comparison_columns(sample, cces_frame, cces_all):
    formula = "abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age)"
    cells, _ = prepare(sample, cces_frame, formula)
    assert margin_columns(cells.design, cces_frame) == ["state", "age", "educ", "eth", "male"]
    est = poststratify(cell_draws(LaplaceEngine().fit(cells), cces_frame, n_draws=50, seed=1), cces_frame, by="state")
    est, notes = add_comparisons(est, sample, cces_frame, cells.design)
    t = est.table.set_index("state")
    ca = sample.data[sample.data["state"] == "CA"]["abortion"]
    assert t.loc["CA", "raw_mean"] == pytest.approx(ca.mean()) and t.loc["CA", "raw_n"] == len(ca)
    r = pd.read_csv(FIXTURES / "rake_cces_sample5000_state.csv").set_index("state")["raked"]
    np.testing.assert_allclose(t["raked_mean"], r.loc[t.index], atol=1e-8)
    assert "weighted_mean" not in t and notes == []


def test_weighted_mean_with_design_weights():
    data = pd.DataFrame({"y": [1, 0, 1, 0], "g": ["a", "a", "b", "b"], "w": [3.0, 1.0, 1.0, 1.0]})
    frame = Frame(pd.DataFrame({"g": ["a", "b"], "N": [10, 10]}), "N")
    survey = Survey(data, "y", weights="w")
    cells, _ = prepare(survey, frame, "y ~ (1|g)")
    est = poststratify(cell_draws(LaplaceEngine().fit(cells), frame, n_draws=20, seed=1), frame, by="g")
    est, _ = add_comparisons(est, survey, frame, cells.design)
    assert est.table["weighted_mean"].tolist() == [0.75, 0.5]
    assert est.table["raw_mean"].tolist() == [0.5, 0.5]


def test_categories_without_respondents_are_scaled_over():
    data = pd.DataFrame({"y": [1, 0, 1, 0], "g": ["a", "a", "b", "b"]})
    frame = Frame(pd.DataFrame({"g": ["a", "b", "c"], "N": [10.0, 30.0, 60.0]}), "N")
    w, notes = raking_weights(Survey(data, "y"), frame, ["g"])
    np.testing.assert_allclose(w, [12.5, 12.5, 37.5, 37.5])
    assert notes == ["raking: 1 g categories have no respondents (60.0% of the population); "
                     "their margin was scaled over the others"]


@pytest.mark.parametrize("by", [None, "class"])
def test_cells_input_rakes_like_its_respondents(by, article_survey, article_frame):
    """A survey given as cbind(s, n - s) cells gets the same comparisons as its 0/1 rows."""
    g = article_survey.groupby("class")["response"]
    cells_table = pd.DataFrame({"class": g.sum().index, "s": g.sum().to_numpy(), "n": g.size().to_numpy()})
    rows = Survey(article_survey, "response")
    grouped = Survey(cells_table, "s")
    a, _ = prepare(rows, article_frame, "response ~ (1|class)")
    b, _ = prepare(grouped, article_frame, "cbind(s, n - s) ~ (1|class)")
    est = poststratify(cell_draws(LaplaceEngine().fit(a), article_frame, n_draws=20, seed=1), article_frame,
                       by=by)
    from_rows, _ = add_comparisons(est, rows, article_frame, a.design)
    from_cells, _ = add_comparisons(est, grouped, article_frame, b.design)
    cols = ["raw_mean", "raw_n", "raked_mean"]
    pd.testing.assert_frame_equal(from_rows.table[cols], from_cells.table[cols], check_exact=False, rtol=1e-10)
    if by is None:  # overall, raking to the class margin is simple poststratification
        assert from_cells.table["raked_mean"].iloc[0] == pytest.approx(0.431312178070136, abs=1e-9)


def test_nested_margins_with_empty_areas_rake_without_the_area_margin():
    """Counties nested in states, two counties without respondents: their county margin scaled over
    the others contradicts the state margin, so raking leaves the county margin out and says so."""
    rng = np.random.default_rng(5)
    county = np.repeat(np.arange(12), 2)
    frame = Frame(pd.DataFrame({"county": county, "state": county // 4, "male": np.tile([0, 1], 12),
                                "n": rng.integers(100, 1000, 24)}), "n")
    rows = rng.choice(np.flatnonzero(~np.isin(county, [0, 5])), 400)  # counties 0 and 5 unsampled
    data = frame.data.iloc[rows][["county", "state", "male"]].reset_index(drop=True)
    data["y"] = rng.binomial(1, 0.3 + 0.04 * data["county"])
    survey = Survey(data, "y")
    cells, _ = prepare(survey, frame, "y ~ male + (1|county) + (1|state)")
    estimate = poststratify(cell_draws(LaplaceEngine().fit(cells), frame, seed=1), frame, by="state")
    with pytest.raises(MisterpInputError, match="did not converge"):
        raking_weights(survey, frame, ["county", "state", "male"])
    compared, notes = add_comparisons(estimate, survey, frame, cells.design)
    assert compared.table["raked_mean"].notna().all()
    assert any("left out the county margin, 2 of whose" in n for n in notes)
    weights, _ = raking_weights(survey, frame, ["county", "state", "male"], skip_empty=True)
    for col in ["state", "male"]:  # the margins kept are met
        got = pd.Series(weights).groupby(data[col].to_numpy()).sum()
        np.testing.assert_allclose(got, frame.data.groupby(col)["n"].sum().loc[got.index], rtol=1e-8)
