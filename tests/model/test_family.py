"""The Family seam: the outcome's distribution and link live in model/family.py only."""

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln

from misterp.errors import MisterpInputError
from misterp.model.family import BINOMIAL, CATEGORICAL, GAUSSIAN, RowOutcome, family_named

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "misterp"
FAMILY_MODULE = PACKAGE / "model" / "family.py"
# names of outcome distributions and links, and the functions that compute them
FORBIDDEN = {"binomial", "bernoulli", "poisson", "gaussian", "logit", "logistic", "probit", "cloglog", "expit",
             "logaddexp", "log_choose", "gammaln", "multinomial", "softmax"}
# the binomial family's statistics: other modules ask the family, never name them
STAT_NAMES = {"successes", "trials"}


def _names(tree: ast.AST):
    """Identifiers and string constants of a module, with their line numbers (docstrings excluded)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id, node.lineno, "name"
        elif isinstance(node, ast.Attribute):
            yield node.attr, node.lineno, "name"
        elif isinstance(node, ast.alias):
            yield node.name.split(".")[-1], node.lineno, "name"
            if node.asname:
                yield node.asname, node.lineno, "name"
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            yield node.name, node.lineno, "name"
        elif isinstance(node, ast.arg):
            yield node.arg, node.lineno, "name"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value, node.lineno, "string"


def offences(path: Path) -> list[str]:
    found = []
    for name, line, kind in _names(ast.parse(path.read_text())):
        words = {w.lower() for w in name.replace(".", "_").split("_") if w}
        if kind == "name" and (name.lower() in FORBIDDEN or words & FORBIDDEN):
            found.append(f"{path.relative_to(PACKAGE)}:{line}: {name}")
        if kind == "string" and name in STAT_NAMES:
            found.append(f"{path.relative_to(PACKAGE)}:{line}: {name!r}")
    return found


def test_no_module_outside_the_families_names_a_distribution_or_link():
    # sim/ draws known populations' answers from a stated distribution: that is its job; the package's
    # __init__ only re-exports the families by name
    modules = [p for p in PACKAGE.rglob("*.py") if p not in (FAMILY_MODULE, PACKAGE / "__init__.py")
               and "sim" not in p.relative_to(PACKAGE).parts]
    assert len(modules) > 20
    assert [o for p in modules for o in offences(p)] == []


def test_the_check_can_fail():
    # the family module itself names them, and so does the article's simulation
    assert any("expit" in o for o in offences(FAMILY_MODULE))
    assert any("'successes'" in o for o in offences(FAMILY_MODULE))
    assert any("binomial" in o for o in offences(PACKAGE / "sim" / "simulate.py"))


def test_binomial_family_pieces_agree():
    rng = np.random.default_rng(0)
    stats = {"successes": rng.integers(0, 5, 30).astype(float), "trials": np.full(30, 5.0)}
    eta = rng.normal(size=30)
    mu, w, r, dw = BINOMIAL.working(stats, eta)
    h = 1e-6
    # the score is the residual, and the working weight its derivative
    np.testing.assert_allclose((BINOMIAL.loglik(stats, eta + h) - BINOMIAL.loglik(stats, eta - h)) / (2 * h), r,
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(BINOMIAL.mean_deriv(eta) * stats["trials"], w, rtol=1e-12)
    np.testing.assert_allclose(BINOMIAL.loglik(stats, eta, constant=False) + BINOMIAL.log_constant(stats),
                               BINOMIAL.loglik(stats, eta), rtol=1e-12)
    sim = BINOMIAL.simulate(stats, np.tile(mu, (4, 1)), rng)
    assert sim[BINOMIAL.response].shape == (4, 30) and np.all(sim[BINOMIAL.response] <= stats["trials"])


def test_poisson_family_pieces_agree():
    from misterp.model.family import POISSON

    rng = np.random.default_rng(1)
    stats = {"count": rng.poisson(3.0, 40).astype(float), "exposure": rng.uniform(0.5, 2.0, 40),
             "respondents": np.ones(40)}
    eta = rng.normal(0.5, 0.3, 40)
    mu, w, r, dw = POISSON.working(stats, eta)
    h = 1e-6
    np.testing.assert_allclose((POISSON.loglik(stats, eta + h) - POISSON.loglik(stats, eta - h)) / (2 * h), r,
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(w, stats["exposure"] * POISSON.mean(eta))
    np.testing.assert_allclose(dw, w)
    # the cell kernel plus the rows' constant is the rows' Poisson log-likelihood
    from scipy.stats import poisson

    rows = RowOutcome(stats["count"], np.ones(40), float(np.sum(stats["count"] * np.log(stats["exposure"])
                                                                - gammaln(stats["count"] + 1))))
    total = POISSON.loglik(stats, eta).sum() + rows.constant
    assert total == pytest.approx(poisson.logpmf(stats["count"], stats["exposure"] * np.exp(eta)).sum(), rel=1e-12)
    sim = POISSON.simulate(stats, np.tile(mu, (3, 1)), rng)
    assert sim["count"].shape == (3, 40) and np.all(sim["count"] == np.round(sim["count"]))


def test_rows_given_as_cells_keep_their_constant():
    import pandas as pd

    from misterp.model.formula import parse_formula

    data = pd.DataFrame({"s": [1, 3], "n": [2, 4], "g": ["a", "b"]})
    rows = BINOMIAL.rows(data, parse_formula("cbind(s, n - s) ~ (1|g)"))
    assert isinstance(rows, RowOutcome) and rows.count.tolist() == [2.0, 4.0]
    assert rows.constant == pytest.approx(np.log(2) + np.log(4))


def test_unknown_family_is_named():
    from misterp import MisterpInputError

    assert family_named("binomial") is BINOMIAL
    with pytest.raises(MisterpInputError, match="Unknown family 'negbin'"):
        family_named("negbin")


def test_a_family_is_taken_by_its_name_wherever_a_family_is_taken():
    import misterp
    from misterp.results.compare import add_comparisons

    survey = misterp.Survey(pd.DataFrame({"y": [1.5, 2.0, 3.5, 0.5], "g": ["a", "a", "b", "b"]}), "y")
    frame = misterp.Frame(pd.DataFrame({"g": ["a", "b"], "N": [1, 3]}), "N")
    cells, _ = misterp.prepare(survey, frame, "y ~ (1|g)", family="gaussian")
    assert cells.family is misterp.GAUSSIAN and misterp.collapse(survey, "y ~ (1|g)", " Gaussian ").family is GAUSSIAN
    estimate = misterp.poststratify(misterp.CellDraws(point=np.array([1.7, 2.0])), frame, by="g")
    table = add_comparisons(estimate, survey, frame, cells.design, family="gaussian")[0].table
    assert table["raw_mean"].tolist() == [1.75, 2.0]
    with pytest.raises(misterp.MisterpInputError, match="Unknown family 'gamma'"):
        misterp.prepare(survey, frame, "y ~ (1|g)", family="gamma")



@pytest.mark.parametrize("name, stats", [
    ("binomial", {"successes": np.array([0.0, 2.0, 5.0]), "trials": np.array([1.0, 4.0, 5.0])}),
    ("poisson", {"count": np.array([0.0, 3.0, 9.0]), "exposure": np.array([0.5, 1.0, 2.0])}),
    ("gaussian", {"n": np.array([1.0, 3.0, 2.0]), "total": np.array([0.3, 2.0, -1.0]),
                  "within": np.array([0.0, 1.5, 0.2])}),
])
def test_higher_derivatives_continue_the_working_weights(name, stats):
    """The log-likelihood's third and fourth derivatives in eta: minus the weights' derivative, and the
    derivative of that, by central differences."""
    family = family_named(name)
    eta, h = np.array([-1.2, 0.1, 0.9]), 1e-5
    third, fourth = family.higher_derivatives(stats, eta)
    assert third == pytest.approx(-family.working(stats, eta)[3], rel=1e-12, abs=1e-12)
    numeric = (family.higher_derivatives(stats, eta + h)[0] - family.higher_derivatives(stats, eta - h)[0]) / (2 * h)
    assert fourth == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    weights = (family.working(stats, eta + h)[1] - family.working(stats, eta - h)[1]) / (2 * h)
    assert third == pytest.approx(-weights, rel=1e-6, abs=1e-9)


def _categorical_stats(rng, n_cells=25, K=4):
    counts = rng.multinomial(6, np.full(K, 1.0 / K), size=n_cells).astype(float)
    return {"counts": counts, "trials": counts.sum(axis=1)}


def _pieces_agree_by_differences(family, stats, eta, score_tol, weight_tol):
    """A family with a category axis, at linear predictors ``eta`` (n_cells, m): the shares sum to 1, the link
    inverts the mean, and by central differences in each eta_j the score is the log-likelihood's gradient,
    the weight block its negative Hessian and mean_deriv the shares' derivative (tolerances (rtol, atol)).
    Returns the shares."""
    mu, w, r, _ = family.working(stats, eta)
    assert np.allclose(mu.sum(axis=1), 1.0) and np.allclose(family.link_function(mu), eta)
    h = 1e-5
    for j in range(eta.shape[1]):
        step = np.zeros(eta.shape[1])
        step[j] = h
        grad = (family.loglik(stats, eta + step) - family.loglik(stats, eta - step)) / (2 * h)
        np.testing.assert_allclose(grad, r[:, j], rtol=score_tol[0], atol=score_tol[1])
        r_plus, r_minus = family.working(stats, eta + step)[2], family.working(stats, eta - step)[2]
        np.testing.assert_allclose(-(r_plus - r_minus) / (2 * h), w[:, :, j], rtol=weight_tol[0], atol=weight_tol[1])
        dmu = (family.mean(eta + step) - family.mean(eta - step)) / (2 * h)
        np.testing.assert_allclose(dmu, family.mean_deriv(eta)[:, :, j], rtol=1e-6, atol=1e-9)
    return mu


def test_categorical_family_pieces_agree():
    """The score is the log-likelihood's gradient in each linear predictor, the weight block its negative
    Hessian, the shares sum to 1 and the link inverts the mean."""
    family = CATEGORICAL.bind(pd.Series(["b", "a", "d", "c"], name="y"))
    assert family.categories == ("a", "b", "c", "d") and family.predictor_names == ("b", "c", "d")
    rng = np.random.default_rng(1)
    stats = _categorical_stats(rng)
    eta = rng.normal(size=(25, 3))
    mu = _pieces_agree_by_differences(family, stats, eta, score_tol=(1e-6, 1e-7), weight_tol=(1e-5, 1e-7))
    # the constant makes it the multinomial's log-probability
    from scipy.stats import multinomial

    expected = [multinomial.logpmf(stats["counts"][c], stats["trials"][c], mu[c]) for c in range(25)]
    np.testing.assert_allclose(family.loglik(stats, eta), expected)


def test_categorical_reference_and_bad_input():
    y = pd.Series(["no", "yes", "maybe"], name="vote")
    family = CATEGORICAL.bind(y)
    assert family.reference == "maybe"
    assert CATEGORICAL.__class__(reference="yes").bind(y).predictor_names == ("maybe", "no")
    with pytest.raises(MisterpInputError, match="--reference 'nope' names no category"):
        CATEGORICAL.__class__(reference="nope").bind(y)
    with pytest.raises(MisterpInputError, match="single category"):
        CATEGORICAL.bind(pd.Series(["yes", "yes"], name="vote"))
    # a saved fit rebuilds the bound family from its state
    assert family_named("categorical", family.state()) == family


def test_ordinal_family_pieces_agree():
    """The cumulative logit's score and negative Hessian in its K - 1 linear predictors, by differences."""
    from misterp.model.family import ORDINAL

    family = ORDINAL.bind(pd.Series([3, 1, 2, 2], name="y"))
    assert family.categories == ("1", "2", "3") and family.predictor_names == ("1|2", "2|3")
    rng = np.random.default_rng(2)
    stats = _categorical_stats(rng, K=3)
    eta = np.sort(rng.normal(size=(25, 2)), axis=1)
    _pieces_agree_by_differences(family, stats, eta, score_tol=(1e-5, 1e-6), weight_tol=(1e-4, 1e-6))
