"""Large random-effect terms: the sparse factorisation (engines/linalg) against dense linear
algebra, the sparse engine paths against the dense ones, and against lme4 on a binomial county
model (3,000 counties, 50 states), a gaussian model crossed in 3,000 schools and 1,000
neighbourhoods (tests/fixtures/r/make_sparse.R) and a rating design crossed at random
(tests/fixtures/r/make_sparse_rating.R); data from bench/sparse.py --write-fixtures."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import FIXTURES
from misterp import Frame, LaplaceEngine, MisterpWarning, Survey, bootstrap, cell_draws, poststratify, prepare
from misterp.engines import deviance, lmm
from misterp.engines.laplace import MixedFit
from misterp.engines.sparse import Elimination, PrecisionCovariance
from misterp.model.family import GAUSSIAN

COUNTY = "y ~ male + (1|county) + (1|state) + (1|age) + (1|eth)"
CROSSED = "score ~ x + male + (1|school) + (1|hood)"
RATING = "y ~ x + (1|rater) + (1|rated) + (1|unit:x)"
COUNTY_KEYS = ["county", "state", "male", "age", "eth"]


def county_cells(counties=None):
    data = pd.read_csv(FIXTURES / "sparse_county.csv")
    if counties is not None:
        data = data[data.county.isin(sorted(data.county.unique())[:counties])].reset_index(drop=True)
    return prepare(Survey(data, "y", trials="n"), None, COUNTY)[0]


def crossed_cells(schools=None):
    data = pd.read_csv(FIXTURES / "sparse_crossed.csv")
    if schools is not None:
        data = data[data.school.isin(sorted(data.school.unique())[:schools])].reset_index(drop=True)
    return prepare(Survey(data, "score"), None, CROSSED, family=GAUSSIAN)[0]


def lme4(name, part):
    table = pd.read_csv(FIXTURES / f"sparse_{name}_lme4_{part}.csv")
    return table if part == "pred" else table.set_index(table.columns[0])["value"]


def fit_with(cells, sparse, reml=True, **kwargs):
    """A fit with the sparse path forced on (threshold 0) or off (threshold above any q)."""
    old = deviance.SPARSE_Q, lmm.SPARSE_Q
    deviance.SPARSE_Q = lmm.SPARSE_Q = 0 if sparse else 10 ** 9
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MisterpWarning)
            return LaplaceEngine(reml=reml).fit(cells, **kwargs)
    finally:
        deviance.SPARSE_Q, lmm.SPARSE_Q = old


# -- the factorisation ---------------------------------------------------------------------------

def crossed_matrix(seed, sizes=(700, 90, 7), n=3500):
    """H = Lambda Z'WZ Lambda + I of random crossed intercepts, as COO."""
    rng = np.random.default_rng(seed)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    cols = np.stack([rng.integers(0, s, n) + a for s, a in zip(sizes, starts[:-1])])
    Z = sp.csr_matrix((np.ones(cols.size), (np.tile(np.arange(n), len(sizes)), cols.ravel())), shape=(n, starts[-1]))
    lam = rng.uniform(0.2, 1.5, starts[-1])
    H = sp.diags(lam) @ Z.T @ sp.diags(rng.uniform(0.5, 2.0, n)) @ Z @ sp.diags(lam) + sp.eye(starts[-1])
    return H.tocoo(), Z, rng


@pytest.mark.parametrize("seed, grouped, sizes", [(0, False, (700, 90, 7)), (1, False, (700, 90, 7)),
                                                 (0, True, (700, 90, 7)), (2, False, (200, 50, 7))])
