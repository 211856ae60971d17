"""The bayes engine's sufficient-statistics likelihood: the same log density and gradient as
cell by cell, and chosen only where it is cheaper."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from misterp import Survey, prepare
from misterp.engines.bayes import Priors, model_data
from misterp.engines.bayes.model import model
from misterp.engines.bayes.moments import build_moments
from misterp.engines.jax_config import ensure_jax
from misterp.model.family import BINOMIAL, GAUSSIAN, Quadratic


def survey(n=600, seed=0, duplicates=False):
    """Respondents with a continuous score, a factor, two crossed groupings and an offset."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, 12, n), rng.integers(0, 5, n)
    x = rng.normal(size=n).round(1 if duplicates else 6)  # coarse x: cells of several respondents
    y = 3 + 1.5 * x + rng.normal(0, 1, 12)[g] + 0.5 * rng.normal(size=12)[g] * x + rng.normal(0, 0.7, 5)[h] \
        + rng.normal(0, 2, n)
    return pd.DataFrame({"y": y + 50, "x": x, "f": rng.choice(list("abc"), n), "g": g, "h": h,
                         "o": rng.choice([0.0, 0.5], n)})


MODELS = [  # (formula, cells of several respondents)
    ("y ~ x + f + (1 + x | g)", False),                # a continuous slope (decov)
    ("y ~ x + (1 | g) + (1 | h) + (1 | g:h)", True),   # crossed intercepts
    ("y ~ x + f + (1 + x | g) + (1 | h)", False),      # slopes crossed with an intercept term
    ("y ~ x + offset(o) + (1 | g)", True),             # an offset
    ("y ~ 0 + x + (x || g)", False),                   # no intercept; uncorrelated terms of one grouping
    ("y ~ x + f", True),                               # no grouping term
    ("y ~ 0 + (1 | g)", True),                         # no fixed effect
]


def potentials(cells, whitened=False):
    """The log density's value and gradient, cell by cell and on the moments, at a random point of the
    unconstrained space (its sites' shapes are traced, not run: running numpyro's initialisation op by op
    took most of this test's time)."""
    ensure_jax(True, 1)
    import jax
    from numpyro import handlers
    from numpyro.distributions import biject_to
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import potential_energy

    from misterp.engines.whitening import pilot_expansion

    out = []
    for likelihood in ("cells", "moments"):
        data = {**model_data(cells, Priors(), likelihood), "prior_only": False}
        if whitened:
            data.update(pilot_expansion(cells, data, False))

        def unconstrained():
            seeded = handlers.substitute(handlers.seed(model, 0), substitute_fn=init_to_uniform)
            sites = handlers.trace(seeded).get_trace(**data).values()
            return {s["name"]: biject_to(s["fn"].support).inv(s["value"]) for s in sites
                    if s["type"] == "sample" and not s["is_observed"]}

        shapes = jax.eval_shape(unconstrained)
        keys = jax.random.split(jax.random.PRNGKey(1), len(shapes))
        z = {name: jax.random.normal(key, v.shape) for key, (name, v) in zip(keys, sorted(shapes.items()))}
        value, grad = jax.jit(jax.value_and_grad(lambda z: potential_energy(model, (), data, z)))(z)
        out.append((data["moments"], [(float(value), {name: np.asarray(g) for name, g in grad.items()})]))
    return out


@pytest.mark.parametrize("formula, duplicates", MODELS)
def test_moments_give_the_cells_log_density_and_gradient(formula, duplicates):
    cells, _ = prepare(Survey(survey(duplicates=duplicates), "y"), None, formula, family=GAUSSIAN)
    assert (cells.stats["n"].max() > 1) == duplicates
    (rows, at_cells), (moments, at_moments) = potentials(cells)
    assert rows is None and moments is not None
    for (v0, g0), (v1, g1) in zip(at_cells, at_moments):
        assert v1 == pytest.approx(v0, rel=1e-10, abs=1e-10)
        for name in g0:
            np.testing.assert_allclose(g1[name], g0[name], rtol=1e-10, atol=1e-10 * np.abs(g0[name]).max())


def test_moments_in_whitened_coordinates():
    cells, _ = prepare(Survey(survey(), "y"), None, "y ~ x + (1 | g) + (1 | h)", family=GAUSSIAN)
    (_, at_cells), (_, at_moments) = potentials(cells, whitened=True)
    for (v0, g0), (v1, g1) in zip(at_cells, at_moments):
        assert v1 == pytest.approx(v0, rel=1e-10)
        for name in g0:
            np.testing.assert_allclose(g1[name], g0[name], rtol=1e-9, atol=1e-10 * np.abs(g0[name]).max())


def test_squares_against_the_rows():
    """The quadratic form equals sum w (t - offset - F f - Z b)^2 for any f and b."""
    rng = np.random.default_rng(3)
    n, p, q = 50, 3, 7
    F, Z = rng.normal(size=(n, p)), sp.random(n, q, density=0.3, random_state=4, format="csr")
    w, t, offset = rng.integers(1, 5, n).astype(float), rng.normal(size=n) + 100, rng.normal(size=n)
    moments = build_moments(Quadratic(w, t, 0.0, float(w.sum())), F, Z, offset)
    for _ in range(3):
        f, b = rng.normal(size=p), rng.normal(size=q)
        direct = np.sum(w * (t - offset - F @ f - Z @ b) ** 2)
        assert moments.squares(f, b) == pytest.approx(direct, rel=1e-12)


