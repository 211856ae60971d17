"""A bayes fit's ArviZ InferenceData: the sampler's statistics, the observed cells and their
log-likelihood, so that ArviZ's summaries, energy plot and PSIS-LOO run on it."""

import warnings

import numpy as np
import pandas as pd
import pytest

from misterp import Survey, load_fit, prepare, save_fit
from misterp.engines.bayes import BayesEngine
from misterp.model.family import GAUSSIAN

az = pytest.importorskip("arviz")

STATS = {"diverging", "tree_depth", "n_steps", "energy", "step_size", "acceptance_rate", "lp"}


@pytest.fixture(scope="module")
def slope_fit():
    """Posterior-shaped draws (2 chains x 50) of a gaussian slope model of a continuous score, where every
    respondent is its own cell: the log-likelihood is computed from whatever draws a fit holds."""
    from misterp.engines.bayes import BayesFit, model_data
    from misterp.engines.bayes.engine import Priors

    rng = np.random.default_rng(2)
    g, x = rng.integers(0, 8, 240), rng.normal(size=240).round(4)
    y = 10 + 2 * x + rng.normal(0, 1.5, 8)[g] + rng.normal(0, 2, 240)
    cells, _ = prepare(Survey(pd.DataFrame({"y": y, "x": x, "g": g}), "y"), None, "y ~ x + (1 + x | g)",
                       family=GAUSSIAN)
    shape = (2, 50)
    samples = {"alpha": 10 + rng.normal(size=shape), "beta": 2 + rng.normal(size=shape + (1,)),
               "b": rng.normal(size=shape + (16,)), "aux": rng.uniform(1.5, 2.5, shape),
               "factor_0": np.broadcast_to(np.eye(2), shape + (2, 2))}
    stats = {"diverging": np.zeros(shape, bool), "n_steps": np.full(shape, 7)}
    return BayesFit(cells, samples, model_data(cells, Priors())["xbar"], 0, 0, 7.0, BayesEngine(), "", stats)


def test_sample_stats_named_as_arviz_names_them(article_fit):
    idata = article_fit.to_arviz()
    assert STATS <= set(idata.sample_stats.data_vars)
    stats = idata.sample_stats
    assert stats["diverging"].shape == (4, 1000) and stats["diverging"].dtype == bool
    assert int(stats["diverging"].sum()) == article_fit.divergences
    assert float(stats["n_steps"].mean()) == pytest.approx(article_fit.mean_steps)
    np.testing.assert_array_equal(stats["tree_depth"], np.floor(np.log2(stats["n_steps"])) + 1)
    assert ((stats["acceptance_rate"] >= 0) & (stats["acceptance_rate"] <= 1)).all()
    step = stats["step_size"].values
    assert (step == step[:, :1]).all() and (step > 0).all()  # adapted in warmup, fixed after
    assert (stats["energy"] >= -stats["lp"] - 1e-9).all()  # H = potential + kinetic >= potential


def test_summary_energy_plot_and_loo_run(article_fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idata = article_fit.to_arviz()
    table = az.summary(idata, var_names=["alpha", "sigma"])
    assert table.loc["alpha", "r_hat"] <= 1.01 and table.loc["alpha", "ess_bulk"] >= 400
    axes = az.plot_energy(idata)
    assert len(np.atleast_1d(axes)[0].get_lines()) + len(np.atleast_1d(axes)[0].patches) > 0
    plt.close("all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # five cells of 200 respondents: Pareto k may be high
        loo = az.loo(idata, pointwise=True)
    assert loo.loo_i.shape == (5,) and np.isfinite(loo.elpd_loo)
    assert set(idata.observed_data.data_vars) == {"successes", "trials"}


def test_log_likelihood_is_each_cell_rows_density(slope_fit):
    """Per cell (here per respondent): the normal log density of its y at each draw's mean and sigma."""
    from scipy.stats import norm

    cells = slope_fit.cells
    idata = slope_fit.to_arviz()
    loglik = idata.log_likelihood["y"].values
    assert loglik.shape == (2, 50, cells.n_cells) and cells.n_cells == 240
    draw = 73  # the second chain's 24th
    fixed, b = slope_fit.coef_draws()[draw], slope_fit.b_draws()[draw]
    Z = cells.design.random_matrix(cells.table)
    mean = cells.X @ fixed + Z @ b
    y = cells.stats["total"] / cells.stats["n"]
    sigma = slope_fit._flat("aux")[draw]
    np.testing.assert_allclose(loglik[1, 23], norm.logpdf(y, mean, sigma), rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # draws that are no posterior: Pareto k are high
        assert az.loo(idata).n_data_points == 240
    assert "log_likelihood" not in slope_fit.to_arviz(log_likelihood=False).groups()


def test_saved_fits_keep_the_sampler_statistics(article_fit, tmp_path):
    save_fit(article_fit, tmp_path / "article.fit")
    loaded = load_fit(tmp_path / "article.fit")
    assert set(loaded.sample_stats) == STATS
    for name, value in article_fit.sample_stats.items():
        np.testing.assert_array_equal(loaded.sample_stats[name], value)
    assert STATS <= set(loaded.to_arviz(log_likelihood=False).sample_stats.data_vars)
