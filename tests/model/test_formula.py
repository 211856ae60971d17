import pytest

from misterp import MisterpInputError, parse_formula


def test_terms_and_interactions():
    f = parse_formula("y ~ x + factor(z) + a:b + (1|g) + (1|educ:age) + offset(o)")
    assert f.response == "y" and f.intercept and f.offset == "o"
    assert [t.name for t in f.fixed] == ["x", "factor(z)", "a:b"]
    assert [g.name for g in f.groups] == ["g", "educ:age"]
    assert f.predictors == ["x", "z", "a", "b", "g", "educ", "age", "o"]


def test_star_nesting_and_no_intercept():
    f = parse_formula("y ~ -1 + a*b + (1|s/c)")
    assert not f.intercept
    assert [t.name for t in f.fixed] == ["a", "b", "a:b"]
    assert [g.name for g in f.groups] == ["s", "s:c"]
    assert not parse_formula("y ~ 0 + x").intercept


@pytest.mark.parametrize("text, fragment", [
    ("y x + (1|g)", "exactly one '~'"),
    ("y ~ (1|g", "never closed"),
    ("y ~ x)", "no matching"),
    ("~ x", "no outcome"),
    ("y ~ ", "no predictors"),
    ("y ~ x + + z", "nothing after it"),
    ("y ~ log(x)", "not supported"),
    ("y ~ (1||g)", "'||'"),
])
def test_parse_errors_name_the_problem(text, fragment):
    with pytest.raises(MisterpInputError, match="lme4 syntax") as e:
        parse_formula(text)
    assert fragment in str(e.value)


def test_slopes_are_rejected_clearly():
    with pytest.raises(MisterpInputError, match="random slopes"):
        parse_formula("y ~ x + (1 + x|g)")
