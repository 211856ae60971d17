"""The laplace engine's fit of a family with several linear predictors (engines/stacked.py)."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from conftest import FIXTURES
from misterp import Frame, LaplaceEngine, Survey, cell_draws, poststratify
from misterp.engines.stacked import LaplaceObjective, Layout
from misterp.model.cells import prepare
from misterp.model.family import CATEGORICAL

CHILE = "vote ~ sex + education + (1|region) + (1|age_group)"


@pytest.fixture(scope="module")
def cces_biased(cces_all):
    rows = pd.read_csv(FIXTURES / "cces_biased4000_rows.csv")["row"]
    return cces_all.iloc[rows - 1]


@pytest.fixture(scope="module")
def chile():
    survey = Survey(pd.read_csv(FIXTURES / "chile_survey.csv"), "vote")
    frame = Frame(pd.read_csv(FIXTURES / "chile_frame.csv"), "n")
    cells, _ = prepare(survey, frame, CHILE, family=CATEGORICAL)
    return cells, frame, LaplaceEngine().fit(cells)


def test_two_categories_are_glmer(cces_biased):
    """A categorical outcome of two answers is a yes/no one: its fit is lme4's glmer to rounding."""
    formula = "abortion ~ male + (1|eth) + (1|age) + (1|state)"
    binary = LaplaceEngine().fit(prepare(Survey(cces_biased, "abortion"), None, formula)[0])
    named = cces_biased.assign(choice=np.where(cces_biased["abortion"] == 1, "yes", "no"))
    cells, _ = prepare(Survey(named, "choice"), None, formula.replace("abortion", "choice"), family=CATEGORICAL)
    fit = LaplaceEngine().fit(cells)
    assert fit.loglik == pytest.approx(binary.loglik, abs=1e-6)
    np.testing.assert_allclose(fit.fixed, binary.fixef().to_numpy(), atol=1e-5)
    np.testing.assert_allclose(fit.sds, binary.varcorr()["sd"].to_numpy(), atol=1e-4)
    np.testing.assert_allclose(fit.b, binary.point_coef()[2:], atol=1e-4)


def test_the_maximum_beats_a_direct_maximisation_of_the_same_laplace_approximation(chile):
    cells, _, fit = chile
    layout = Layout(cells)
    objective = LaplaceObjective(cells, layout)
    k = layout.n_fixed

    def f(x):  # sds as |x| keeps the direct search unconstrained
        return objective.full(x[:k], np.abs(x[k:]))

    direct = minimize(f, np.concatenate([np.zeros(k), np.full(layout.n_sd, 0.5)]), method="Powell",
                      options={"xtol": 1e-8, "ftol": 1e-12, "maxfev": 40000})
    assert fit.loglik >= -0.5 * direct.fun - 1e-6, (fit.loglik, -0.5 * direct.fun)
    assert fit.converged


def test_shares_sum_to_one_in_every_draw(chile):
    cells, frame, fit = chile
    est = poststratify(cell_draws(fit, frame, seed=3), frame, by="age_group")
    assert est.table["category"].tolist()[:4] == ["A", "N", "U", "Y"]
    assert np.allclose(est.draws.reshape(len(est.draws), 6, 4).sum(axis=2), 1.0)
    assert np.allclose(est.table.groupby("age_group")["estimate"].sum(), 1.0)
    assert (est.table["lower"] < est.table["estimate"]).all() and (est.table["estimate"] < est.table["upper"]).all()


def test_bayes_samples_brms_categorical_model(chile, tmp_path):
    """A short run: brms's categorical() priors, shares that sum to 1 in every draw and sit near the Laplace
    fit's, and a saved fit that predicts the same."""
    from misterp import BayesEngine, load_fit, save_fit

    cells, frame, laplace = chile
    fit = BayesEngine(seed=4, chains=2, warmup=300, draws=300, progress=False, remedy=False).fit(cells)
    assert fit.kind == "bayes-stacked" and set(fit.samples) >= {"alpha", "beta", "sigma", "z"}
    assert fit.samples["sigma"].shape == (2, 300, 3, 2)
    est = poststratify(cell_draws(fit, frame), frame, by="region")
    assert np.allclose(est.draws.reshape(600, 5, 4).sum(axis=2), 1.0)
    near = poststratify(cell_draws(laplace, frame, seed=1), frame, by="region").table
    assert np.abs(est.table["estimate"] - near["estimate"]).max() < 0.03
    path = tmp_path / "fit.npz"
    save_fit(fit, path)
    again = poststratify(cell_draws(load_fit(path), frame), frame, by="region").table
    np.testing.assert_allclose(again["estimate"], est.table["estimate"])
    assert fit.fixef().index[0] == "N:(Intercept)" and len(fit.varcorr()) == 6


