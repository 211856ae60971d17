"""The same seed gives the same numbers, whatever the worker count or chain method.

docs/catalogue.md ("Reproducibility") states the guarantee these tests hold:
bit-identical bootstrap refits and estimates for any number of workers,
bit-identical cell draws for a seed, bit-identical posterior draws for a
seed and chain method; across chain methods equal up to XLA's rounding.
"""

import numpy as np
import pandas as pd
import pytest

from conftest import CCES
from misterp import GlmEngine, LaplaceEngine, Survey, cell_draws, poststratify, prepare, read_frame
from misterp.apps.cli import main
from misterp.engines.bootstrap import bootstrap


@pytest.fixture(scope="module")
def article(article_survey, article_frame):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    return LaplaceEngine().fit(cells), article_frame


@pytest.fixture(scope="module")
def states(cces_all):
    """50 states and 4 ethnicities: more effects than the batched Newton takes, so refits go through
    L-BFGS-B one by one; the frame has a few states with no respondents (unseen levels)."""
    frame = read_frame(CCES / "poststrat_df.csv", "n")
    sample = cces_all.sample(1500, random_state=3)
    sample = sample[~sample["state"].isin(["WY", "VT", "ND"])]
    cells, _ = prepare(Survey(sample, "abortion"), frame, "abortion ~ male + (1|state) + (1|eth)")
    return LaplaceEngine().fit(cells), frame, sample


def poststratified(fit, frame, seed=None):
    est = poststratify(cell_draws(fit, frame, seed=seed), frame, by="eth" if "eth" in frame.data else None)
    return est.table[["estimate", "sd", "lower", "upper"]].to_numpy(), est.draws


@pytest.mark.parametrize("model, use_u, nsim", [("article", True, 40), ("article", False, 40), ("states", True, 4)])
def test_bootstrap_is_the_same_for_one_or_two_workers(request, model, use_u, nsim):
    fit, frame = request.getfixturevalue(model)[:2]
    block = nsim // 2  # two blocks at least, so that each worker refits one
    one = bootstrap(fit, nsim=nsim, use_u=use_u, seed=11, workers=1, progress=False, block=block)
    two = bootstrap(fit, nsim=nsim, use_u=use_u, seed=11, workers=2, progress=False, block=block)
    assert np.array_equal(one.params, two.params, equal_nan=True)
    assert np.array_equal(one.theta, two.theta, equal_nan=True)
    assert one.failed == two.failed
    (table_one, draws_one), (table_two, draws_two) = poststratified(one, frame, 5), poststratified(two, frame, 5)
    assert np.array_equal(table_one, table_two, equal_nan=True)
    assert np.array_equal(draws_one, draws_two, equal_nan=True)
    if model == "article":  # and the seed matters: the test could tell two bootstraps apart
        other = bootstrap(fit, nsim=nsim, use_u=use_u, seed=12, workers=1, progress=False, block=block)
        assert not np.array_equal(one.params, other.params, equal_nan=True)


def test_the_cli_bootstrap_table_is_the_same_for_one_or_two_workers(tmp_path, capsys, article_survey):
    survey, frame = tmp_path / "s.csv", tmp_path / "f.csv"
    article_survey.to_csv(survey, index=False)
    pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, 4000, 4000, 4000, 7000]}).to_csv(frame, index=False)
    outputs = []
    for workers in (1, 2):
        code = main(["fit", "--survey", str(survey), "--frame", str(frame), "--formula", "response ~ (1|class)",
                     "--count", "N", "--by", "class", "--bootstrap", "60", "--seed", "3", "--workers", str(workers),
                     "--no-progress", "--out", str(tmp_path / f"w{workers}.csv")])
        assert code == 0, capsys.readouterr().err
        outputs.append((tmp_path / f"w{workers}.csv").read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("engine", ["glm", "laplace", "bootstrap"])
def test_cell_draws_repeat_for_a_seed(states, article, engine):
    fit, frame, data = states
    if engine == "glm":
        fit = GlmEngine().fit(prepare(Survey(data, "abortion"), frame, "abortion ~ male + eth")[0])
    elif engine == "bootstrap":
        fit, frame = bootstrap(article[0], nsim=30, seed=1, progress=False), article[1]
    n_draws = 200 if engine == "glm" else None
    first = cell_draws(fit, frame, n_draws=n_draws, seed=8)
    again = cell_draws(fit, frame, n_draws=n_draws, seed=8)
    assert np.array_equal(first.point, again.point)
    a, b = np.vstack(list(first.draws.chunks(64))), np.vstack(list(again.draws.chunks(64)))
    assert np.array_equal(a, b)
    other = np.vstack(list(cell_draws(fit, frame, n_draws=n_draws, seed=9).draws.chunks(64)))
    # a bootstrap's draws are its refits, with b = 0 for unseen states: no seed enters; the others
    # draw from the seed (the glm its coefficients, the laplace fit its modes and unseen states)
    assert np.array_equal(a, other) == (engine == "bootstrap")


# -- the bayes engine ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bayes_cells(article_survey, article_frame):
    return prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")[0]


def sample(cells, method, seed=7):
    from misterp.engines.bayes import BayesEngine

    fit = BayesEngine(chains=2, warmup=100, draws=100, seed=seed, progress=False, chain_method=method,
                      remedy=False).fit(cells)
    return fit, {k: np.asarray(v) for k, v in fit.samples.items()}


@pytest.fixture(scope="module")
def parallel_run(bayes_cells):
    return sample(bayes_cells, "parallel")


def test_bayes_repeats_bit_for_bit_for_a_seed_and_chain_method(bayes_cells, parallel_run, article_frame):
    fit, first = parallel_run
    again_fit, again = sample(bayes_cells, "parallel")
    assert first.keys() == again.keys()
    for name in first:
        assert np.array_equal(first[name], again[name]), name
    # its predictions too: a seeded sampler seeds its cell draws (unseen levels) from its own seed
    a, b = poststratified(fit, article_frame), poststratified(again_fit, article_frame)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    _, other = sample(bayes_cells, "parallel", seed=8)
    assert not np.array_equal(first["z"], other["z"])


# both slow: numpyro initialises a chain op by op outside "parallel" (9 s of small compilations each)
@pytest.mark.parametrize("method", [pytest.param("sequential", marks=pytest.mark.slow),
                                    pytest.param("vectorized", marks=pytest.mark.slow)])
def test_bayes_chain_methods_agree_to_rounding(bayes_cells, parallel_run, method):
    # pmap ("parallel"), jit one chain at a time ("sequential") and vmap ("vectorized") are three XLA
    # programs whose floating-point operations are ordered differently, so the last bits differ, and
    # warmup's step-size adaptation carries that into every draw: about 3e-11 here (JAX 0.10, CPU).
    # Longer runs can grow it further (a tree-building decision can flip); a seed and a chain method
    # together repeat exactly (the test above).
    _, first = parallel_run
    _, other = sample(bayes_cells, method)
    for name in first:
        np.testing.assert_allclose(other[name], first[name], rtol=0, atol=1e-9, err_msg=name)
    _, again = sample(bayes_cells, method)
    for name in first:
        assert np.array_equal(other[name], again[name]), name
