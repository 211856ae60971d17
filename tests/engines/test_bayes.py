"""The stan_glmer-equivalent engine: priors, posterior_epred, diagnostics (seeded, CPU)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, MisterpWarning, Survey, cell_draws, poststratify, prepare
from misterp.engines.bayes import BayesEngine, Priors
from misterp.engines.diagnostics import ess_bulk, rhat

R_CLASS_MEANS = [0.6507, 0.6680, 0.3635, 0.3739, 0.2593]  # rstanarm 2.21.3's run (NOTES.md)


def test_article_model_within_monte_carlo_error_of_rstanarm(article_fit, article_frame):
    draws = cell_draws(article_fit, article_frame)
    np.testing.assert_allclose(draws.point, R_CLASS_MEANS, atol=0.006)
    row = poststratify(draws, article_frame, interval="draws").table.iloc[0]
    assert abs(row["estimate"] - 0.4365) < 0.006
    np.testing.assert_allclose([row["lower"], row["upper"]], [0.3982, 0.4748], atol=0.006)
    diag = article_fit.diagnostics()
    assert diag["rhat"].max() <= 1.01 and diag["ess_bulk"].min() >= 400
    assert article_fit.divergences == 0 and article_fit.problems() == []
    assert next(cell_draws(article_fit, article_frame).draws.chunks(10_000)).shape == (4000, 5)


def test_no_data_recovers_the_priors(article_survey):
    """Without the likelihood (rstanarm's prior_PD) the draws are the priors:
    normal(0, 2.5) on the intercept, normal(0, 2.5 / sd(x)) and exponential(1)."""
    data = article_survey.assign(x=np.tile([0.0, 1.0, 2.0, 3.0], 250))
    cells, _ = prepare(Survey(data, "response"), None, "response ~ x + (1|class)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        fit = BayesEngine(chains=2, warmup=500, draws=2000, seed=3, progress=False, prior_only=True).fit(cells)
    assert fit._flat("alpha").std() == pytest.approx(2.5, rel=0.08)
    assert fit._flat("sigma").mean() == pytest.approx(1.0, rel=0.08)
    assert fit._flat("sigma").std() == pytest.approx(1.0, rel=0.1)
    assert fit._flat("beta")[:, 0].std() == pytest.approx(2.5 / data["x"].std(ddof=1), rel=0.08)


def test_unseen_levels_share_one_draw_per_term(article_fit):
    frame = Frame(pd.DataFrame({"class": [1, 6, 7], "N": [1, 1, 1]}), "N")
    draws = cell_draws(article_fit, frame)
    assert draws.unseen == {"class": ["6", "7"]}
    sims = next(draws.draws.chunks(10_000))
    np.testing.assert_array_equal(sims[:, 1], sims[:, 2])
    logit = np.log(sims[:, 1] / (1 - sims[:, 1]))
    intercept = article_fit.coef_draws()[:, 0]
    sigma = article_fit._flat("sigma")[:, 0]
    assert np.var(logit) == pytest.approx(np.var(intercept) + np.mean(sigma ** 2), rel=0.15)


def test_bad_run_warns_with_a_remedy(article_survey, article_frame):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    with pytest.warns(MisterpWarning, match="run more draws"):  # test_reproducibility's program: compiled once
        BayesEngine(chains=2, warmup=100, draws=100, seed=1, progress=False).fit(cells)


def test_diagnostics_flag_disagreeing_chains():
    rng = np.random.default_rng(0)
    good = rng.standard_normal((4, 1000))
    assert rhat(good) < 1.01 and ess_bulk(good) > 3000
    shifted = good + np.array([[0.0], [0.0], [0.0], [1.0]])
    assert rhat(shifted) > 1.05


def test_case_study_priors_are_settable(article_survey, article_frame):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        fit = BayesEngine(chains=2, warmup=300, draws=300, seed=4, progress=False,
                          priors=Priors(coef_scale=1.0, sd_scale=0.5), adapt_delta=0.99).fit(cells)
    np.testing.assert_allclose(fit._flat("sigma"), 0.5 * fit._flat("tau"))


def test_arviz_export_on_request(article_fit):
    import sys

    idata = article_fit.to_arviz()
    assert idata.posterior["sigma"].shape == (4, 1000, 1)
    assert "arviz" in sys.modules


def test_cli_path_does_not_import_arviz():
    import subprocess
    import sys

    code = ("import sys, misterp.apps.cli, misterp.engines.bayes, misterp.engines.diagnostics; "
            "print('arviz' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_divergences_trigger_the_documented_remedy():
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.integers(0, 2, 80), "g": np.repeat(np.arange(40), 2), "h": np.tile(np.arange(8), 10)})
    cells, _ = prepare(Survey(data, "y"), None, "y ~ (1|g) + (1|h)")
    settings = dict(seed=3, progress=False, adapt_delta=0.3, chains=2, warmup=100, draws=100,
                    parameterization="noncentred")  # the remedy does not depend on it; it compiles faster
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        plain = BayesEngine(remedy=False, **settings).fit(cells)
        remedied = BayesEngine(**settings).fit(cells)
    assert plain.divergences > 0 and plain.remedy_note == ""
    assert remedied.engine.adapt_delta == 0.99
    assert remedied.remedy_note.startswith(f"{plain.divergences} divergent transitions at adapt_delta 0.3: reran")
    assert remedied.divergences < plain.divergences


def test_rank_normalisation_matches_scipy():
    from scipy.stats import norm, rankdata

    from misterp.engines.diagnostics import _rank_normal

    x = np.random.default_rng(1).integers(0, 7, (4, 50)).astype(float)  # many ties
    expected = norm.ppf((rankdata(x, method="average").reshape(x.shape) - 0.375) / (x.size + 0.25))
    np.testing.assert_allclose(_rank_normal(x), expected, rtol=1e-12)


@pytest.mark.slow
def test_cces_seven_term_model_samples_cleanly_and_agrees_with_laplace(cces_all, cces_frame):
    """The issue's CCES benchmark model on the 5,000-row sample, rstanarm's defaults (about 35 s)."""
    from conftest import FIXTURES

    from misterp import LaplaceEngine

    formula = ("abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) "
               "+ (1|male:eth)")
    rows = pd.read_csv(FIXTURES / "cces_sample5000_rows.csv")["row"].to_numpy() - 1
    cells, _ = prepare(Survey(cces_all.iloc[rows], "abortion"), cces_frame, formula)
    fit = BayesEngine(seed=1, progress=False).fit(cells)
    assert fit.divergences == 0 and fit.remedy_note == "" and fit.problems() == []
    diag = fit.diagnostics()
    assert diag["rhat"].max() <= 1.01 and min(diag["ess_bulk"].min(), diag["ess_tail"].min()) >= 938  # rstanarm's
    ours = poststratify(cell_draws(fit, cces_frame), cces_frame, by="state").table["estimate"].to_numpy()
    laplace = cell_draws(LaplaceEngine().fit(cells), cces_frame, seed=1)
    theirs = poststratify(laplace, cces_frame, by="state").table["estimate"].to_numpy()
    assert np.abs(ours - theirs).max() < 0.01


def test_fixed_effects_only_model_agrees_with_glm(article_survey, article_frame):
    from misterp import GlmEngine

    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ factor(class)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        fit = BayesEngine(chains=2, warmup=500, draws=500, seed=2, progress=False).fit(cells)
    assert fit.b_draws().shape == (1000, 0) and fit.varcorr().empty
    ours = poststratify(cell_draws(fit, article_frame), article_frame).table.iloc[0]
    glm = poststratify(cell_draws(GlmEngine().fit(cells), article_frame), article_frame).table.iloc[0]
    assert abs(ours["estimate"] - glm["estimate"]) < 0.005
    assert ours["sd"] == pytest.approx(glm["sd"], rel=0.15)


@pytest.mark.slow  # two compilations (the sampler and the timed gradient): 16 s
def test_a_run_beyond_an_hour_warns_and_names_the_laplace_engine(article_survey, article_frame, monkeypatch):
    """The engine times the model's gradient before sampling and extrapolates; a run it expects
    to pass LONG_RUN_SECONDS warns first. Here the thresholds are lowered so the article's model
    trips them."""
    import misterp.engines.bayes.engine as bayes

    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    monkeypatch.setattr(bayes, "ESTIMATE_MIN_WORK", 0)
    monkeypatch.setattr(bayes, "LONG_RUN_SECONDS", 1e-3)
    with pytest.warns(MisterpWarning, match=r"hours to sample here \(2 chains x 100 iterations .* laplace engine"):
        BayesEngine(chains=2, warmup=50, draws=50, progress=False, remedy=False).fit(cells)
    monkeypatch.setattr(bayes, "LONG_RUN_SECONDS", 3600.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MisterpWarning)  # an article-sized run expects seconds: no warning
        bayes.BayesEngine(chains=2, warmup=50, draws=50, progress=False)._warn_if_long(
            {**bayes.model_data(cells, Priors()), "prior_only": False}, False)
