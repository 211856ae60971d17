"""docs/catalogue.md, case by case: bad input and edge cases through ``misterp fit``.

Each test writes a small survey and frame, runs the command line's ``main`` and
checks what docs/catalogue.md says it does: exit code 2 with one paragraph
naming the problem and the fix, or a table (with the notes it owes the user).
"""

import io
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import misterp as mp
from misterp.apps.cli import main

FORMULA = "y ~ male + (1|g)"


def survey_table(n=400, seed=0, levels="abcd"):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.integers(0, 2, n), "g": rng.choice(list(levels), n),
                         "male": rng.integers(0, 2, n)})


def frame_table(levels="abcd", counts=None):
    cells = pd.DataFrame([(g, m) for g in levels for m in (0, 1)], columns=["g", "male"])
    return cells.assign(N=counts if counts is not None else np.arange(1, len(cells) + 1) * 100)


def write(path, table_or_text):
    if isinstance(table_or_text, pd.DataFrame):
        table_or_text.to_csv(path, index=False)
    elif isinstance(table_or_text, bytes):
        path.write_bytes(table_or_text)
    else:
        path.write_text(table_or_text, encoding="utf-8")
    return path


def fit(tmp_path, capsys, survey, frame=None, formula=FORMULA, *extra):
    """Run ``misterp fit`` on these tables; returns (exit code, stdout, stderr)."""
    s = write(tmp_path / "survey.csv", survey)
    f = write(tmp_path / "frame.csv", frame_table() if frame is None else frame)
    code = main(["fit", "--survey", str(s), "--frame", str(f), "--formula", formula, "--count", "N",
                 "--seed", "1", *map(str, extra)])
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(result, *fragments):
    """Exit 2, one paragraph (one line, no traceback) holding every fragment; returns it."""
    code, out, err = result
    assert code == 2, err
    assert err.startswith("misterp: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def table(result) -> tuple[pd.DataFrame, str]:
    """The estimate table of a run that worked, and its notes."""
    code, out, err = result
    assert code == 0, err
    return pd.read_fwf(io.StringIO(out)), err


# -- exit code 2 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_other_separators_are_refused(tmp_path, capsys, sep, name):
    text = survey_table().to_csv(index=False).replace(",", sep)
    refused(fit(tmp_path, capsys, text), "survey file", f"looks {name}-separated", repr("y" + sep + "g")[1:-1],
            "comma-separated")
    text = frame_table().to_csv(index=False).replace(",", sep)
    refused(fit(tmp_path, capsys, survey_table(), text), "frame file", f"looks {name}-separated")


def _ragged(text: str, how: str) -> str:
    lines = text.splitlines()
    if how == "long":
        lines[5] += ",7"
    elif how == "short":
        lines[5] = lines[5].rsplit(",", 1)[0]
    else:  # every row one field longer than the header: pandas would make column 1 the index
        lines = [lines[0]] + [line + ",x" for line in lines[1:]]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("how, fragment", [("long", "line 6 has 4"), ("short", "line 6 has 2"),
                                           ("every", "line 2 has 4")])
def test_ragged_rows_are_refused(tmp_path, capsys, how, fragment):
    err = refused(fit(tmp_path, capsys, _ragged(survey_table().to_csv(index=False), how)),
                  "survey file", "differs from its header's 3", fragment)
    assert "must be quoted" in err


def test_a_short_row_in_the_frame_is_refused_even_where_the_model_does_not_look(tmp_path, capsys):
    # the frame's extra column is not in the model: pandas' missing value there would pass unseen
    frame = frame_table().assign(region="r")
    text = frame.to_csv(index=False).splitlines()
    text[3] = text[3].rsplit(",", 1)[0]
    refused(fit(tmp_path, capsys, survey_table(), "\n".join(text) + "\n"), "frame file", "line 4 has 3")


def test_a_quoted_comma_is_one_field(tmp_path, capsys):
    survey = survey_table().assign(g=lambda d: d["g"].map({"a": "a, x", "b": "b", "c": "c", "d": "d"}))
    frame = frame_table().assign(g=lambda d: d["g"].map({"a": "a, x", "b": "b", "c": "c", "d": "d"}))
    result, _ = table(fit(tmp_path, capsys, survey, frame, FORMULA, "--by", "g"))
    assert len(result) == 4


def test_text_that_is_not_utf8_is_refused(tmp_path, capsys):
    text = survey_table().assign(g=lambda d: d["g"].replace("a", "\u00e9")).to_csv(index=False)
    refused(fit(tmp_path, capsys, text.encode("latin-1")), "is not UTF-8", "CSV UTF-8")


@pytest.mark.parametrize("codes, fragment, fix", [
    ((1, 2), "the two values '1' and '2'", '"y: {1: 1, 2: 0}" (if 1 means yes)'),
    (("no", "yes"), "the two values 'no' and 'yes'", "\"y: {'yes': 1, 'no': 0}\""),
    (("No", "Yes"), "the two values 'No' and 'Yes'", "\"y: {'Yes': 1, 'No': 0}\""),
])
def test_two_codes_other_than_0_1_are_refused_never_guessed(tmp_path, capsys, codes, fragment, fix):
    survey = survey_table()
    coded = survey.assign(y=np.where(survey["y"] == 1, codes[1], codes[0]))
    refused(fit(tmp_path, capsys, coded), "Outcome column 'y' must hold only 0 and 1", fragment,
            "does not guess", "--map", fix)


def test_the_suggested_map_gives_the_0_1_fit(tmp_path, capsys):
    survey = survey_table()
    expected, _ = table(fit(tmp_path, capsys, survey))
    mapping = write(tmp_path / "map.yaml", "y: {'yes': 1, 'no': 0}\n")
    coded = survey.assign(y=np.where(survey["y"] == 1, "yes", "no"))
    got, _ = table(fit(tmp_path, capsys, coded, None, FORMULA, "--map", mapping))
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("value", [0, 1])
def test_an_outcome_that_never_varies_is_refused(tmp_path, capsys, value):
    refused(fit(tmp_path, capsys, survey_table().assign(y=value)),
            f"is {value} for every one of the 400 respondents", "nothing to model")


# -- a result ------------------------------------------------------------------------------------------

def test_a_utf8_byte_order_mark_is_read(tmp_path, capsys):
    expected, _ = table(fit(tmp_path, capsys, survey_table()))
    bom = "\ufeff".encode()
    got, _ = table(fit(tmp_path, capsys, bom + survey_table().to_csv(index=False).encode(),
                       bom + frame_table().to_csv(index=False).encode()))
    pd.testing.assert_frame_equal(got, expected)


def test_unicode_level_names_are_levels_like_any_other(tmp_path, capsys):
    names = {"a": "Zürich", "b": "東京", "c": "São Paulo", "d": "Ελλάδα"}
    # laplace: its estimate is the mode, the same whatever order the names sort in (inla's is a mean of draws,
    # and the draws follow the levels' order)
    expected, _ = table(fit(tmp_path, capsys, survey_table(), None, FORMULA, "--by", "g", "--engine", "laplace"))
    got, _ = table(fit(tmp_path, capsys, survey_table().assign(g=lambda d: d["g"].map(names)),
                       frame_table().assign(g=lambda d: d["g"].map(names)), FORMULA, "--by", "g", "--engine",
                       "laplace"))
    got = got.set_index("g").loc[[names[g] for g in "abcd"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.drop(columns="g"))


@pytest.mark.parametrize("where", ["survey", "frame", "header"])
def test_spaces_around_labels_are_stripped_by_the_readers(tmp_path, capsys, where):
    expected, _ = table(fit(tmp_path, capsys, survey_table(), None, FORMULA, "--by", "g"))
    survey, frame = survey_table(), frame_table()
    if where == "survey":
        survey = survey.assign(g=" " + survey["g"] + "  ")
    elif where == "frame":
        frame = frame.assign(g=frame["g"] + " ")
    else:  # "y, g, male" and "1, a, 0": spaces after the commas, in names and values
        survey = survey.to_csv(index=False).replace(",", ", ")
    got, _ = table(fit(tmp_path, capsys, survey, frame, FORMULA, "--by", "g"))
    pd.testing.assert_frame_equal(got, expected)


def test_padded_levels_of_tables_made_in_python_are_named():
    survey = mp.Survey(survey_table().assign(g=lambda d: d["g"] + " "), "y")
    frame = mp.Frame(frame_table(), "N")
    with pytest.raises(mp.MisterpInputError, match=r"only by spaces around them \('a ' vs 'a'"):
        mp.prepare(survey, frame, FORMULA)


def test_column_names_equal_but_for_spaces_are_refused(tmp_path, capsys):
    text = survey_table().assign(extra=1).to_csv(index=False).replace("extra", "g ", 1)
    refused(fit(tmp_path, capsys, text), "differ only by spaces", "['g']")


def test_huge_counts_poststratify_exactly(tmp_path, capsys):
    counts = [10 ** 12, 3 * 10 ** 15, 7, 10 ** 18, 10 ** 20, 1, 12345678901234567, 5]
    code, _, err = fit(tmp_path, capsys, survey_table(), frame_table(counts=counts), FORMULA, "--by", "g",
                       "--out", tmp_path / "est.csv", "--engine", "laplace")
    assert code == 0, err
    result = pd.read_csv(tmp_path / "est.csv")  # every digit, not the printed six
    # the same predictions, weighted in exact rational arithmetic
    frame = mp.read_frame(tmp_path / "frame.csv", "N")
    cells, _ = mp.prepare(mp.read_survey(tmp_path / "survey.csv", "y"), frame, FORMULA)
    with pytest.warns(mp.MisterpWarning):  # g's sd is 0 on these random answers
        point = mp.cell_draws(mp.LaplaceEngine().fit(cells), frame, seed=1).point
    for g, row in result.set_index("g").iterrows():
        rows = np.flatnonzero(frame.data["g"] == g)
        total = sum(Fraction(counts[i]) for i in rows)
        exact = sum(Fraction(counts[i]) * Fraction(float(point[i])) for i in rows) / total
        assert abs(Fraction(float(row["estimate"])) - exact) <= exact * Fraction(1, 10 ** 13)
        assert float(row["population"]) == float(total)
        assert 0 <= row["estimate"] <= 1 and row["lower"] <= row["estimate"] <= row["upper"]


def test_a_grouping_factor_with_one_level_is_fitted_as_singular(tmp_path, capsys):
    result, notes = table(fit(tmp_path, capsys, survey_table(levels="a"), frame_table(levels="a"), FORMULA,
                              "--engine", "laplace"))
    assert "boundary (singular) fit: in g" in notes
    raw = survey_table()["y"].mean()
    assert abs(result["estimate"][0] - raw) < 0.02  # one level: no pooling to do


def test_one_respondent_per_level(tmp_path, capsys):
    survey = pd.DataFrame({"y": [1, 0, 1, 0], "g": list("abcd"), "male": [0, 1, 0, 1]})
    result, notes = table(fit(tmp_path, capsys, survey))
    assert 0 < result["estimate"][0] < 1 and np.isfinite(result["sd"][0])
    assert "4 of them without respondents" in notes


@pytest.mark.parametrize("engine, formula, survey", [
    ("glm", "y ~ g", lambda d: d.assign(y=(d["g"] == "a").astype(int))),          # one level all 1
    ("glm", "y ~ male + g", lambda d: d.assign(y=d["male"])),                       # male decides y
    ("laplace", "y ~ male + (1|g)", lambda d: d.assign(y=d["male"])),
    ("laplace", "y ~ male + (1|g)", lambda d: d.assign(y=(d["g"] == "a").astype(int))),
])
def test_perfect_separation_is_a_result_with_a_warning(tmp_path, capsys, engine, formula, survey):
    frame = frame_table()
    result, notes = table(fit(tmp_path, capsys, survey(survey_table()), frame, formula, "--engine", engine))
    assert "warning: fitted probabilities numerically 0 or 1 occurred" in notes and "separation" in notes
    # the separated cells are predicted at their observed 0 or 1 (glmer's penalty keeps them a hair
    # inside), so the estimate is the frame's share of the yes cells
    data = survey(survey_table())
    share = (frame_table().merge(data.groupby(["g", "male"])["y"].mean().reset_index())
             .eval("N * y").sum() / frame["N"].sum())
    assert abs(result["estimate"][0] - share) < (1e-6 if engine == "glm" else 1e-4)  # printed to 6 digits


def test_extreme_probabilities_are_estimated_without_alarm(tmp_path, capsys):
    # one group answers yes once in 10,000, another all but once in 10,000: rare, not separated
    rng = np.random.default_rng(3)
    p = {"a": 1e-4, "b": 0.5, "c": 0.5, "d": 1 - 1e-4}
    g = np.repeat(list("abcd"), 20000)
    survey = pd.DataFrame({"y": rng.binomial(1, [p[v] for v in g]), "g": g, "male": rng.integers(0, 2, len(g))})
    result, notes = table(fit(tmp_path, capsys, survey, None, FORMULA, "--by", "g", "--engine", "laplace"))
    assert "numerically 0 or 1" not in notes and "did not converge" not in notes
    est = result.set_index("g")["estimate"]
    assert 0 < est["a"] < 5e-4 and 1 - 5e-4 < est["d"] < 1
    # the article's interval is estimate -/+ 2 sd, symmetric: near 0 or 1 it may cross them (the catalogue
    # says so); the estimate itself never does
    np.testing.assert_allclose(result["upper"] - result["estimate"], result["estimate"] - result["lower"],
                               atol=1e-6)


def test_a_singular_fit_is_a_result_with_a_warning(tmp_path, capsys):
    # answers independent of g: its sd is estimated at 0
    result, notes = table(fit(tmp_path, capsys, survey_table(), None, FORMULA, "--engine", "laplace"))
    assert "warning: boundary (singular) fit: in g a variance is 0" in notes
    assert abs(result["estimate"][0] - result["raw_mean"][0]) < 0.05


def test_non_convergence_is_reported_by_glm(tmp_path, capsys, monkeypatch):
    from misterp.engines import glm

    real = glm.irls
    monkeypatch.setattr(glm, "irls", lambda X, stats, offset, family, tol, max_iter: real(X, stats, offset, family,
                                                                                           tol, 1))
    _, notes = table(fit(tmp_path, capsys, survey_table(), None, "y ~ male + g", "--engine", "glm"))
    assert "warning: glm did not converge" in notes
    cells, _ = mp.prepare(mp.Survey(survey_table(), "y"), None, "y ~ male + g")
    with pytest.warns(mp.MisterpWarning, match="did not converge"):
        assert "glm did not converge" in mp.GlmEngine(max_iter=1).fit(cells).problems()[0]


def test_non_convergence_is_reported_by_laplace(tmp_path, capsys, monkeypatch):
    from misterp.engines import optimize

    real = optimize.minimize

    def one_step(*args, options=None, **kwargs):  # L-BFGS-B stopped after one iteration
        return real(*args, options={**(options or {}), "maxiter": 1}, **kwargs)

    monkeypatch.setattr(optimize, "minimize", one_step)
    survey = survey_table().assign(y=lambda d: (np.random.default_rng(1).random(len(d))
                                                < np.where(d["g"] == "a", 0.2, 0.7)).astype(int))
    _, notes = table(fit(tmp_path, capsys, survey, None, FORMULA, "--engine", "laplace"))
    assert "warning: the optimizer did not converge" in notes


def test_an_intercept_only_model_rakes_to_no_margins(tmp_path, capsys):
    # no main effects to rake to: the raked mean is the raw mean (this crashed before)
    result, _ = table(fit(tmp_path, capsys, survey_table(), None, "y ~ 1", "--engine", "glm"))
    assert result["raked_mean"][0] == pytest.approx(result["raw_mean"][0], abs=1e-6)
    assert result["estimate"][0] == pytest.approx(survey_table()["y"].mean(), abs=1e-6)


def test_true_false_outcome_reads_as_1_0(tmp_path, capsys):
    expected, _ = table(fit(tmp_path, capsys, survey_table()))
    got, _ = table(fit(tmp_path, capsys, survey_table().assign(y=lambda d: d["y"] == 1)))
    pd.testing.assert_frame_equal(got, expected)


def test_counts_of_zero_in_a_whole_category_are_reported_as_separation(tmp_path, capsys):
    # poisson: no visits at all in g = a pushes its rate towards 0, as separation does a probability
    survey = survey_table().assign(y=lambda d: np.where(d["g"] == "a", 0,
                                                        np.random.default_rng(2).poisson(2.0, len(d))))
    result, notes = table(fit(tmp_path, capsys, survey, None, "y ~ male + g", "--engine", "glm",
                              "--family", "poisson", "--by", "g"))
    assert "warning: fitted means numerically 0 occurred in 2 of 8 survey cells" in notes
    assert result.set_index("g")["estimate"]["a"] < 1e-8