def test_factor_matches_dense_linear_algebra(seed, grouped, sizes):
    H, _, rng = crossed_matrix(seed, sizes)
    q = H.shape[0]
    groups = np.repeat(np.arange(len(sizes)), sizes) if grouped else None
    elim = Elimination(q, H.row, H.col, groups=groups)
    if q > 400:  # a real elimination, not all dense: minimum degree's sparse stage, then a dense one
        assert elim.stages and len(elim.tail) < q and elim.dense_tail
        assert [s.dense for s in elim.stages] == ([True] if grouped else [False, True])
    else:
        assert not elim.stages
    values = np.zeros(elim.nnz)
    np.add.at(values, elim.positions(H.row, H.col), H.data)
    factor = elim.factor(values)
    dense = H.toarray()
    inverse = np.linalg.inv(dense)
    b = rng.standard_normal((q, 3))
    assert factor.logdet == pytest.approx(np.linalg.slogdet(dense)[1], rel=1e-12)
    np.testing.assert_allclose(factor.solve(b), np.linalg.solve(dense, b), atol=1e-12)
    np.testing.assert_allclose(factor.solve(b[:, 0]), np.linalg.solve(dense, b[:, 0]), atol=1e-12)
    # selected inversion: H^-1 on H's pattern
    np.testing.assert_allclose(factor.inverse(), inverse[elim.rows, elim.cols], atol=1e-13)
    np.testing.assert_allclose(factor.inverse_diagonal(), np.diag(inverse), atol=1e-13)
    # whitening: W W' = H^-1 for W = whiten(I)
    W = factor.whiten(np.eye(q))
    np.testing.assert_allclose(W @ W.T, inverse, atol=1e-12)


def test_crossed_terms_eliminate_the_cheaper_term_first():
    """Random crossing without locality: minimum degree alone starts from the larger term's rarest
    levels and leaves a dense tail of both terms; by terms, the smaller side (by degree squared)
    goes first as one diagonal block, and the rest is one dense tail."""
    sizes = (900, 300, 6)
    H, _, _ = crossed_matrix(5, sizes, n=12000)
    q = H.shape[0]
    by_degree = Elimination(q, H.row, H.col)
    by_term = Elimination(q, H.row, H.col, groups=np.repeat(np.arange(3), sizes))
    assert len(by_term.stages) == 1 and by_term.stages[0].n_i == 900 and len(by_term.tail) == 306
    assert by_term.fill < by_degree.fill


def test_factor_refuses_indefinite_matrices():
    H, _, _ = crossed_matrix(2)
    elim = Elimination(H.shape[0], H.row, H.col)
    values = np.zeros(elim.nnz)
    np.add.at(values, elim.positions(H.row, H.col), H.data)
    with pytest.raises(np.linalg.LinAlgError):
        elim.factor(-values)


def test_precision_covariance_matches_the_dense_inverse():
    H, Z, rng = crossed_matrix(3)
    q, p = H.shape[0], 3
    elim = Elimination(q, H.row, H.col)
    h = np.zeros(elim.nnz)
    np.add.at(h, elim.positions(H.row, H.col), H.data)
    X = rng.standard_normal((Z.shape[0], p))
    xtwx, zx = X.T @ X, rng.uniform(0.5, 1.0, q)[:, None] * (Z.T @ X)
    cov = PrecisionCovariance(xtwx, zx, elim, h, scale=2.0)
    dense = 2.0 * np.linalg.inv(np.block([[xtwx, zx.T], [zx, H.toarray()]]))
    np.testing.assert_allclose(cov.block(p), dense[:p, :p], atol=1e-14)
    np.testing.assert_allclose(cov.diagonal(), np.diag(dense), atol=1e-13)
    draws = cov.draws(np.zeros(p + q), 20000, np.random.default_rng(0))
    pick = [0, 1, 2, 3, 50, q]
    np.testing.assert_allclose(np.cov(draws[:, pick].T), dense[np.ix_(pick, pick)], atol=0.03)
    again = PrecisionCovariance.from_arrays(cov.arrays())
    np.testing.assert_allclose(again.block(p), cov.block(p), rtol=1e-14)


# -- sparse against dense engine paths on a moderate q ---------------------------------------------

