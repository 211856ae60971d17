"""The glm engine on a categorical outcome against nnet's multinom (tests/fixtures/r/make_categorical.R):
carData's Chile plebiscite survey, 2,521 respondents, four answers (A, N, U, Y; A the reference)."""

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from misterp import Frame, GlmEngine, Survey, cell_draws, poststratify
from misterp.model.cells import prepare
from misterp.model.family import CATEGORICAL

FORMULA = "vote ~ sex + education + region + age_group"


@pytest.fixture(scope="module")
def chile():
    survey = pd.read_csv(FIXTURES / "chile_survey.csv")
    frame = Frame(pd.read_csv(FIXTURES / "chile_frame.csv"), "n")
    cells, _ = prepare(Survey(survey, "vote"), frame, FORMULA, family=CATEGORICAL)
    return survey, frame, GlmEngine().fit(cells)


def test_multinomial_logit_matches_multinom(chile):
    _, _, fit = chile
    ref = pd.read_csv(FIXTURES / "categorical_multinom.csv")
    loglik = float(ref.loc[ref["term"] == "logLik", "estimate"].iloc[0])
    ref = ref[ref["term"] != "logLik"]
    names = (ref["category"] + ":" + ref["term"]).tolist()
    assert fit.family.categories == ("A", "N", "U", "Y") and fit.family.reference == "A"
    np.testing.assert_allclose(fit.coef[names], ref["estimate"], atol=2e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov().loc[names, names])), ref["se"], rtol=1e-3)
    assert fit.loglik == pytest.approx(loglik, abs=1e-6)


def test_shares_by_group_sum_to_one_and_match_the_raw_shares(chile):
    """region is a fixed factor and the frame is the survey's own cells, so each region's poststratified
    shares are its raw shares; the delta method and normal draws agree on their sds."""
    survey, frame, fit = chile
    delta = poststratify(cell_draws(fit, frame), frame, by="region")
    table = delta.table
    assert table.columns[:2].tolist() == ["region", "category"] and len(table) == 5 * 4
    raw = pd.crosstab(survey["region"], survey["vote"], normalize="index").stack()
    np.testing.assert_allclose(table.set_index(["region", "category"])["estimate"], raw.loc[list(
        zip(table["region"], table["category"]))], atol=1e-8)
    draws = poststratify(cell_draws(fit, frame, n_draws=4000, seed=2), frame, by="region", interval="draws")
    per_draw = draws.draws.reshape(4000, 5, 4).sum(axis=2)
    assert np.allclose(per_draw, 1.0)
    ratio = draws.table["sd"] / table["sd"]
    assert np.median(np.abs(ratio - 1)) < 0.05, ratio.describe()
