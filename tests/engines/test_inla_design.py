"""The inla engine's integration design: resolution-V factorials, exact Gaussian moments, and a skewed
posterior with a known mean and variance."""

import numpy as np
import pytest
from scipy.special import digamma, polygamma

from misterp.engines.inla import design, fractional_factorial, integration_points


@pytest.mark.parametrize("m, rows", [(1, 2), (2, 4), (3, 8), (4, 16), (5, 16), (6, 32), (7, 64), (8, 64),
                                     (9, 128), (11, 128)])
def test_factorials_are_resolution_five_with_the_fewest_rows(m, rows):
    F = fractional_factorial(m)
    assert F.shape == (rows, m) and set(np.unique(F)) == {-1.0, 1.0}
    # main effects and two-factor interactions: mutually orthogonal, none constant
    columns = np.array([F[:, j] for j in range(m)] + [F[:, i] * F[:, j] for i in range(m) for j in range(i + 1, m)])
    gram = columns @ columns.T
    np.testing.assert_array_equal(gram, rows * np.eye(len(columns)))
    assert np.all(np.abs(columns.sum(axis=1)) == 0)


def test_the_ccd_lies_on_its_sphere_with_the_centre_weighted_apart():
    d = design(7)
    assert len(d.z) == 1 + 14 + 64
    np.testing.assert_allclose(np.linalg.norm(d.z[1:], axis=1), 1.1 * np.sqrt(7))
    assert d.delta[0] == 1.0 and np.all(d.delta[1:] == d.delta[1])


def gaussian_moments(points):
    mean = points.weights @ points.phi
    centred = points.phi - mean
    return mean, (points.weights[:, None] * centred).T @ centred


@pytest.mark.parametrize("m", range(1, 9))
def test_a_gaussian_posterior_gets_its_mean_and_covariance(m):
    """Exact (to rounding) for the ccd; for the grid, within its truncation at 4.5 sd."""
    rng = np.random.default_rng(m)
    A = rng.normal(size=(m, m))
    H, mode = A @ A.T + m * np.eye(m), rng.normal(size=m)
    points = integration_points(mode, H, lambda phi: -0.5 * (phi - mode) @ H @ (phi - mode))
    np.testing.assert_allclose(points.s_pos, 1.0)
    np.testing.assert_allclose(points.s_neg, 1.0)
    mean, cov = gaussian_moments(points)
    np.testing.assert_allclose(mean, mode, atol=1e-12)
    np.testing.assert_allclose(cov, np.linalg.inv(H), rtol=1e-10 if m > 2 else 1e-3,
                               atol=(1e-12 if m > 2 else 1e-3) * np.abs(np.linalg.inv(H)).max())


@pytest.mark.parametrize("shapes", [[2.0], [2.0, 4.0], [1.5, 3.0, 6.0], [1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0]])
def test_a_skewed_posterior_with_a_known_mean_and_variance(shapes):
    """phi_k = log tau_k, tau_k ~ Gamma(a_k, 1) independently: E[phi_k] = digamma(a_k), Var = trigamma(a_k),
    a left tail longer than a Gaussian's. The mode is log a and the Hessian diag(a). The grid (m <= 2) gets
    both within 3% of an sd; the ccd, a sparse design, under-states a skewed variance (the price INLA pays
    for 2m + 2^k + 1 points) and the skewness correction takes back part of it."""
    a = np.array(shapes)

    def log_density(phi):
        return float(np.sum(a * phi - np.exp(phi)))

    sd = np.sqrt(polygamma(1, a))
    errors = {}
    for skew in (False, True):
        points = integration_points(np.log(a), np.diag(a), log_density, skew=skew)
        mean, cov = gaussian_moments(points)
        errors[skew] = (np.abs(mean - digamma(a)) / sd, np.diag(cov) / sd ** 2)
        if skew:
            assert np.all(points.s_neg > 1) and np.all(points.s_pos < 1)  # the long side is the left
    mean_error, variance_ratio = errors[True]
    assert variance_ratio.max() < 1.01
    if len(a) <= 2:
        assert mean_error.max() < 0.025 and variance_ratio.min() > 0.97
    else:
        assert mean_error.max() < 0.125 and variance_ratio.min() > 0.76
        assert np.all(mean_error < errors[False][0]) and np.all(variance_ratio > errors[False][1])


@pytest.mark.parametrize("m", [1, 2, 3])
def test_a_split_normal_is_what_the_skewness_correction_assumes(m):
    """sd 0.6 above the mode and 1.8 below, on every axis: the scalings find both, and the second moment
    (sd+^3 + sd-^3) / (sd+ + sd-) comes out to 1e-3 (a point where z_k = 0 stands for a cell that spans
    both sides: its volume takes the mean of the two scalings); the mean, sqrt(2/pi)(sd+ - sd-), within
    0.06 sd (that cell's centroid is off the mode by a fraction of a step)."""
    up, down = 0.6, 1.8

    def log_density(phi):
        return float(np.sum(np.where(phi > 0, -phi ** 2 / (2 * up ** 2), -phi ** 2 / (2 * down ** 2))))

    points = integration_points(np.zeros(m), np.eye(m), log_density)
    np.testing.assert_allclose(points.s_pos, up)
    np.testing.assert_allclose(points.s_neg, down)
    mean, second = points.weights @ points.phi, points.weights @ points.phi ** 2
    true_mean, true_second = np.sqrt(2 / np.pi) * (up - down), (up ** 3 + down ** 3) / (up + down)
    np.testing.assert_allclose(second, true_second, rtol=1e-3)
    assert np.all(np.abs(mean - true_mean) < 0.06 * np.sqrt(true_second - true_mean ** 2))


def test_a_mode_on_a_boundary_or_a_bad_hessian_is_named():
    with pytest.raises(ValueError, match="axis 1 \\(\\+ side\\)"):  # still rising along the second axis
        integration_points(np.zeros(2), np.eye(2), lambda phi: float(phi[1] - phi[0] ** 2))
    with pytest.raises(ValueError, match="not positive definite"):
        integration_points(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), lambda phi: 0.0)
    with pytest.raises(ValueError, match="kind must be"):
        design(3, "hypercube")
