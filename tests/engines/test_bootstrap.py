import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from misterp import LaplaceEngine, Survey, cell_draws, poststratify, prepare
from misterp.engines.bootstrap import bootstrap


@pytest.fixture(scope="module")
def article_fit(article_survey, article_frame):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    return LaplaceEngine().fit(cells)


def boot_sd(fit, frame, **kw):
    boot = bootstrap(fit, progress=False, **kw)
    assert boot.failed == 0
    return poststratify(cell_draws(boot, frame), frame).table.iloc[0]


# Monte Carlo sd of an sd from 999 draws is about sd / sqrt(2 * 998); allow 4 of them
@pytest.mark.parametrize("use_u, r_sd", [(True, 0.01921), (False, 0.0761)])
def test_bootstrap_sd_within_monte_carlo_error_of_r(article_fit, article_frame, use_u, r_sd):
    row = boot_sd(article_fit, article_frame, nsim=999, use_u=use_u, seed=20261126)
    assert abs(row["sd"] - r_sd) < 4 * r_sd / np.sqrt(2 * 998)
    assert row["lower"] == pytest.approx(row["estimate"] - 2 * row["sd"])
    assert row["interval"] == "bootstrap ±2sd"


def test_workers_give_identical_draws(article_fit):
    one = bootstrap(article_fit, nsim=150, seed=5, workers=1, progress=False, block=32)
    two = bootstrap(article_fit, nsim=150, seed=5, workers=2, progress=False, block=32)
    np.testing.assert_array_equal(one.params, two.params)


def test_batched_refits_agree_with_single_refits(article_fit):
    batched = bootstrap(article_fit, nsim=40, seed=9, progress=False)
    single = bootstrap(article_fit, nsim=40, seed=9, progress=False, block=1)
    np.testing.assert_allclose(batched.params, single.params, atol=1e-6)
    np.testing.assert_allclose(batched.theta, single.theta, atol=1e-5)


def test_statistic_is_computed_on_each_refit(article_fit, article_frame):
    boot = bootstrap(article_fit, nsim=30, seed=4, progress=False,
                     statistic=lambda refit: [refit.theta[0], refit.predict(article_frame.data).mean()])
    assert boot.t.shape == (30, 2)
    np.testing.assert_allclose(boot.t[:, 0], boot.theta[:, 0])


def test_normal_approximation_sd_close_to_bootstrap(article_fit, article_frame):
    approx = poststratify(cell_draws(article_fit, article_frame, n_draws=4000, seed=2), article_frame).table.iloc[0]
    boot = boot_sd(article_fit, article_frame, nsim=999, use_u=True, seed=3)
    assert approx["sd"] == pytest.approx(boot["sd"], rel=0.15)


@pytest.mark.parametrize("nsim", [12, pytest.param(999, marks=pytest.mark.slow)])
def test_cces_bootstrap_draws_are_the_refits_poststratified(nsim, cces_all, cces_frame):
    """The refits' (beta*, b*) draws, poststratified, equal each refit's own
    predict-then-weighted.mean statistic (bootMer's FUN in the article)."""
    from conftest import SEVEN_TERM
    from misterp import CellDraws

    sample = cces_all.sample(5000, random_state=7).reset_index(drop=True)
    cells, _ = prepare(Survey(sample, "abortion"), cces_frame, SEVEN_TERM)
    fit = LaplaceEngine().fit(cells)

    def national(refit):
        return poststratify(CellDraws(point=refit.predict(cces_frame.data)), cces_frame).value

    boot = bootstrap(fit, nsim=nsim, seed=11, progress=False, statistic=national)
    assert boot.failed == 0
    est = poststratify(cell_draws(boot, cces_frame), cces_frame)
    np.testing.assert_allclose(est.draws[:, 0], boot.t[:, 0], rtol=1e-12)
    assert 0.002 < est.table["sd"].iloc[0] < 0.02


