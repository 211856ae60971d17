"""The short version of bench/coverage.py: on the article's design, the glm and laplace engines'
default 95% intervals for the population mean cover the truth as often as they claim.

Each replication draws the article's 1,000-respondent non-response survey anew (numpy streams),
fits, poststratifies, and checks whether the interval holds sum(p N) / sum(N) = 0.4413.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, GlmEngine, LaplaceEngine, MisterpWarning, Survey, prepare
from misterp.results.draws import cell_draws
from misterp.results.poststratify import poststratify
from misterp.sim.simulate import CLASSES, P_RESPONSE, P_SUPPORT, POPULATION

REPS = 200
FRAME = Frame(pd.DataFrame({"class": CLASSES, "N": POPULATION}), "N")
TRUTH = float(np.sum(P_SUPPORT * POPULATION) / POPULATION.sum())


def _covered(engine, formula: str, rep: int) -> bool:
    rng = np.random.default_rng(rep)
    people = rng.choice(CLASSES, 1000, p=P_RESPONSE / P_RESPONSE.sum())
    survey = pd.DataFrame({"response": rng.binomial(1, P_SUPPORT[people - 1]), "class": people})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        fit = engine.fit(prepare(Survey(survey, "response"), FRAME, formula)[0])
    row = poststratify(cell_draws(fit, FRAME, n_draws=400, seed=rep), FRAME).table.iloc[0]
    return bool(row["lower"] <= TRUTH <= row["upper"])


@pytest.mark.parametrize("engine, formula", [(GlmEngine(), "response ~ factor(class)"),
                                             (LaplaceEngine(), "response ~ (1|class)")], ids=["glm", "laplace"])
def test_default_interval_covers_the_article_truth_at_its_nominal_rate(engine, formula):
    rate = np.mean([_covered(engine, formula, rep) for rep in range(REPS)])
    # three binomial standard errors of 200 replications around 95%: 0.904-0.996
    assert abs(rate - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / REPS), rate
