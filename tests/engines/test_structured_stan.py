"""Structured terms against Stan programs written for the same models and priors.

tests/fixtures/stan/structured.stan, run by tests/fixtures/r/make_structured_stan.R (rstan 2.21, 4 chains,
R-hat <= 1.01) on the biased 4,000-row CCES sample: the poststratified state and age estimates' posterior
means and sds (tests/fixtures/structured_<model>_{state,age}.csv) and the hyperparameters' (..._scalars.csv).
The inla engine must match the posterior (means within 0.1 posterior sd at the median group and 0.35 at
worst, sds within 10% and 30%); the laplace engine, the posterior's hyperparameter mode, must put the group
estimates within 0.01 of Stan's means; the bayes engine (slow) as inla.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import CCES, FIXTURES
from misterp import BayesEngine, Frame, InlaEngine, LaplaceEngine, MisterpWarning, Survey, cell_draws, poststratify
from misterp.data.adjacency import read_adjacency
from misterp.model.cells import prepare

FORMULAS = {
    "rw1": "abortion ~ male + (1|eth) + (1|educ) + (1|state) + rw1(age)",
    "rw2": "abortion ~ male + (1|eth) + (1|educ) + (1|state) + rw2(age)",
    "ar1": "abortion ~ male + (1|eth) + (1|educ) + (1|state) + ar1(age)",
    "icar": "abortion ~ male + (1|eth) + (1|educ) + (1|age) + icar(state)",
    "bym2": "abortion ~ male + bym2(state) + (1|eth) + (1|educ) + rw1(age)",
}


@pytest.fixture(scope="module")
def data(cces_all):
    rows = pd.read_csv(FIXTURES / "cces_biased4000_rows.csv")["row"]
    return Survey(cces_all.iloc[rows - 1], "abortion"), Frame(pd.read_csv(CCES / "poststrat_df.csv"), "n")


def _reference(model: str, by: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / f"structured_{model}_{by}.csv")


def _scalars(model: str) -> pd.Series:
    table = pd.read_csv(FIXTURES / f"structured_{model}_scalars.csv")
    return table.set_index("name")["value"].astype(float)


def _fit(engine, data, model):
    survey, frame = data
    cells, _ = prepare(survey, frame, FORMULAS[model], adjacency=read_adjacency("us-states"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        fit = engine.fit(cells)
    return fit, cell_draws(fit, frame)


def _gaps(draws, frame, model, by):
    ours, ref = poststratify(draws, frame, by=by).table, _reference(model, by)
    assert ours[by].astype(str).tolist() == ref[by].astype(str).tolist()
    gap = np.abs(ours["estimate"].to_numpy() - ref["mean"].to_numpy())
    return gap, gap / ref["sd"].to_numpy(), np.abs(ours["sd"].to_numpy() / ref["sd"].to_numpy() - 1)


def _check_posterior(fit, draws, frame, model):
    for by in ("state", "age"):
        _, gap, ratio = _gaps(draws, frame, model, by)
        assert np.median(gap) < 0.1 and gap.max() < 0.35, (by, np.median(gap), gap.max())
        assert np.median(ratio) < 0.1 and ratio.max() < 0.3, (by, np.median(ratio), ratio.max())


@pytest.mark.parametrize("model", sorted(FORMULAS))
def test_inla_matches_the_stan_posterior(data, model):
    fit, draws = _fit(InlaEngine(), data, model)
    _check_posterior(fit, draws, data[1], model)
    # the structured term's hyperparameters: posterior means within a quarter of Stan's posterior sd
    scalars, table = _scalars(model), fit.hyper_table()
    term = next(name for name in fit.design.group_names if "(" in name)
    for kind in ("sd", "rho"):
        if f"{kind}_mean:{term}" in scalars:
            ours = table.loc[f"{kind} for {term}", "mean"]
            assert abs(ours - scalars[f"{kind}_mean:{term}"]) < 0.25 * scalars[f"{kind}_sd:{term}"], (kind, ours)


@pytest.mark.parametrize("model", sorted(FORMULAS))
def test_laplace_group_estimates_within_a_hundredth_of_stan(data, model):
    fit, draws = _fit(LaplaceEngine(), data, model)
    assert fit.method == "normal-approx"
    for by in ("state", "age"):
        gap, _, _ = _gaps(draws, data[1], model, by)
        assert gap.max() < 0.01, (by, gap.max())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bym2", "icar", "ar1"])
def test_bayes_matches_the_stan_posterior_without_divergences(data, model):
    """Whitened coordinates (ar1's with its tridiagonal precision): no divergences at the default adapt_delta,
    so no rerun, in under 40 leapfrog steps an iteration."""
    fit, draws = _fit(BayesEngine(seed=1, progress=False), data, model)
    assert fit.divergences == 0 and not fit.remedy_note and fit.mean_steps < 40
    _check_posterior(fit, draws, data[1], model)


def test_inla_matches_brms_bym2_without_islands(cces_all):
    """brms's car(type = "bym2") on the 48 contiguous states (no islands, which brms cannot take), with its
    priors set to ours (tests/fixtures/r/make_bym2_brms.R): the state estimates as against Stan."""
    rows = pd.read_csv(FIXTURES / "cces_biased4000_rows.csv")["row"]
    survey = cces_all.iloc[rows - 1]
    survey = Survey(survey[~survey["state"].isin(["AK", "HI"])], "abortion")
    frame = pd.read_csv(CCES / "poststrat_df.csv")
    frame = Frame(frame[~frame["state"].isin(["AK", "HI"])], "n")
    cells, _ = prepare(survey, frame, "abortion ~ male + (1|eth) + (1|educ) + (1|age) + bym2(state)",
                       adjacency=read_adjacency("us-states"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        fit = InlaEngine().fit(cells)
    ours, ref = poststratify(cell_draws(fit, frame), frame, by="state").table, pd.read_csv(
        FIXTURES / "bym2_brms_state.csv")
    assert ours["state"].tolist() == ref["state"].tolist()
    gap = np.abs(ours["estimate"].to_numpy() - ref["mean"].to_numpy()) / ref["sd"].to_numpy()
    ratio = np.abs(ours["sd"].to_numpy() / ref["sd"].to_numpy() - 1)
    assert np.median(gap) < 0.1 and gap.max() < 0.35, (np.median(gap), gap.max())
    assert np.median(ratio) < 0.1 and ratio.max() < 0.3, (np.median(ratio), ratio.max())
