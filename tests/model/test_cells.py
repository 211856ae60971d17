"""Respondents and cells: collapsing, and surveys given as cells (lme4's cbind)."""

import numpy as np
import pandas as pd
import pytest

from misterp import LaplaceEngine, MisterpInputError, Survey, collapse, prepare
from misterp.model.family import log_choose


def test_collapse_counts_respondents():
    data = pd.DataFrame({"y": [1, 0, 1, 1], "g": ["b", "a", "a", "b"], "x": [1.0, 2.0, 2.0, 1.0]})
    cells = collapse(Survey(data, "y"), "y ~ x + (1|g)")
    assert cells.table.to_dict("list") == {"x": [1.0, 2.0], "g": ["b", "a"]}
    assert cells.stats["successes"].tolist() == [2.0, 1.0]
    assert cells.stats["trials"].tolist() == [2.0, 2.0]


@pytest.fixture(scope="module")
def article_cells_table(article_survey):
    g = article_survey.groupby("class")["response"]
    return pd.DataFrame({"class": g.sum().index, "s": g.sum().to_numpy(), "n": g.size().to_numpy()})


@pytest.mark.parametrize("formula, trials", [("cbind(s, n - s) ~ (1|class)", None),
                                             ("s ~ (1|class)", "n")])
def test_cells_input_equals_respondents(article_survey, article_frame, article_cells_table, formula, trials):
    rows, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    cells, _ = prepare(Survey(article_cells_table, "s", trials=trials), article_frame, formula)
    a, b = LaplaceEngine().fit(rows), LaplaceEngine().fit(cells)
    np.testing.assert_allclose(b.beta, a.beta, atol=1e-9)
    np.testing.assert_allclose(b.theta, a.theta, atol=1e-8)
    # lme4's logLik on binomial rows includes their log C(n, s)
    t = article_cells_table
    assert b.loglik - a.loglik == pytest.approx(log_choose(t["n"], t["s"]).sum(), abs=1e-8)


def test_cbind_with_failures_column(article_frame, article_cells_table):
    table = article_cells_table.assign(f=article_cells_table["n"] - article_cells_table["s"])
    cells, _ = prepare(Survey(table, "s"), article_frame, "cbind(s, f) ~ (1|class)")
    assert cells.stats["trials"].sum() == 1000


def test_bad_counts_are_named(article_frame, article_cells_table):
    table = article_cells_table.assign(s=article_cells_table["s"] + [0, 0, 500, 0, 0])
    with pytest.raises(MisterpInputError, match=r"0 <= successes <= trials.*rows \[3\]"):
        prepare(Survey(table, "s", trials="n"), article_frame, "s ~ (1|class)")


def test_constant_outcome_is_an_error():
    data = pd.DataFrame({"y": [0] * 6, "g": list("aabbcc")})
    with pytest.raises(MisterpInputError, match="'y' is 0 for every one of the 6 respondents"):
        collapse(Survey(data, "y"), "y ~ (1|g)")


def test_frame_cells_are_matched_on_levels_not_on_a_continuous_covariate():
    """A frame on a grid of a continuous score repeats none of the survey's values: matching on it would
    count every frame cell as without respondents. A 0/1 numeric column is matched as the levels are."""
    from misterp import Frame
    from misterp.model.cells import coverage_columns, frame_coverage

    rng = np.random.default_rng(0)
    survey = pd.DataFrame({"y": rng.integers(0, 2, 300), "g": rng.choice(list("abc"), 300),
                           "male": rng.integers(0, 2, 300), "score": rng.normal(size=300), "f": "x"})
    frame = Frame(pd.DataFrame([(g, m, s, "x", 10) for g in "abcd" for m in (0, 1) for s in (-1.0, 0.0, 1.0)],
                               columns=["g", "male", "score", "f", "N"]), "N")
    cells, _ = prepare(Survey(survey, "y"), frame, "y ~ male + score + factor(f) + (1|g)")
    assert coverage_columns(cells) == ["male", "f", "g"]
    cover = frame_coverage(cells, frame)
    assert cover["frame_cells"] == 24 and cover["without_respondents"] == 6  # the unseen level d
