"""summary() reads like lme4's printed summary(merMod), with R's numbers
(tests/fixtures/r/make_summaries.R: the article's glmer, the CCES seven-term model on 5,000 rows,
an lmer with a correlated slope)."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES, SEVEN_TERM
from misterp import GlmEngine, LaplaceEngine, MisterpWarning, Survey, prepare
from misterp.engines.summaries import r_format
from misterp.model.family import GAUSSIAN

NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]\d+)?"


def sections(text: str) -> list[str]:
    """The section headers in order."""
    keys = ["AIC", "REML criterion", "Random effects:", "Number of obs:", "Fixed effects:"]
    return [k for line in text.splitlines() for k in keys if line.strip().startswith(k)]


def criterion_row(text: str) -> list[float]:
    lines = text.splitlines()
    i = next(j for j, line in enumerate(lines) if line.split()[:2] == ["AIC", "BIC"])
    return [float(v) for v in lines[i + 1].split()]


def random_effects(text: str) -> list[tuple[float, float]]:
    """(variance, sd) of every row of the random-effects table."""
    lines = text.splitlines()
    start = lines.index("Random effects:") + 2
    rows = []
    for line in lines[start:]:
        if line.startswith("Number of obs"):
            break
        numbers = re.findall(NUMBER, line.replace("educ:age", "").replace("educ:eth", "").replace("male:eth", ""))
        rows.append((float(numbers[0]), float(numbers[1])))
    return rows


def fixed_effects(text: str) -> dict[str, list[float]]:
    lines = text.splitlines()
    start = lines.index("Fixed effects:") + 2
    out = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) < 4 or not re.fullmatch(NUMBER, parts[1]):
            break
        out[parts[0]] = [float(v) for v in parts[1:4]]
    return out


@pytest.fixture(scope="module")
def fits(article_survey, cces_all):
    rows = pd.read_csv(FIXTURES / "cces_sample5000_rows.csv")["row"].to_numpy() - 1
    gaussian = pd.read_csv(FIXTURES / "gaussian_survey.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        return {
            "article": LaplaceEngine().fit(prepare(Survey(article_survey, "response"), None, "response ~ (1|class)")[0]),
            "cces_seven_sample5000": LaplaceEngine().fit(prepare(Survey(cces_all.iloc[rows], "abortion"), None,
                                                                 SEVEN_TERM)[0]),
            "lmer_slope": LaplaceEngine().fit(prepare(Survey(gaussian, "score"), None,
                                                      "score ~ male + (1 + male | state) + (1 | age)",
                                                      family=GAUSSIAN)[0]),
        }


@pytest.mark.parametrize("name", ["article", "cces_seven_sample5000", "lmer_slope"])
def test_summary_has_lme4s_layout_and_numbers(fits, name):
    ours = fits[name].summary()
    theirs = (FIXTURES / f"summary_{name}.txt").read_text()
    assert sections(ours) == sections(theirs)
    if "AIC" in sections(theirs):
        np.testing.assert_allclose(criterion_row(ours), criterion_row(theirs), atol=0.051)
    else:
        assert "REML criterion at convergence: 8481" in ours
    np.testing.assert_allclose(random_effects(ours), random_effects(theirs), rtol=2e-3, atol=6e-5)
    ours_fixed, theirs_fixed = fixed_effects(ours), fixed_effects(theirs)
    assert list(ours_fixed) == list(theirs_fixed)
    for term, (estimate, se, z) in theirs_fixed.items():
        assert ours_fixed[term][0] == pytest.approx(estimate, abs=2e-4)
        assert ours_fixed[term][1] == pytest.approx(se, rel=1e-3)  # lme4's SEs: the full Hessian's inverse
        assert ours_fixed[term][2] == pytest.approx(z, abs=0.01)
    assert "Number of obs: " + theirs.split("Number of obs: ")[1].split(",")[0] in ours


def test_r_format_follows_rs_common_decimals():
    assert r_format([0.508993], 4) == ["0.509"]
    assert r_format([0.10967, 0.0, 0.013207], 4) == ["0.10967", "0.00000", "0.01321"]
    assert r_format([-0.27438, 0.42264], 5) == ["-0.27438", "0.42264"]


def test_every_fit_prints_and_reprs(fits, article_survey, article_fit):
    glm = GlmEngine().fit(prepare(Survey(article_survey, "response"), None, "response ~ factor(class)")[0])
    assert "Coefficients:" in glm.summary() and "class5" in glm.summary()
    assert "Median MAD_SD" in article_fit.summary() and "Num. levels: class 5" in article_fit.summary()
    for fit in (glm, fits["article"], article_fit):
        assert repr(fit).startswith("<") and "cells" in repr(fit)
