"""Counts with an exposure: glm, glmer, bootMer and stan_glmer (family = poisson) against R
(tests/fixtures/r/make_poisson.R: 2,000 simulated respondents, crossed state and age intercepts,
three frame states the survey never reaches)."""

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from misterp import (Frame, GlmEngine, LaplaceEngine, MisterpInputError, Survey, bootstrap, cell_draws, poststratify,
                     prepare)
from misterp.model.family import POISSON

GLMER = "visits ~ male + (1|state) + (1|age) + offset(log(years))"


def scalars(name):
    return pd.read_csv(FIXTURES / f"poisson_{name}.csv").set_index("name")["value"]


@pytest.fixture(scope="module")
def survey():
    return pd.read_csv(FIXTURES / "poisson_survey.csv")


@pytest.fixture(scope="module")
def frame():
    return Frame(pd.read_csv(FIXTURES / "poisson_frame.csv"), "N")


@pytest.fixture(scope="module")
def glmer_fit(survey, frame):
    return LaplaceEngine().fit(prepare(Survey(survey, "visits"), frame, GLMER, family=POISSON)[0])


def test_glm_matches_r(survey, frame):
    cells, _ = prepare(Survey(survey, "visits"), None, "visits ~ male + factor(age) + offset(log(years))",
                       family=POISSON)
    fit = GlmEngine().fit(cells)
    r = scalars("glm_scalars")
    np.testing.assert_allclose(fit.coef, r[r.index.str.startswith("coef:")], rtol=1e-7)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), r[r.index.str.startswith("se:")], rtol=1e-5)
    assert fit.loglik == pytest.approx(r["loglik"], abs=1e-6)
    seen = frame.data[frame.data["state"].isin(survey["state"])]
    np.testing.assert_allclose(fit.predict(seen), pd.read_csv(FIXTURES / "poisson_glm_predict.csv")["pred"],
                               rtol=1e-7)


@pytest.mark.parametrize("formula, exposure", [(GLMER, None), ("visits ~ male + (1|state) + (1|age)", "years")])
def test_glmer_matches_lme4(formula, exposure, survey, frame):
    """offset(log(years)) and --exposure years are the same model; both give lme4's fit and logLik."""
    cells, _ = prepare(Survey(survey, "visits", exposure=exposure), frame, formula, family=POISSON)
    fit = LaplaceEngine().fit(cells)
    r = scalars("glmer_scalars")
    np.testing.assert_allclose(fit.fixef(), r[["fixef:(Intercept)", "fixef:male"]], atol=2e-5)
    np.testing.assert_allclose(fit.varcorr().set_index("term")["sd"][["state", "age"]], r[["sd:state", "sd:age"]],
                               atol=2e-5)
    assert fit.loglik >= r["loglik"] - 1e-6 and fit.loglik == pytest.approx(r["loglik"], abs=1e-5)
    assert not fit.singular and fit.problems() == []
    pred = pd.read_csv(FIXTURES / "poisson_glmer_predict.csv")["pred"].to_numpy()
    np.testing.assert_allclose(fit.predict(frame.data), pred, rtol=1e-5)  # unseen states: b = 0
    states = poststratify(cell_draws(fit, frame, seed=1), frame, by="state").table
    r_states = pd.read_csv(FIXTURES / "poisson_glmer_state.csv")
    assert states["state"].tolist() == r_states["state"].tolist()
    np.testing.assert_allclose(states["estimate"], r_states["estimate"], atol=1e-4)
    overall = poststratify(cell_draws(fit, frame, seed=1), frame)
    assert overall.value == pytest.approx(r["overall"], abs=1e-4)
    rate = poststratify(cell_draws(fit, frame, seed=1), frame, weight="person_years")
    assert rate.value == pytest.approx(r["rate"], abs=1e-4)
    assert rate.table["population"].iloc[0] == frame.counts.sum()


def test_bootstrap_sd_within_monte_carlo_error_of_bootmer(glmer_fit, frame):
    r = scalars("bootmer")
    boot = bootstrap(glmer_fit, nsim=500, seed=20261127, progress=False)
    row = poststratify(cell_draws(boot, frame), frame).table.iloc[0]
    assert boot.failed == 0 and row["interval"] == "bootstrap ±2sd"
    assert abs(row["sd"] - r["boot_sd"]) < 4 * r["boot_sd"] / np.sqrt(2 * 499)


def test_bayes_matches_rstanarm(poisson_bayes_fit):
    """stan_glmer(family = poisson) with rstanarm's defaults: state means within 0.1 posterior sd at the
    median state and 0.35 at the worst; the group sds' posterior means and sds within 10%."""
    fit, frame = poisson_bayes_fit  # GLMER, rstanarm's defaults, seed 3 (conftest.py)
    assert fit.divergences == 0
    ours = poststratify(cell_draws(fit, frame), frame, by="state").table
    theirs = pd.read_csv(FIXTURES / "poisson_stan_state.csv")
    gap = np.abs(ours["estimate"].to_numpy() - theirs["mean"].to_numpy()) / theirs["sd"].to_numpy()
    assert np.median(gap) < 0.1 and gap.max() < 0.35
    r = scalars("stan_scalars")
    sigma = fit._flat("sigma")
    for k, term in enumerate(fit.design.group_names):
        key = f"Sigma[{term}:(Intercept),(Intercept)]"
        assert sigma[:, k].mean() == pytest.approx(r[f"sd_mean:{key}"], rel=0.1), term
        assert sigma[:, k].std() == pytest.approx(r[f"sd_sd:{key}"], rel=0.1), term


@pytest.mark.parametrize("mutate, kwargs, fragment", [
    (lambda d: d.assign(visits=d["visits"] - 3), {}, "must hold counts (whole numbers >= 0)"),
    (lambda d: d.assign(visits=d["visits"] + 0.5), {}, "must hold counts"),
    (lambda d: d.assign(years=0.0), {"exposure": "years"}, "Exposure column 'years' must hold positive numbers"),
])
def test_bad_counts_and_exposures_are_named(survey, mutate, kwargs, fragment):
    with pytest.raises(MisterpInputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        prepare(Survey(mutate(survey), "visits", **kwargs), None, "visits ~ male + (1|state)", family=POISSON)


def test_bad_offset_and_family_mismatches_are_named(survey):
    with pytest.raises(MisterpInputError, match="offset column 'years' must hold positive numbers"):
        prepare(Survey(survey.assign(years=-1.0), "visits"), None, GLMER, family=POISSON)
    with pytest.raises(MisterpInputError, match="use --family poisson"):
        prepare(Survey(survey, "visits"), None, "visits ~ male + (1|state)")
    with pytest.raises(MisterpInputError, match="goes with a count outcome"):
        prepare(Survey(survey.assign(v=survey["visits"] > 0), "v", exposure="years"), None, "v ~ (1|state)")
