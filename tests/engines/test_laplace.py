import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES, SEVEN_TERM, r_scalars
from misterp import CellDraws, Frame, LaplaceEngine, Survey, cell_draws, poststratify, prepare
from misterp.engines.deviance import Problem
from misterp.engines.optimize import Objective
from misterp.sim.rcompat import RRandom


@pytest.fixture(scope="module")
def article_fit(article_survey, article_frame):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    return LaplaceEngine().fit(cells)


def test_article_glmer_parity(article_fit, article_frame, ref):
    f = article_fit
    np.testing.assert_allclose(f.beta, ref["glmer_fixef"], atol=1e-5)
    np.testing.assert_allclose(f.ranef()["class"], ref["glmer_ranef"], atol=1e-5)
    np.testing.assert_allclose(f.coef()["class"]["(Intercept)"], ref["glmer_coef_class"], atol=1e-5)
    pred = f.predict(article_frame.data)
    np.testing.assert_allclose(pred, ref["glmer_predict"], atol=1e-5)
    est = poststratify(CellDraws(point=pred), article_frame).value
    assert abs(est - ref["glmer_poststrat"][0]) < 1e-5
    np.testing.assert_allclose(f.varcorr()["sd"], ref["glmer_sd_class"], atol=1e-4)
    assert abs(f.loglik - ref["glmer_loglik"][0]) < 1e-4
    assert abs(f.deviance - ref["glmer_deviance_laplace"][0]) < 2e-4
    assert not f.singular and f.info["converged"]


def test_gradient_matches_finite_differences(cces_all):
    sample = cces_all.iloc[:3000]
    cells, _ = prepare(Survey(sample, "abortion"), None, "abortion ~ male + (1|state) + (1|eth) + (1|educ:age)")
    obj = Objective(Problem(cells))
    params = np.array([0.4, 0.3, 0.2, -0.3, 0.3])
    _, grad = obj(params)
    h = 1e-5
    for j in range(len(params)):
        e = np.zeros_like(params)
        e[j] = h
        numeric = (obj.state(params + e).objective - obj.state(params - e).objective) / (2 * h)
        assert abs(numeric - grad[j]) < 1e-4 * max(1, abs(numeric)), j


def fit_cces(data, frame, formula):
    cells, _ = prepare(Survey(data, "abortion"), frame, formula)
    fit = LaplaceEngine().fit(cells)
    states = poststratify(CellDraws(point=fit.predict(frame.data)), frame, by="state").table
    return fit, states


def sample_rows():
    rows = pd.read_csv(FIXTURES / "cces_sample5000_rows.csv")["row"].to_numpy()
    # the sample is R's own: set.seed(2026); sample(59810, 5000)
    np.testing.assert_array_equal(RRandom(2026).sample(59810, 5000), rows)
    return rows - 1


@pytest.mark.parametrize("tag, formula, rows", [
    ("seven_all", SEVEN_TERM, None),
    ("seven_sample5000", SEVEN_TERM, "sample"),
    ("fixedage_sample5000", "abortion ~ male + factor(age) + (1|state) + (1|educ:eth)", "sample"),
])
def test_cces_models_match_lme4(tag, formula, rows, cces_all, cces_frame):
    data = cces_all if rows is None else cces_all.iloc[sample_rows()].reset_index(drop=True)
    fit, states = fit_cces(data, cces_frame, formula)
    ref = r_scalars(tag)
    r_states = pd.read_csv(FIXTURES / f"cces_{tag}_state.csv")
    assert list(states["state"]) == list(r_states["state"])
    tol = 2e-3 if tag.startswith("seven") else 1e-4
    np.testing.assert_allclose(states["estimate"], r_states["estimate"], atol=tol)
    # our optimum is at least as good as lme4's
    assert fit.loglik >= ref["loglik"] - 1e-4
    sds = fit.varcorr().set_index("term")["sd"]
    for name in ref.index[ref.index.str.startswith("sd:")]:
        assert abs(sds[name[3:]] - ref[name]) < 1e-3, name
    fixef = fit.fixef()
    for name in ref.index[ref.index.str.startswith("fixef:")]:
        ours = fixef[name[6:].replace("factor(age)", "age")]
        assert abs(ours - ref[name]) < 1e-3, name
    assert fit.singular == bool(ref["singular"])


