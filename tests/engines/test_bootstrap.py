import numpy as np
import pytest

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
