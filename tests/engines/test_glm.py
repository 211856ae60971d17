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