def test_batched_bfgs_refits_match_single_refits(monkeypatch):
    """Sparse-path refits (q = 458: the county model's first 400 counties): the batched BFGS from
    the original curvature reaches each response's own L-BFGS-B optimum in fewer batched steps than
    L-BFGS-B's evaluations of one response, and leaves a refit that reaches theta = 0 (a singular
    county sd here) to L-BFGS-B's boundary search."""
    from misterp.engines import bootstrap as boot
    from misterp.engines import optimize as opt
    from misterp.engines.deviance import Problem

    data = pd.read_csv(FIXTURES / "sparse_county.csv")
    data = data[data.county.isin(sorted(data.county.unique())[:400])]
    cells, _ = prepare(Survey(data, "y", trials="n"), None, "y ~ male + (1|county) + (1|state) + (1|age) + (1|eth)")
    fit = LaplaceEngine().fit(cells)
    sims = boot._simulate(fit, 4, True, np.random.default_rng(2))[cells.family.response]
    prob = Problem(cells, sims)
    assert prob.sparse
    start = np.tile(np.concatenate([fit.theta, fit.beta]), (4, 1))
    hessian = opt.hessian_at(Problem(cells), start[0], fit.u)
    calls = []
    pirls = opt.pirls
    monkeypatch.setattr(opt, "pirls", lambda *args, **kwargs: calls.append(1) or pirls(*args, **kwargs))
    params, u, ok = opt.quasi_newton_batch(prob, start, np.tile(fit.u, (4, 1)), hessian)
    monkeypatch.undo()
    assert len(calls) <= 12 and ok.tolist() == [True, True, False, True] and params[2, 0] < 1e-5
    coef, theta, _ = boot._refit_laplace(fit, sims, None, hessian)  # the batch, then the boundary search
    evaluations = 0
    for i in range(4):
        single, _, info = opt.optimize(prob.subset([i]), start[i], fit.u, hessian=hessian)
        evaluations += info["evaluations"]
        np.testing.assert_allclose(theta[i], single[:4], atol=2e-5)
        np.testing.assert_allclose(coef[i, :2], single[4:], atol=2e-5)
    assert evaluations > 2 * len(calls)  # PIRLS solves one by one, against batched steps


def test_lmer_refits_share_the_deviance_and_start_from_the_curvature():
    """lmer refits (the crossed model's first 300 schools, sparse): the same optimum as a fresh
    lmer fit of each simulated response, from at most five evaluations each."""
    from misterp.engines import bootstrap as boot
    from misterp.engines.lmm import ProfiledDeviance
    from misterp.engines.lmm_optimize import deviance_hessian, fit_deviance, fit_lmm
    from misterp.model.family import GAUSSIAN

    data = pd.read_csv(FIXTURES / "sparse_crossed.csv")
    data = data[data.school.isin(sorted(data.school.unique())[:300])]
    cells, _ = prepare(Survey(data, "score"), None, "score ~ x + male + (1|school) + (1|hood)", family=GAUSSIAN)
    fit = LaplaceEngine().fit(cells)
    shared = ProfiledDeviance(cells)
    assert shared.sparse
    hessian = deviance_hessian(shared, fit.theta)
    sims = boot._simulate(fit, 3, False, np.random.default_rng(3))
    for i in range(3):
        sim = {k: v[i] for k, v in sims.items()}
        refit = fit_deviance(shared.with_stats(sim), fit.theta, hessian, covariance=False)
        fresh = fit_lmm(cells.with_stats(sim))
        assert refit["info"]["evaluations"] <= 5  # L-BFGS-B from the same start took 10
        np.testing.assert_allclose(refit["theta"], fresh["theta"], atol=1e-5)
        np.testing.assert_allclose(refit["beta"], fresh["beta"], atol=1e-7)
        assert refit["objective"] == pytest.approx(fresh["objective"], abs=1e-6)
