"""The decov prior on unconstrained coordinates: its maps and densities."""

import numpy as np
import pytest
from scipy.integrate import quad

from misterp.engines.inla.hyper import Hyperparameters
from misterp.engines.terms import DecovTerm


def test_tau_and_simplex_densities_integrate_to_one():
    """gamma(1, 1) on tau and Dirichlet(1) on the simplex (K = 2), each with its Jacobian, over the real line."""
    term = DecovTerm(2, 1.0)
    tau = quad(lambda v: np.exp(v - np.exp(v)), -40, 5)[0]
    simplex = quad(lambda y: np.exp(term.simplex(np.array([y]))[1]), -30, 30)[0]
    assert tau == pytest.approx(1.0, abs=1e-8) and simplex == pytest.approx(1.0, abs=1e-8)


def test_three_effects_simplex_and_correlations_follow_their_priors():
    """K = 3: φ drawn by importance from a wide normal, weighted by exp(log prior), reproduces
    Dirichlet(1)'s mean 1/3 and LKJ(1)'s correlations (each Beta(3/2, 3/2) on (-1, 1): mean 0, variance 1/4)."""
    term = DecovTerm(3, 1.0)
    rng = np.random.default_rng(0)
    phi = rng.normal(0, 3, size=(400_000, term.n_phi))
    log_q = -0.5 * (phi / 3) ** 2
    log_w = term.log_prior(phi) - log_q.sum(axis=1)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    pi, _ = term.simplex(phi[:, 1:3])
    C, _ = term.correlation(phi[:, 3:])
    R = C @ np.swapaxes(C, 1, 2)
    assert w @ pi == pytest.approx(np.full(3, 1 / 3), abs=0.01)
    assert w @ R[:, 1, 0] == pytest.approx(0.0, abs=0.01)
    assert w @ R[:, 2, 1] ** 2 == pytest.approx(0.25, abs=0.01)
    assert np.allclose(np.diagonal(R, axis1=1, axis2=2), 1.0)


def test_factor_is_the_bayes_engines_decov_factor():
    """T = diag(sqrt(K pi)) * sd_scale * tau * aux * C, and the reported sds and correlation are T T''s."""
    term = DecovTerm(2, 0.5)
    phi = np.array([np.log(2.0), 0.3, 0.4])
    pi, _ = term.simplex(phi[1:2])
    C, _ = term.correlation(phi[2:])
    T = term.factor(phi, 1.5)
    assert T == pytest.approx(np.sqrt(2 * pi)[:, None] * 0.5 * 2.0 * 1.5 * C)
    cov = T @ T.T
    sd0, sd1, cor = term.reported(phi, 1.5)
    assert (sd0, sd1, cor) == pytest.approx((np.sqrt(cov[0, 0]), np.sqrt(cov[1, 1]), cov[1, 0] / np.sqrt(cov[0, 0] * cov[1, 1])))


def test_layout_and_labels():
    h = Hyperparameters([DecovTerm(1, 1.0), DecovTerm(2, 1.0)], ["g", "s"], [["(Intercept)"], ["(Intercept)", "x"]],
                        2.0)
    assert h.m == 5 and [sl.stop for sl in h.slices] == [1, 4]
    assert h.labels == ["sd for g", "sd for s (Intercept)", "sd for s x", "cor for s ((Intercept), x)",
                        "sd of the residuals (sigma)"]
    phi = np.zeros((7, 5))
    assert h.reported(phi).shape == (7, 5) and np.allclose(h.aux(phi), 2.0)