def _canonical(label):
    """'0.5:Black' and '0.50:Black' alike: numbers by value, other parts as they are."""
    def part(p):
        try:
            return repr(float(p))
        except ValueError:
            return p
    return ":".join(part(p) for p in str(label).split(":"))


def test_cces_ranef_match_lme4(cces_all, cces_frame):
    fit, _ = fit_cces(cces_all.iloc[sample_rows()].reset_index(drop=True), cces_frame, SEVEN_TERM)
    r = pd.read_csv(FIXTURES / "cces_seven_sample5000_ranef.csv")
    for term, group in r.groupby("term"):
        ours = fit.ranef()[term].rename(index=_canonical)
        theirs = pd.Series(group["value"].to_numpy(), index=group["level"].map(_canonical))
        np.testing.assert_allclose(ours[theirs.index], theirs, atol=1e-4, err_msg=term)


def test_new_levels_get_population_prediction(article_fit):
    frame = Frame(pd.DataFrame({"class": [1, 6], "N": [10, 10]}), "N")
    pred = article_fit.predict(frame.data)
    assert pred[1] == pytest.approx(1 / (1 + np.exp(-article_fit.beta[0])))
    draws = cell_draws(article_fit, frame, n_draws=4000, seed=3)
    assert draws.unseen == {"class": ["6"]}
    sims = next(draws.draws.chunks(4000))
    logit = np.log(sims[:, 1] / (1 - sims[:, 1]))
    # unseen level: fixed-effect uncertainty plus a N(0, sd^2) effect
    expected = np.sqrt(article_fit.vcov().iloc[0, 0] + article_fit.theta[0] ** 2)
    assert logit.std() == pytest.approx(expected, rel=0.05)


def test_singular_fit_is_flagged():
    # identical proportions in every group: no between-group variance, theta = 0
    data = pd.DataFrame({"y": np.tile([1] * 20 + [0] * 30, 8), "g": np.repeat(np.arange(8), 50)})
    cells, _ = prepare(Survey(data, "y"), None, "y ~ (1|g)")
    fit = LaplaceEngine().fit(cells)
    assert fit.singular and fit.theta[0] == 0.0
    assert fit.beta[0] == pytest.approx(np.log(20 / 30), abs=1e-6)


def test_preconditioned_refit_reaches_the_same_optimum(cces_all):
    from misterp.engines.optimize import hessian_at, optimize, start_values

    cells, _ = prepare(Survey(cces_all.iloc[:4000], "abortion"), None,
                       "abortion ~ male + (1|state) + (1|eth) + (1|educ:age)")
    fit = LaplaceEngine().fit(cells)
    prob = Problem(cells)
    start = np.concatenate([fit.theta, fit.beta])
    H = hessian_at(prob, start, fit.u)
    assert np.all(np.linalg.eigvalsh(H) > 0)
    start0, u0 = start_values(cells, prob)
    plain, _, _ = optimize(prob, start0, u0)
    pre, _, info = optimize(prob, start0, u0, hessian=H)
    np.testing.assert_allclose(pre, plain, atol=1e-6)
    np.testing.assert_allclose(pre, start, atol=1e-6)


def test_a_fit_that_did_not_converge_is_told(article_fit, monkeypatch):
    """A library user hears of it: a MisterpWarning when fitting, and the same text in problems()."""
    import misterp.engines.laplace as laplace
    from misterp import MisterpWarning

    real = laplace.optimize

    def stopped_early(*args, **kwargs):
        params, state, info = real(*args, **kwargs)
        return params, state, {**info, "converged": False, "message": "ABNORMAL_TERMINATION_IN_LNSRCH"}

    monkeypatch.setattr(laplace, "optimize", stopped_early)
    with pytest.warns(MisterpWarning, match="the optimizer did not converge \\(ABNORMAL"):
        fit = LaplaceEngine().fit(article_fit.cells)
    assert fit.problems()[0].startswith("the optimizer did not converge")
    assert article_fit.problems() == []
    assert "1 problem(s)" in repr(fit) and "warning: the optimizer" in fit.summary()


def test_singular_threshold_is_the_engines(article_fit):
    loose = LaplaceEngine(singular_tol=1.0).fit(article_fit.cells)  # theta = 0.71 < 1: singular by this rule
    assert loose.singular and loose.singular_terms() == ["class"] and not article_fit.singular