def test_sparse_glmer_matches_dense_path():
    cells = county_cells(400)
    assert cells.design.n_random > 400
    dense, sparse = fit_with(cells, False), fit_with(cells, True)
    assert isinstance(sparse.cov, PrecisionCovariance) and isinstance(dense.cov, np.ndarray)
    np.testing.assert_allclose(sparse.beta, dense.beta, atol=1e-8)
    np.testing.assert_allclose(sparse.theta, dense.theta, atol=1e-8)
    np.testing.assert_allclose(sparse.u, dense.u, atol=1e-8)
    assert sparse.objective == pytest.approx(dense.objective, abs=1e-8)
    np.testing.assert_allclose(sparse.vcov().to_numpy(), dense.vcov().to_numpy(), atol=1e-10)
    np.testing.assert_allclose(sparse.cov.diagonal(), np.diag(dense.cov), atol=1e-10)
    # the exact gradient, away from the optimum and for a batch of two
    params = np.vstack([np.concatenate([dense.theta, dense.beta]) * 1.2, np.concatenate([dense.theta, dense.beta])])
    grads = []
    for threshold in (10 ** 9, 0):
        deviance.SPARSE_Q = threshold
        try:
            prob = deviance.Problem(cells, np.vstack([cells.stats["successes"]] * 2))
            grads.append(deviance.gradient(prob, deviance.pirls(prob, params, np.zeros((2, prob.q)))))
        finally:
            deviance.SPARSE_Q = 300
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("reml", [True, False])
def test_sparse_lmer_matches_dense_path(reml):
    cells = crossed_cells(400)
    dense, sparse = fit_with(cells, False, reml), fit_with(cells, True, reml)
    assert isinstance(sparse.cov, PrecisionCovariance)
    theta = np.array([0.7, 0.3])
    values = []
    for threshold in (10 ** 9, 0):
        lmm.SPARSE_Q = threshold
        try:
            values.append(lmm.ProfiledDeviance(cells, reml).value_and_gradient(theta))
        finally:
            lmm.SPARSE_Q = 300
    assert values[1][0] == pytest.approx(values[0][0], rel=1e-12)
    np.testing.assert_allclose(values[1][1], values[0][1], rtol=1e-8)
    assert sparse.objective == pytest.approx(dense.objective, abs=1e-7)
    np.testing.assert_allclose(sparse.beta, dense.beta, atol=1e-8)
    np.testing.assert_allclose(sparse.theta, dense.theta, atol=1e-6)  # L-BFGS-B's paths differ by rounding
    np.testing.assert_allclose(sparse.vcov().to_numpy(), dense.vcov().to_numpy(), rtol=1e-6)


def test_sparse_fit_saves_and_draws():
    fit = fit_with(county_cells(400), True)
    meta, arrays = fit.saved_state()
    assert "cov" not in arrays  # no dense (p + q)^2 matrix
    again = MixedFit.from_saved_state(fit.cells, meta, arrays)
    np.testing.assert_allclose(again.vcov().to_numpy(), fit.vcov().to_numpy(), rtol=1e-12)
    a = fit.parameter_draws(50, np.random.default_rng(4)).coef
    b = again.parameter_draws(50, np.random.default_rng(4)).coef
    np.testing.assert_allclose(a, b, rtol=1e-10)
    assert a.shape == (50, len(fit.beta) + fit.design.n_random)


# -- the sparse path against lme4 ------------------------------------------------------------------

@pytest.fixture(scope="module")
def county_fit():
    return fit_with(county_cells(), True)


@pytest.fixture(scope="module")
def crossed_fit():
    return fit_with(crossed_cells(), True)


def test_county_glmer_matches_lme4(county_fit):
    fit = county_fit
    assert fit.design.n_random == 3058 and isinstance(fit.cov, PrecisionCovariance)
    fe, info, pred = lme4("county", "fixef"), lme4("county", "info"), lme4("county", "pred")
    np.testing.assert_allclose(fit.beta, fe.to_numpy(), atol=1e-5)
    assert fit.loglik >= info["loglik"] - 1e-6  # lme4's optimum or better
    sds = fit.varcorr().set_index("term")["sd"]
    np.testing.assert_allclose(sds[["county", "state", "age", "eth"]].to_numpy(),
                               info[["sd.county", "sd.state", "sd.age", "sd.eth"]].to_numpy(), atol=1e-4)
    ours = fit.predict(pred[COUNTY_KEYS], type="response")
    np.testing.assert_allclose(ours, pred["pred"].to_numpy(), atol=1e-4)


def test_crossed_lmer_matches_lme4(crossed_fit):
    fit = crossed_fit
    assert fit.design.n_random == 4000 and isinstance(fit.cov, PrecisionCovariance)
    fe, info, pred = lme4("crossed", "fixef"), lme4("crossed", "info"), lme4("crossed", "pred")
    np.testing.assert_allclose(fit.beta, fe.to_numpy(), atol=1e-5)
    assert fit.reml_criterion <= info["deviance"] + 1e-6  # lme4's optimum or better
    assert fit.sigma == pytest.approx(info["sd.Residual"], abs=1e-5)
    ours = fit.predict(pred[["school", "hood", "x", "male"]])
    np.testing.assert_allclose(ours, pred["pred"].to_numpy(), atol=1e-4)


