"""Latent terms (misterp.engines.terms): each precision is its prior's, and every engine fits them."""

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, InlaEngine, LaplaceEngine, Survey, cell_draws, poststratify
from misterp.data.adjacency import adjacency_from_table
from misterp.engines.bayes.model import _field_size, _unit_field
from misterp.engines.inla.posterior import HyperPosterior
from misterp.engines.terms import Ar1Term, Bym2Term, IntrinsicTerm
from misterp.model.cells import prepare
from misterp.model.terms import Structure

EDGES = np.array([[0, 1], [1, 2], [2, 3], [0, 3], [3, 4], [6, 7]])  # a 5-area component, a pair, 5 an island


def _constrained_covariance(term, phi, aux=1.0):
    """The latent covariance on the term's constraints, (n_latent, n_latent), from its precision."""
    Q = term.precision(phi, aux).toarray()
    S = np.linalg.inv(Q)
    A = term.constraints()
    if len(A):
        S = S - S @ A.T @ np.linalg.solve(A @ S @ A.T, A @ S)
    return S


def test_ar1_precision_is_the_inverse_of_its_covariance():
    term = Ar1Term(Structure("ar1", tuple("abcde")), sd_scale=1.0)
    phi = np.array([np.log(0.7), np.arctanh(-0.6)])
    lag = np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
    assert np.allclose(np.linalg.inv(term.precision(phi, 1.0).toarray()), 0.49 * (-0.6) ** lag)
    assert term.log_det(phi, 1.0) == pytest.approx(np.linalg.slogdet(term.precision(phi, 1.0).toarray())[1])


@pytest.mark.parametrize("kind", ["rw1", "rw2", "icar"])
def test_intrinsic_covariance_is_sd_squared_times_the_generalised_inverse(kind):
    s = Structure(kind, tuple("abcdefgh"), EDGES if kind == "icar" else np.zeros((0, 2), int))
    term = IntrinsicTerm(s, sd_scale=1.0)
    S = _constrained_covariance(term, np.array([np.log(1.3)]), aux=1.5)
    assert np.allclose(S, (1.3 * 1.5) ** 2 * np.linalg.pinv(s.matrix().toarray()), atol=1e-5)


def test_bym2_marginal_covariance():
    """b = sd (sqrt(1 - rho) theta + sqrt(rho / s) phi) on connected areas, sd theta on an island."""
    s = Structure("bym2", tuple("abcdefgh"), EDGES)
    term = Bym2Term(s, sd_scale=1.0)
    sd, rho = 0.8, 0.7
    S = _constrained_covariance(term, np.array([np.log(sd), np.log(rho / (1 - rho))]))[:8, :8]
    R = s.matrix().toarray()
    R[s.islands, s.islands] = 0.0
    connected = np.ones(8)
    connected[s.islands] = 0.0
    root = np.sqrt(rho / s.scale_factors) * connected
    expected = sd ** 2 * (np.diag(1 - rho * connected) + root[:, None] * np.linalg.pinv(R) * root[None, :])
    assert np.allclose(S, expected, atol=1e-5)
    # the scaled field has geometric-mean variance 1 on each component
    scaled = np.diag(np.linalg.pinv(R))[:5] / s.scale_factors[:5]
    assert np.exp(np.mean(np.log(scaled))) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["rw1", "rw2", "icar", "ar1", "bym2"])
def test_log_det_follows_the_constrained_precision(kind):
    """term.log_det moves with φ as log det of Q on the constraints' space does."""
    s = Structure(kind, tuple("abcdefgh"), EDGES if kind in ("icar", "bym2") else np.zeros((0, 2), int))
    term = {"ar1": Ar1Term, "bym2": Bym2Term}.get(kind, IntrinsicTerm)(s, sd_scale=1.0)
    A = term.constraints()
    V = np.linalg.svd(A)[2][len(A):].T if len(A) else np.eye(term.n_latent)   # the constraints' null space

    def exact(phi):
        return np.linalg.slogdet(V.T @ term.precision(phi, 1.0).toarray() @ V)[1]

    a, b = np.array([0.3, -0.4])[:term.n_phi], np.array([-0.5, 1.1])[:term.n_phi]
    assert term.log_det(a, 1.0) - term.log_det(b, 1.0) == pytest.approx(exact(a) - exact(b), abs=1e-4)


