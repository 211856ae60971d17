"""Whitened coordinates: the hand-written reverse pass, and the same posterior as rstanarm's parameterization."""

import warnings

import numpy as np
import pytest

from misterp import Survey, cell_draws, prepare
from misterp import MisterpWarning
from misterp.engines.bayes import BayesEngine
from misterp.engines.whitening import likelihood_expansion, whiten
from misterp.model.family import BINOMIAL


def _reference(d, eps, H, r):
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular

    L = jnp.linalg.cholesky(H + jnp.diag(d))
    x = solve_triangular(L.T, solve_triangular(L, r, lower=True) + eps, lower=False)
    return x, jnp.sum(jnp.log(jnp.diag(L)))


def test_reverse_pass_matches_autodiff_through_cholesky():
    import jax

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((60, 25))
    H, r = A.T @ A, rng.standard_normal(25)
    d, eps, weights = rng.uniform(0.2, 5.0, 25), rng.standard_normal(25), rng.standard_normal(25)

    def loss(fn):
        return lambda d, eps: fn(d, eps, H, r)[0] @ weights + 1.7 * fn(d, eps, H, r)[1]

    np.testing.assert_allclose(loss(whiten)(d, eps), loss(_reference)(d, eps), rtol=1e-12)
    ours = jax.grad(loss(whiten), (0, 1))(d, eps)
    theirs = jax.grad(loss(_reference), (0, 1))(d, eps)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_expansion_is_exact_for_the_score_and_curvature():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((40, 3))
    trials = rng.integers(1, 9, 40).astype(float)
    successes = rng.binomial(trials.astype(int), 0.4).astype(float)
    x_hat = np.array([0.2, -0.1, 0.3])
    H, r = likelihood_expansion(BINOMIAL, {"successes": successes, "trials": trials}, A, np.zeros(40), x_hat)

    def loglik(x):
        eta = A @ x
        return np.sum(successes * eta - trials * np.logaddexp(0, eta))

    step = 1e-5
    score = np.array([(loglik(x_hat + step * e) - loglik(x_hat - step * e)) / (2 * step) for e in np.eye(3)])
    np.testing.assert_allclose(r - H @ x_hat, score, rtol=1e-6)
    hess = np.array([[(loglik(x_hat + step * (a + b)) - loglik(x_hat + step * (a - b)) - loglik(x_hat - step * (a - b))
                       + loglik(x_hat - step * (a + b))) / (4 * step ** 2) for b in np.eye(3)] for a in np.eye(3)])
    np.testing.assert_allclose(-hess, H, rtol=1e-4)


def test_whitened_and_noncentred_sample_the_same_posterior(article_fit, article_frame):
    assert article_fit.engine.parameterization == "auto" and article_fit.mean_steps < 10  # whitened: 7 steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        noncentred = BayesEngine(seed=5, warmup=500, draws=500, progress=False,
                                 parameterization="noncentred").fit(article_fit.cells)
    fits = {"whitened": article_fit, "noncentred": noncentred}
    assert "eps" not in fits["whitened"].samples and "z" in fits["whitened"].samples
    probs = {p: cell_draws(fit, article_frame).point for p, fit in fits.items()}
    np.testing.assert_allclose(probs["whitened"], probs["noncentred"], atol=0.004)
    sigma = {p: fit._flat("sigma")[:, 0] for p, fit in fits.items()}
    assert np.median(sigma["whitened"]) == pytest.approx(np.median(sigma["noncentred"]), rel=0.1)
    intercept = {p: fit.coef_draws()[:, 0] for p, fit in fits.items()}
    width = {p: np.subtract(*np.quantile(draws, [0.9, 0.1])) for p, draws in intercept.items()}  # heavy tails:
    assert width["whitened"] == pytest.approx(width["noncentred"], rel=0.1)                         # not the sd


def test_unknown_parameterization_is_refused(article_survey, article_frame):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    with pytest.raises(ValueError, match="parameterization"):
        BayesEngine(parameterization="centred", progress=False).fit(cells)
