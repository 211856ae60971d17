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
    ("y ~ (1|g|h)", "exactly one '|'"),
])
def test_parse_errors_name_the_problem(text, fragment):
    with pytest.raises(MisterpInputError, match="lme4 syntax") as e:
        parse_formula(text)
    assert fragment in str(e.value)


def test_slopes_as_lme4_writes_them():
    """(x|g) is (1 + x|g); (0 + x|g) has no intercept; (x || g) is (1|g) + (0 + x|g)."""
    def effects(text):
        return [(g.name, g.effects, g.as_factor) for g in parse_formula(text).groups]

    assert effects("y ~ x + (1 + x|g)") == effects("y ~ x + (x|g)") == [("g", ("(Intercept)", "x"), (False, False))]
    assert effects("y ~ (0 + x|g)") == effects("y ~ (-1 + x|g)") == [("g", ("x",), (False,))]
    assert effects("y ~ (x || g)") == [("g", ("(Intercept)",), (False,)), ("g", ("x",), (False,))]
    assert effects("y ~ (1 + factor(z)|a/b)") == [("a", ("(Intercept)", "z"), (False, True)),
                                                  ("a:b", ("(Intercept)", "z"), (False, True))]
    assert parse_formula("y ~ (1 + x|g)").predictors == ["g", "x"]
    with pytest.raises(MisterpInputError, match="interaction slope"):
        parse_formula("y ~ (1 + x:z|g)")
