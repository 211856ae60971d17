"""Continuous outcomes: glm, lmer (REML and ML, a singular fit), bootMer on lmer and stan_glmer
(family = gaussian) against R (tests/fixtures/r/make_gaussian.R: 1,500 simulated respondents,
crossed state and age intercepts, an education term with no variance, three states the survey
never reaches)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from misterp import (Frame, GlmEngine, LaplaceEngine, MisterpInputError, MisterpWarning, Survey, bootstrap,
                     cell_draws, poststratify, prepare)
from misterp.model.family import GAUSSIAN

FORMULA = "score ~ male + (1|state) + (1|age)"
MODELS = {"reml": (FORMULA, True), "ml": (FORMULA, False), "singular": (FORMULA + " + (1|edu)", True)}


def scalars(name):
    return pd.read_csv(FIXTURES / f"gaussian_{name}.csv").set_index("name")["value"]


def picked(r, prefix):
    return r[r.index.str.startswith(prefix)].to_numpy()


@pytest.fixture(scope="module")
def survey():
    return pd.read_csv(FIXTURES / "gaussian_survey.csv")


@pytest.fixture(scope="module")
def frame():
    return Frame(pd.read_csv(FIXTURES / "gaussian_frame.csv"), "N")


def fit_lmer(survey, frame, tag):
    formula, reml = MODELS[tag]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)  # the singular fit says so
        return LaplaceEngine(reml=reml).fit(prepare(Survey(survey, "score"), frame, formula, family=GAUSSIAN)[0])


def test_glm_matches_r(survey):
    fit = GlmEngine().fit(prepare(Survey(survey, "score"), None, "score ~ male + factor(age)", family=GAUSSIAN)[0])
    r = scalars("glm_scalars")
    np.testing.assert_allclose(fit.coef, picked(r, "coef:"), rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), picked(r, "se:"), rtol=1e-10)
    assert fit.loglik == pytest.approx(r["loglik"], abs=1e-8)
    # R's sigma(glm) = sqrt(RSS / (N - p)): the dispersion model checks and cross-validation replicate with
    np.testing.assert_allclose(np.sqrt(fit.dispersion_draws(3)), r["sigma"], rtol=1e-10)


@pytest.mark.parametrize("tag", list(MODELS))
def test_lmer_matches_lme4(tag, survey, frame):
    """Fixed effects, theta, sigma, REMLcrit or deviance, logLik and predictions within 1e-5 relative."""
    fit = fit_lmer(survey, frame, tag)
    r = scalars(f"lmer_{tag}_scalars")
    np.testing.assert_allclose(fit.beta, picked(r, "fixef:"), rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov())), picked(r, "se:"), rtol=1e-5)
    np.testing.assert_allclose(fit.theta, picked(r, "theta:"), rtol=1e-5, atol=1e-7)
    assert fit.sigma == pytest.approx(r["sigma"], rel=1e-5)
    assert fit.objective == pytest.approx(r["crit"], rel=1e-5) and fit.objective <= r["crit"] + 1e-6
    assert fit.loglik == pytest.approx(r["loglik"], rel=1e-5)
    if tag != "ml":
        assert fit.reml_criterion == fit.objective
    varcorr = fit.varcorr().set_index("term")["sd"]
    np.testing.assert_allclose(varcorr, picked(r, "sd:"), rtol=1e-5, atol=1e-7)
    assert varcorr.index[-1] == "Residual"
    assert fit.singular == bool(r["singular"]) and (fit.singular_terms() == ["edu"]) == (tag == "singular")
    pred = pd.read_csv(FIXTURES / f"gaussian_lmer_{tag}_predict.csv")["pred"].to_numpy()
    np.testing.assert_allclose(fit.predict(frame.data), pred, rtol=1e-5)  # unseen states: b = 0
    states = poststratify(cell_draws(fit, frame, seed=1), frame, by="state").table
    r_states = pd.read_csv(FIXTURES / f"gaussian_lmer_{tag}_state.csv")
    np.testing.assert_allclose(states["estimate"], r_states["estimate"], rtol=1e-5)
    assert poststratify(cell_draws(fit, frame, seed=1), frame).value == pytest.approx(r["overall"], rel=1e-5)


def test_summary_reads_like_lmer(survey, frame):
    text = fit_lmer(survey, frame, "reml").summary()
    assert text.startswith("Linear mixed model fit by REML") and "REML criterion at convergence: 8481\n" in text
    assert "Residual" in text


def test_bootstrap_sd_within_monte_carlo_error_of_bootmer(survey, frame):
    r = scalars("bootmer")
    boot = bootstrap(fit_lmer(survey, frame, "reml"), nsim=500, seed=20261127, progress=False)
    row = poststratify(cell_draws(boot, frame), frame).table.iloc[0]
    assert boot.failed == 0 and row["interval"] == "bootstrap ±2sd"
    assert abs(row["sd"] - r["boot_sd"]) < 4 * r["boot_sd"] / np.sqrt(2 * 499)


def test_bayes_matches_rstanarm(gaussian_bayes_fit):
    """stan_glmer(family = gaussian): priors scaled by sd(y), sigma ~ exponential(1 / sd(y)), group sds
    tied to sigma. State means within 0.1 posterior sd at the median and 0.35 at the worst; sigma's and the
    state sd's posterior means and sds within 10%. The age term has 5 levels and a long right tail: its
    sd's mean within 10%, its posterior sd within 20% (each side's Monte Carlo error is about 5%)."""
    fit, frame = gaussian_bayes_fit  # FORMULA, rstanarm's defaults, seed 3 (conftest.py)
    assert fit.divergences == 0
    ours = poststratify(cell_draws(fit, frame), frame, by="state").table
    theirs = pd.read_csv(FIXTURES / "gaussian_stan_state.csv")
    gap = np.abs(ours["estimate"].to_numpy() - theirs["mean"].to_numpy()) / theirs["sd"].to_numpy()
    assert np.median(gap) < 0.1 and gap.max() < 0.35
    r = scalars("stan_scalars")
    aux = fit._flat("aux")
    assert aux.mean() == pytest.approx(r["sigma_mean"], rel=0.1) and aux.std() == pytest.approx(r["sigma_sd"], rel=0.1)
    sigma = fit._flat("sigma")
    for k, (term, sd_tol) in enumerate([("state", 0.1), ("age", 0.2)]):
        key = f"Sigma[{term}:(Intercept),(Intercept)]"
        assert sigma[:, k].mean() == pytest.approx(r[f"sd_mean:{key}"], rel=0.1), term
        assert sigma[:, k].std() == pytest.approx(r[f"sd_sd:{key}"], rel=sd_tol), term
    assert fit.varcorr()["term"].tolist()[-1] == "Residual"


def test_bad_outcomes_are_named(survey):
    with pytest.raises(MisterpInputError, match=r"must hold finite numbers for --family gaussian, but rows 3"):
        prepare(Survey(survey.assign(score=survey["score"].where(survey.index != 2, np.inf)), "score"), None,
                FORMULA, family=GAUSSIAN)
    with pytest.raises(MisterpInputError, match="for a continuous outcome, use --family gaussian"):
        prepare(Survey(survey, "score"), None, FORMULA)
    with pytest.raises(MisterpInputError, match="takes one value for all"):
        prepare(Survey(survey.assign(score=3.0), "score"), None, FORMULA, family=GAUSSIAN)
    # a 0/1 outcome is allowed with gaussian (a linear probability model)
    cells, _ = prepare(Survey(survey.assign(score=(survey["score"] > 27).astype(int)), "score"), None, FORMULA,
                       family=GAUSSIAN)
    assert cells.family is GAUSSIAN