def _brms(name: str) -> pd.DataFrame | None:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{name} is not recorded (tests/fixtures/r/make_categorical.R)")
    return pd.read_csv(path)


def _against_brms(fit, frame, prefix: str, bys: tuple) -> dict:
    """Per grouping: the gaps to brms's posterior means (absolute, and in brms's sds) and the sd ratios."""
    out = {}
    for by in bys:
        ours = poststratify(cell_draws(fit, frame, seed=1), frame, by=by).table
        ref = _brms(f"{prefix}_{by}.csv")
        assert ours[[by, "category"]].astype(str).values.tolist() == ref[[by, "category"]].astype(str).values.tolist()
        gap = np.abs(ours["estimate"].to_numpy() - ref["mean"].to_numpy())
        out[by] = (gap, gap / ref["sd"].to_numpy(), np.abs(ours["sd"].to_numpy() / ref["sd"].to_numpy() - 1))
    return out


def test_laplace_shares_within_three_hundredths_of_brms(chile):
    """Maximum likelihood against brms's posterior means (its priors keep a zero sd off 0)."""
    cells, frame, fit = chile
    for by, (gap, _, _) in _against_brms(fit, frame, "categorical_brms", ("region", "age_group")).items():
        assert gap.max() < 0.03, (by, gap.max())


@pytest.mark.slow
def test_bayes_matches_brms_categorical(chile):
    """brms categorical() with its default priors: shares by group within 0.1 posterior sd at the median and
    0.35 at worst, sds within 10% and 30%; group sds' posterior means within 10%."""
    from misterp import BayesEngine

    cells, frame, _ = chile
    fit = BayesEngine(seed=1, progress=False).fit(cells)
    assert fit.divergences == 0 and not fit.remedy_note and fit.mean_steps < 40  # whitened coordinates
    for by, (_, gap, ratio) in _against_brms(fit, frame, "categorical_brms", ("region", "age_group")).items():
        assert np.median(gap) < 0.1 and gap.max() < 0.35, (by, np.median(gap), gap.max())
        assert np.median(ratio) < 0.1 and ratio.max() < 0.3, (by, np.median(ratio), ratio.max())
    scalars = _brms("categorical_brms_scalars.csv").set_index("name")["value"]
    sds = fit.sd_draws().mean(axis=0)
    for (term, category), ours in zip(fit.layout.sd_names(fit.family, fit.design.group_names), sds):
        theirs = float(scalars[f"sd_mean:{term}:mu{category}"])
        assert abs(ours / theirs - 1) < 0.1, (term, category, ours, theirs)


def test_the_bootstrap_refits_the_laplace_fit(tmp_path):
    """bootMer for several linear predictors: refits of simulated outcomes, whose shares' spread is near the
    normal approximation's, through cell_draws and a saved fit."""
    from misterp import bootstrap, load_fit, save_fit

    survey = Survey(pd.read_csv(FIXTURES / "chile_survey.csv"), "vote")
    frame = Frame(pd.read_csv(FIXTURES / "chile_frame.csv"), "n")
    cells, _ = prepare(survey, frame, "vote ~ sex + (1|region)", family=CATEGORICAL)
    fit = LaplaceEngine().fit(cells)
    boot = bootstrap(fit, nsim=25, seed=1, progress=False)
    assert boot.kind == "bootstrap-stacked" and boot.failed == 0 and boot.coef.shape == (25, 3 * (2 + 5))
    est = poststratify(cell_draws(boot, frame), frame, by="region").table
    normal = poststratify(cell_draws(fit, frame, seed=1), frame, by="region").table
    np.testing.assert_allclose(est["estimate"], normal["estimate"])  # the original fit's point
    ratio = est["sd"] / normal["sd"]
    assert 0.6 < np.median(ratio) < 1.4, ratio.describe()
    path = tmp_path / "boot.npz"
    save_fit(boot, path)
    again = poststratify(cell_draws(load_fit(path), frame), frame, by="region").table
    np.testing.assert_allclose(again["sd"], est["sd"])