@pytest.fixture(scope="module")
def rating_fit():
    data = pd.read_csv(FIXTURES / "sparse_rating.csv")
    frame = Frame(data.drop(columns="y").assign(n=1), "n")  # the survey's own rows, one each
    cells = prepare(Survey(data, "y"), frame, RATING, family=GAUSSIAN)[0]
    return LaplaceEngine().fit(cells), frame


def test_rating_lmer_without_locality_matches_lme4(rating_fit):
    """73,000 ratings, 3,000 raters x 1,100 rated at random (tests/fixtures/r/make_sparse_rating.R)."""
    fit, frame = rating_fit
    assert fit.design.n_random == 4128 and isinstance(fit.cov, PrecisionCovariance)
    # what keeps it fast: the raters go first, leaving a dense tail of the 1,128 others (minimum
    # degree alone left 2,580), and BFGS from the moment start needs 7 evaluations (L-BFGS-B from
    # lme4's start 33)
    assert len(fit.cov.elim.stages) == 1 and len(fit.cov.elim.tail) == 1128
    assert fit.info["evaluations"] <= 8
    fe, info, pred = lme4("rating", "fixef"), lme4("rating", "info"), lme4("rating", "pred")
    np.testing.assert_allclose(fit.beta, fe.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(fit.theta, info.filter(like="theta.").to_numpy(), atol=1e-5)
    sds = fit.varcorr().set_index("term")["sd"]
    np.testing.assert_allclose(sds[["rater", "rated", "unit:x", "Residual"]].to_numpy(),
                               info[["sd.rater", "sd.rated", "sd.unit:x", "sd.Residual"]].to_numpy(), atol=1e-5)
    assert info["reml"] - 1e-5 <= fit.reml_criterion <= info["reml"] + 1e-6  # lme4's optimum or better
    np.testing.assert_allclose(fit.predict(pred[["rater", "rated", "unit", "x"]]), pred["pred"].to_numpy(), atol=1e-5)
    estimate = poststratify(cell_draws(fit, frame, n_draws=2, seed=1), frame, by="unit").table.set_index("unit")
    unit = pd.read_csv(FIXTURES / "sparse_rating_lme4_unit.csv").set_index("unit")["estimate"]
    np.testing.assert_allclose(estimate.loc[unit.index, "estimate"].to_numpy(), unit.to_numpy(), atol=1e-5)


# -- the bootstrap on the sparse path --------------------------------------------------------------

@pytest.mark.parametrize("use_u", [True, False])
def test_sparse_bootstrap_matches_dense_path(use_u):
    cells = county_cells(350)
    boots = []
    for sparse in (False, True):
        fit = fit_with(cells, sparse)
        old = deviance.SPARSE_Q
        deviance.SPARSE_Q = 0 if sparse else 10 ** 9
        try:
            boots.append(bootstrap(fit, nsim=6, use_u=use_u, seed=3, progress=False,
                                   statistic=lambda f: f.vcov().to_numpy().ravel()))
        finally:
            deviance.SPARSE_Q = old
    dense, sparse = boots
    assert sparse.failed == dense.failed == 0
    np.testing.assert_allclose(sparse.theta, dense.theta, atol=1e-5)
    np.testing.assert_allclose(sparse.params, dense.params, atol=1e-5)
    np.testing.assert_allclose(sparse.t, dense.t, rtol=1e-4)


def test_sparse_lmer_bootstrap_runs_on_the_sparse_path():
    fit = fit_with(crossed_cells(400), True)
    boot = bootstrap(fit, nsim=4, use_u=False, seed=1, progress=False,
                     statistic=lambda f: [float(isinstance(f.cov, PrecisionCovariance)), f.sigma])
    assert boot.failed == 0 and np.all(boot.t[:, 0] == 1.0)
    assert np.all(np.abs(boot.t[:, 1] - fit.sigma) < 0.05)
    assert np.all(np.isfinite(boot.params))
