"""An ordinal outcome (cumulative logit) against ordinal::clmm and clm (tests/fixtures/r/make_ordinal.R):
carData's World Values Survey, 5,381 respondents, poverty Too Little < About Right < Too Much."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from misterp import Frame, GlmEngine, LaplaceEngine, Survey, cell_draws, poststratify
from misterp.model.cells import prepare
from misterp.model.family import ORDINAL

LEVELS = ("Too Little", "About Right", "Too Much")
FORMULA = "poverty ~ religion + degree + gender + (1|country) + (1|age_group)"


@pytest.fixture(scope="module")
def wvs():
    survey = Survey(pd.read_csv(FIXTURES / "wvs_survey.csv"), "poverty")
    frame = Frame(pd.read_csv(FIXTURES / "wvs_frame.csv"), "n")
    cells, _ = prepare(survey, frame, FORMULA, family=replace(ORDINAL, categories=LEVELS))
    return cells, frame, LaplaceEngine().fit(cells)


def test_laplace_is_clmm(wvs):
    """Cut points, slopes, sds and logLik as clmm's (Laplace, nAGQ = 1); level shares by group within 1e-4."""
    cells, frame, fit = wvs
    ref = pd.read_csv(FIXTURES / "ordinal_clmm_scalars.csv").set_index("name")["value"]
    names = [f"theta:{n}" for n in fit.family.predictor_names] + ["beta:religionyes", "beta:degreeyes",
                                                                   "beta:gendermale"]
    np.testing.assert_allclose(fit.coef.to_numpy(), ref[names].to_numpy(), atol=1e-4)
    sd = fit.varcorr().set_index("term")["sd"]
    assert sd["country"] == pytest.approx(ref["sd:country"], abs=1e-4)
    assert sd["age_group"] == pytest.approx(ref["sd:age_group"], abs=1e-4)
    assert fit.loglik >= ref["logLik"] - 1e-6
    for by in ("country", "age_group"):
        ours = poststratify(cell_draws(fit, frame, seed=1), frame, by=by).table
        theirs = pd.read_csv(FIXTURES / f"ordinal_clmm_{by}.csv")
        assert ours[[by, "category"]].astype(str).values.tolist() == theirs[[by, "category"]].astype(str).values.tolist()
        assert np.abs(ours["estimate"].to_numpy() - theirs["share"].to_numpy()).max() < 1e-4


def test_without_group_terms_the_glm_engine_is_clm():
    """clm(poverty ~ religion + degree + gender + country): logLik -5226.856 (R's ordinal 2022.11)."""
    survey = Survey(pd.read_csv(FIXTURES / "wvs_survey.csv"), "poverty")
    cells, _ = prepare(survey, None, "poverty ~ religion + degree + gender + country",
                       family=replace(ORDINAL, categories=LEVELS))
    fit = GlmEngine().fit(cells)
    assert fit.loglik == pytest.approx(-5226.856065, abs=1e-5)
    assert fit.coef["Too Little|About Right"] == pytest.approx(0.28016691, abs=1e-6)
    assert fit.coef["countryUSA"] == pytest.approx(0.66319061, abs=1e-6)


def test_unseen_levels_share_one_draw_across_cut_points(wvs):
    """A country the survey lacks: its effect is one N(0, sd^2) draw, entering every cut point with sign -1,
    so each draw's level shares are a cumulative logit's (ordered cumulative shares) and sum to 1."""
    cells, frame, fit = wvs
    data = frame.data.copy()
    data.loc[data["country"] == "Norway", "country"] = "Denmark"
    other = Frame(data, "n")
    est = poststratify(cell_draws(fit, other, seed=2), other, by="country")
    assert est.unseen == {"country": ["Denmark"]}
    draws = est.draws.reshape(len(est.draws), 4, 3)
    assert np.allclose(draws.sum(axis=2), 1.0) and (draws > 0).all()
    denmark = est.table[est.table["country"] == "Denmark"]
    assert (denmark["sd"] > 2 * est.table[est.table["country"] == "Sweden"]["sd"].to_numpy()).all()


@pytest.mark.slow
def test_bayes_matches_brms_cumulative(wvs):
    """brms cumulative() with its default priors (tests/fixtures/r/make_ordinal.R): level shares by group
    within 0.1 posterior sd at the median and 0.35 at worst, sds within 10% and 30%."""
    from misterp import BayesEngine

    cells, frame, _ = wvs
    fit = BayesEngine(seed=1, progress=False).fit(cells)
    assert fit.divergences == 0
    for by in ("country", "age_group"):
        path = FIXTURES / f"ordinal_brms_{by}.csv"
        if not path.exists():
            pytest.skip("brms's cumulative() reference is not recorded")
        ours, ref = poststratify(cell_draws(fit, frame), frame, by=by).table, pd.read_csv(path)
        assert ours[[by, "category"]].astype(str).values.tolist() == ref[[by, "category"]].astype(str).values.tolist()
        gap = np.abs(ours["estimate"].to_numpy() - ref["mean"].to_numpy()) / ref["sd"].to_numpy()
        ratio = np.abs(ours["sd"].to_numpy() / ref["sd"].to_numpy() - 1)
        assert np.median(gap) < 0.1 and gap.max() < 0.35, (by, np.median(gap), gap.max())
        assert np.median(ratio) < 0.1 and ratio.max() < 0.3, (by, np.median(ratio), ratio.max())


@pytest.mark.slow
def test_rstanarm_style_priors_give_one_posterior_in_both_coordinates():
    """Priors(family_style="rstanarm"): normal intercepts and slopes, exponential sds; sampled whitened and in
    brms's own non-centred coordinates, the level shares by country agree within a fifth of their sd."""
    from misterp import BayesEngine, Priors

    survey = Survey(pd.read_csv(FIXTURES / "wvs_survey.csv"), "poverty")
    frame = Frame(pd.read_csv(FIXTURES / "wvs_frame.csv"), "n")
    cells, _ = prepare(survey, frame, "poverty ~ religion + gender + (1|country)",
                       family=replace(ORDINAL, categories=LEVELS))
    tables = []
    for parameterization in ("whitened", "noncentred"):
        engine = BayesEngine(seed=3, chains=2, warmup=500, draws=1000, progress=False, remedy=False,
                             priors=Priors(family_style="rstanarm"), parameterization=parameterization)
        tables.append(poststratify(cell_draws(engine.fit(cells), frame), frame, by="country").table)
    gap = np.abs(tables[0]["estimate"] - tables[1]["estimate"]) / tables[1]["sd"]
    assert gap.max() < 0.2, gap.max()
    assert np.allclose(tables[0]["sd"] / tables[1]["sd"], 1.0, atol=0.15)