@pytest.mark.parametrize("kind", ["ar1", "bym2", "rw2"])
def test_bayes_fields_have_the_terms_covariance(kind):
    """The bayes engine's non-centred field at sd 1 is linear in its normals: its map M gives M M' = the
    covariance the laplace and inla engines' precision gives."""
    import numpyro

    s = Structure(kind, tuple("abcdefgh"), EDGES if kind == "bym2" else np.zeros((0, 2), int))
    size = _field_size(s, 8)
    rho = {"ar1": 0.4, "bym2": 0.3}.get(kind)
    with numpyro.handlers.substitute(data={"rho_0": rho} if rho is not None else {}):
        M = np.column_stack([np.asarray(_unit_field(0, s, np.eye(size)[j], 8)) for j in range(size)])
    term = {"ar1": Ar1Term, "bym2": Bym2Term}.get(kind, IntrinsicTerm)(s, sd_scale=1.0)
    phi = np.array([0.0, {"ar1": np.arctanh(0.4), "bym2": np.log(0.3 / 0.7)}.get(kind, 0.0)])[:term.n_phi]
    assert np.allclose(M @ M.T, _constrained_covariance(term, phi)[:8, :8], atol=1e-5)


@pytest.fixture(scope="module")
def spatial():
    """Binary answers in 12 areas on a ring with a smooth effect, 8 ordered ages, and an area nobody answered."""
    rng = np.random.default_rng(3)
    areas = [f"a{k:02d}" for k in range(12)]
    n = 900
    area = rng.integers(0, 11, n)                      # a11 has no respondents
    age = rng.integers(0, 8, n)
    eta = -0.3 + 0.6 * np.sin(2 * np.pi * area / 12) + 0.15 * (age - 3.5) / 3.5
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    data = pd.DataFrame({"y": y, "area": [areas[a] for a in area], "age": age, "x": rng.normal(size=n)})
    frame = pd.DataFrame([(a, g, 0.0) for a in areas for g in range(8)], columns=["area", "age", "x"])
    frame["N"] = 100.0
    ring = adjacency_from_table(pd.DataFrame({"area": areas, "neighbour": areas[1:] + areas[:1]}), "ring")
    return Survey(data, "y"), Frame(frame, "N"), ring


@pytest.mark.parametrize("formula", ["y ~ x + bym2(area) + rw1(age)", "y ~ icar(area) + ar1(age)",
                                     "y ~ x + (1|area) + rw2(age)"])
def test_hyperposterior_gradient_is_exact_with_structured_terms(spatial, formula):
    survey, frame, ring = spatial
    cells, _ = prepare(survey, frame, formula, adjacency=ring)
    post = HyperPosterior(cells)
    phi = post.start() + np.random.default_rng(0).normal(0, 0.3, post.m)
    grad = post.gradient(post.inner(phi))
    h = 1e-5
    numeric = [(post.inner(phi + h * e).laplace - post.inner(phi - h * e).laplace) / (2 * h) for e in np.eye(post.m)]
    assert grad == pytest.approx(numeric, abs=2e-5)


def test_gaussian_bym2_gradient_through_the_residual_sd(spatial):
    """bym2's phi block does not scale with the residual sd: the gradient's dispersion part is general."""
    survey, frame, ring = spatial
    data = survey.data.assign(y=survey.data["y"] + np.random.default_rng(1).normal(0, 0.5, len(survey.data)))
    cells, _ = prepare(Survey(data, "y"), frame, "y ~ x + bym2(area) + rw1(age)", family="gaussian", adjacency=ring)
    post = HyperPosterior(cells)
    phi = post.start() + 0.2
    grad = post.gradient(post.inner(phi))
    h = 1e-5
    numeric = [(post.inner(phi + h * e).laplace - post.inner(phi - h * e).laplace) / (2 * h) for e in np.eye(post.m)]
    assert grad == pytest.approx(numeric, abs=2e-5)


