from pathlib import Path

import numpy as np

from misterp import GlmEngine, Survey, cell_draws, poststratify, prepare


def fit_article(article_survey, article_frame, formula="response ~ factor(class)"):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, formula)
    return GlmEngine().fit(cells)


def test_glm_matches_r(article_survey, article_frame, ref):
    glm = fit_article(article_survey, article_frame)
    np.testing.assert_allclose(glm.coef, ref["glm_coef"], atol=1e-6)
    draws = cell_draws(glm, article_frame)
    np.testing.assert_allclose(draws.point, ref["glm_fit"], atol=1e-6)
    np.testing.assert_allclose(draws.se, ref["glm_se_fit"], atol=1e-6)
    fit, se = glm.predict(article_frame.data, se_fit=True)
    np.testing.assert_allclose(se, draws.se)
    bounds = poststratify(draws, article_frame, interval="cell-bounds").table.iloc[0]
    assert abs(bounds["estimate"] - ref["glm_poststrat"][0]) < 1e-6
    np.testing.assert_allclose([bounds["lower"], bounds["upper"]], ref["glm_poststrat_bounds_2se"], atol=1e-6)


def test_pooled_model(article_survey, article_frame, ref):
    glm = fit_article(article_survey, article_frame, "response ~ 1")
    np.testing.assert_allclose(cell_draws(glm, article_frame).point, ref["pooled_predict"], atol=1e-6)


def test_delta_method_sd_matches_simulation(article_survey, article_frame):
    glm = fit_article(article_survey, article_frame)
    delta = poststratify(cell_draws(glm, article_frame), article_frame, interval="delta").table.iloc[0]
    rng = np.random.default_rng(42)
    beta = rng.multivariate_normal(glm.beta, glm.cov, size=200_000)
    X = glm.design.fixed_matrix(article_frame.data)
    mu = 1 / (1 + np.exp(-(beta @ X.T)))
    est = mu @ article_frame.counts / article_frame.counts.sum()
    assert abs(delta["sd"] - est.std()) / est.std() < 0.02
    # the article's interval poststratifies cell bounds, which treats the cells as perfectly
    # correlated and is wider than the mean's own interval
    bounds = poststratify(cell_draws(glm, article_frame), article_frame, interval="cell-bounds").table.iloc[0]
    assert bounds["upper"] - bounds["lower"] > delta["upper"] - delta["lower"]


def test_rank_deficient_columns_are_dropped_as_r_does(recwarn):
    """A fixed interaction with an empty combination (a = 1, b = 2 has no respondents): R's glm
    gives that coefficient NA and predicts without it, lme4 drops the column; so do we, and say so.
    R 4.2.2 / lme4 1.1-31 on tests/fixtures/rank_deficient_survey.csv."""
    import pandas as pd

    from misterp import Frame, LaplaceEngine

    data = pd.read_csv(Path(__file__).parents[1] / "fixtures" / "rank_deficient_survey.csv")
    frame = Frame(pd.DataFrame({"a": [0, 1, 0, 1, 0, 1], "b": [0, 0, 1, 1, 2, 2], "N": [1] * 6}), "N")
    glm = GlmEngine().fit(prepare(Survey(data, "y"), frame, "y ~ factor(a)*factor(b)")[0])
    r_coef = [0.1670540667991, 0.0426664396794, -0.1362824083210, 0.0405852790075, 0.2586956391526]
    assert glm.design.dropped == ("a1:b2",)
    np.testing.assert_allclose(glm.beta, r_coef, atol=1e-6)  # R stops IRLS at a 1e-8 deviance change
    r_predict = [0.541666666629, 0.552238805792, 0.507692307692, 0.582278477249, 0.551724137765, 0.562251769683]
    np.testing.assert_allclose(cell_draws(glm, frame).point, r_predict, atol=1e-7)
    assert "rank deficient" in glm.problems()[0] and "a1:b2" in glm.problems()[0]
    mixed = LaplaceEngine().fit(prepare(Survey(data, "y"), None, "y ~ factor(a)*factor(b) + (1|g)")[0])
    r_fixef = [0.16705407, 0.04266644, -0.13628241, 0.04058528, 0.25869564]  # glmer: singular, so glm's
    np.testing.assert_allclose(mixed.beta, r_fixef, atol=1e-5)
    assert any("rank deficient" in p for p in mixed.problems())