def dense_costs(cells, data):
    """Both costs counted from dense matrices: the cells' nonzeros of [F Z] and A'A's nonzeros on and above
    the diagonal (the fixed blocks counted whole, as the moments store them)."""
    Z = cells.design.random_matrix(cells.table).toarray()
    p = int(data["has_intercept"]) + data["Xc"].shape[1]
    width = (np.count_nonzero(Z, axis=1).max() if Z.shape[1] else 0)
    if data["slopes"] is None:
        width = Z.shape[1] and len(cells.design.group_terms)
    gram = Z.T @ Z
    return cells.n_cells * (p + width), p * p + p * Z.shape[1] + np.count_nonzero(np.triu(gram))


def test_chosen_where_cheaper():
    # every respondent its own cell (a continuous score): the moments are far cheaper
    cells, _ = prepare(Survey(survey(), "y"), None, "y ~ x + f + (1 + x | g)", family=GAUSSIAN)
    data = model_data(cells, Priors())
    rows_cost, moments_cost = dense_costs(cells, data)
    assert moments_cost < rows_cost and data["moments"] is not None and data["moments"].cost == moments_cost
    # one cell for each of 60 pairs of two 50-level groupings: the cells are cheaper than the moments
    rng = np.random.default_rng(1)
    pairs = pd.DataFrame({"g": rng.permutation(60) % 50, "h": rng.permutation(60) % 50,
                          "y": rng.normal(size=60)})
    cells, _ = prepare(Survey(pairs, "y"), None, "y ~ (1 | g) + (1 | h)", family=GAUSSIAN)
    data = model_data(cells, Priors())
    rows_cost, moments_cost = dense_costs(cells, data)
    assert rows_cost < moments_cost and data["moments"] is None
    assert model_data(cells, Priors(), "moments")["moments"].cost == moments_cost


def test_only_a_quadratic_likelihood_has_moments():
    data = survey().assign(y=lambda d: (d["y"] > 50).astype(int))
    cells, _ = prepare(Survey(data, "y"), None, "y ~ x + (1 | g)", family=BINOMIAL)
    assert model_data(cells, Priors())["moments"] is None
    with pytest.raises(ValueError, match="not quadratic"):
        model_data(cells, Priors(), "moments")


def hsb_sim():
    from conftest import FIXTURES

    from misterp import Frame

    survey = pd.read_csv(FIXTURES / "hsb_sim_survey.csv")
    frame = Frame(pd.read_csv(FIXTURES / "hsb_sim_frame.csv"), "N")
    return prepare(Survey(survey, "y"), frame, "y ~ ses + sx + (1 + ses | school)", family=GAUSSIAN)[0], frame


def test_a_continuous_score_reads_moments_at_a_twentieth_of_the_cost():
    """The issue's model (bench/bayes_continuous.py): 7,185 respondents are 7,149 cells, and a gradient
    visits about 1,500 moments instead of 7,149 x 5 cell entries."""
    cells, _ = hsb_sim()
    data = model_data(cells, Priors())
    rows_cost, moments_cost = dense_costs(cells, data)
    assert cells.n_cells > 7000 and data["moments"].cost == moments_cost < rows_cost / 20


@pytest.mark.slow
def test_continuous_slope_model_matches_rstanarm():
    """stan_glmer on the same model and data (bench/r_stan_hsb.R): school means within 0.1 of rstanarm's
    posterior sd at the median school and 0.35 at the worst; the scalars' medians within 0.2 of their
    posterior sds and their sds within 10%."""
    import warnings

    from conftest import FIXTURES

    from misterp import BayesEngine, MisterpWarning, cell_draws, poststratify

    cells, frame = hsb_sim()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        fit = BayesEngine(seed=1, progress=False).fit(cells)
    assert fit.divergences == 0 and fit.problems() == []
    ours = poststratify(cell_draws(fit, frame), frame, by="school").table.set_index("school")
    theirs = pd.read_csv(FIXTURES / "hsb_sim_stan_groups.csv").set_index("school")
    gap = ((ours["estimate"] - theirs["mean"]).abs() / theirs["sd"]).to_numpy()
    assert np.median(gap) < 0.1 and gap.max() < 0.35
    r = pd.read_csv(FIXTURES / "hsb_sim_stan_scalars.csv").set_index("name")
    F = fit.term_factors()[0]
    cov = F @ np.swapaxes(F, 1, 2)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    coef = fit.coef_draws()
    draws = {"intercept": coef[:, 0], "ses": coef[:, 1], "sxMale": coef[:, 2], "sigma": fit._flat("aux"),
             "sd0": sd[:, 0], "sd1": sd[:, 1], "cor": cov[:, 1, 0] / (sd[:, 0] * sd[:, 1])}
    for name, value in draws.items():
        assert abs(np.median(value) - r.loc[name, "median"]) < 0.2 * r.loc[name, "sd"], name
        assert value.std(ddof=1) == pytest.approx(r.loc[name, "sd"], rel=0.1), name