def test_laplace_and_inla_fit_structured_terms_and_fill_an_unsampled_area(spatial, tmp_path):
    from misterp.results.saved import load_fit, save_fit

    survey, frame, ring = spatial
    cells, _ = prepare(survey, frame, "y ~ x + bym2(area) + rw1(age)", adjacency=ring)
    assert cells.design.n_levels.tolist() == [12, 8]  # a11, without respondents, has its level
    mode = LaplaceEngine().fit(cells)
    full = InlaEngine().fit(cells)
    assert mode.method == "normal-approx" and full.method == "inla" and len(mode.weights) == 1
    est = {name: poststratify(cell_draws(fit, frame), frame, by="area").table.set_index("area")
           for name, fit in (("mode", mode), ("full", full))}
    # the unsampled area borrows from its two neighbours (a10, a00): between them, not at the mean
    a11 = est["full"].loc["a11", "estimate"]
    assert min(est["full"].loc[["a10", "a00"], "estimate"]) - 0.03 < a11 < max(est["full"].loc[["a10", "a00"], "estimate"]) + 0.03
    assert np.abs(est["mode"]["estimate"] - est["full"]["estimate"]).max() < 0.02
    rho = full.hyper_table().loc["rho for bym2(area)", "mean"]
    assert 0.0 < rho < 1.0
    path = tmp_path / "m.fit"
    save_fit(full, path)
    again = poststratify(cell_draws(load_fit(path), frame), frame, by="area").table.set_index("area")
    assert np.allclose(again["estimate"], est["full"]["estimate"])


def test_whitened_coordinates_give_each_terms_prior(spatial):
    """The bayes engine's whitened coordinates (b = M w, w normal with precision P): M P^-1 M' is each term's
    covariance, bym2's and ar1's (tridiagonal P) included, and P's log determinant is the one the density
    takes."""
    import jax.numpy as jnp

    from misterp.engines.bayes.model import _coordinate_precision, whitened_terms

    import numpyro

    from misterp.engines.terms import latent_terms

    survey, frame, ring = spatial
    for formula in ("y ~ x + bym2(area) + rw1(age)", "y ~ x + icar(area) + (1|age)", "y ~ x + ar1(age) + bym2(area)"):
        design = prepare(survey, frame, formula, adjacency=ring)[0].design
        terms = whitened_terms(design)
        sigma = np.array([0.7, 0.4])
        rho = {k: (-0.6 if design.structure(k).kind == "ar1" else 0.35) for k in range(2)
               if design.structure(k) is not None and design.structure(k).kind in ("ar1", "bym2")}
        with numpyro.handlers.substitute(data={f"rho_{k}": v for k, v in rho.items()}):
            d, band, log_det = _coordinate_precision(terms, jnp.asarray(sigma))
        P = np.diag(np.asarray(d))
        if band is not None:
            P += np.diag(np.asarray(band), 1) + np.diag(np.asarray(band), -1)
        assert float(log_det) == pytest.approx(np.linalg.slogdet(P)[1], rel=1e-5)
        cov = terms["M"] @ np.linalg.inv(P) @ terms["M"].T
        start = 0
        for k, (J, latent) in enumerate(zip(design.n_levels, latent_terms(design, 1.0))):
            r = rho.get(k, 0.5)
            link = np.arctanh(r) if getattr(design.structure(k), "kind", None) == "ar1" else np.log(r / (1 - r))
            phi = np.array([np.log(sigma[k]), link])[:latent.n_phi]
            expected = _constrained_covariance(latent, phi)[:J, :J]
            assert np.allclose(cov[start:start + J, start:start + J], expected, atol=1e-5), design.group_names[k]
            start += J


def test_bayes_samples_whitened_structured_terms(spatial):
    from misterp import BayesEngine
    from misterp.engines.bayes import Priors, model_data

    survey, frame, ring = spatial
    cells, _ = prepare(survey, frame, "y ~ x + bym2(area) + rw1(age)", adjacency=ring)
    engine = BayesEngine(seed=2, chains=2, warmup=200, draws=200, progress=False)
    assert engine._whitened(model_data(cells, Priors()))
    fit = engine.fit(cells)
    assert fit.divergences == 0 and fit.mean_steps < 40 and {"rho_0", "b"} <= set(fit.samples)
    est = poststratify(cell_draws(fit, frame), frame, by="area").table
    full = poststratify(cell_draws(InlaEngine().fit(cells), frame), frame, by="area").table
    assert np.abs(est["estimate"] - full["estimate"]).max() < 0.35 * full["sd"].min()
