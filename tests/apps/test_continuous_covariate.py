"""A continuous covariate, given on a coarser grid in the frame than in the survey, through every
engine from the command line: the MRP estimate always comes out, and a comparison that cannot be
computed leaves its column empty with a note (it used to end in a traceback from raking)."""

import numpy as np
import pandas as pd
import pytest

from misterp.apps.cli import main


def school_survey(n_schools: int = 30, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Achievement on a socio-economic score with a slope by school (High School and Beyond's
    shape); the frame counts students by school, sex and the score rounded to 0.5."""
    rng = np.random.default_rng(seed)
    size = rng.integers(8, 40, n_schools)
    school = np.repeat([f"s{j:03d}" for j in range(n_schools)], size)
    sector = np.repeat(rng.choice(["Public", "Catholic"], n_schools), size)
    ses = np.round(np.repeat(rng.normal(0, 0.4, n_schools), size) + rng.normal(0, 0.65, size.sum()), 3)
    male = rng.choice(["Male", "Female"], size.sum())
    slope = 2.4 + np.repeat(rng.normal(0, 0.6, n_schools), size)
    y = 12.6 + np.repeat(rng.normal(0, 2, n_schools), size) + slope * ses + 1.2 * (male == "Male")
    survey = pd.DataFrame({"school": school, "sector": sector, "sx": male, "ses": ses,
                           "mathach": np.round(y + rng.normal(0, 6, size.sum()), 3)})
    frame = (survey.assign(ses=(survey.ses * 2).round() / 2)
             .groupby(["school", "sector", "sx", "ses"]).size().rename("N").reset_index())
    return survey, frame


@pytest.fixture()
def school_files(tmp_path):
    survey, frame = school_survey()
    survey.to_csv(tmp_path / "survey.csv", index=False)
    frame.to_csv(tmp_path / "frame.csv", index=False)
    return tmp_path / "survey.csv", tmp_path / "frame.csv"


def fit(capsys, survey, frame, formula, *options):
    code = main(["fit", "--survey", str(survey), "--frame", str(frame), "--count", "N", "--family", "gaussian",
                 "--formula", formula, "--by", "sector", "--no-progress", *options])
    out = capsys.readouterr()
    assert code == 0, out.err
    rows = out.out.strip().splitlines()
    assert rows[0].split()[:2] == ["sector", "estimate"] and len(rows) == 3, out.out
    return out.out, out.err


SLOPES = "mathach ~ ses + sx + (1 + ses | school)"


@pytest.mark.parametrize("formula, options", [
    (SLOPES, []),
    (SLOPES, ["--bootstrap", "20", "--seed", "1"]),
    ("mathach ~ ses + sx + sector", ["--engine", "glm"]),
])
def test_slope_on_a_continuous_score_through_the_engines(school_files, capsys, formula, options):
    out, err = fit(capsys, *school_files, formula, *options)
    assert "left out the ses margin" in err and "survey value(s) of ses are not among the frame's" in err
    assert "Traceback" not in err
    # frame cells are matched to respondents on the columns with levels, not on ses's grid values
    matched = "sx, school" if "|" in formula else "sx, sector"
    assert f"frame of {len(school_survey()[1])} cells, 0 of them without respondents of the same {matched} " in err
    # sx is still raked to: the raked column is there, and not the raw one
    assert "raked_mean" in out.splitlines()[0]


@pytest.mark.slow
def test_slope_on_a_continuous_score_by_bayes(school_files, capsys):
    out, err = fit(capsys, *school_files, SLOPES, "--engine", "bayes", "--chains", "2", "--warmup", "200",
                   "--draws", "200", "--seed", "1")
    assert "left out the ses margin" in err


def test_a_failing_comparison_leaves_its_column_empty_with_a_note(school_files, capsys, monkeypatch):
    """Whatever breaks inside a comparison, the estimate stands."""
    import misterp.results.compare as compare

    def broken(*args, **kwargs):
        raise ValueError("'list' argument must have no negative elements")

    monkeypatch.setattr(compare, "raking_weights", broken)
    out, err = fit(capsys, *school_files, SLOPES)
    assert "the raking estimate was left out: ValueError ('list' argument must have no negative elements)" in err
    assert out.splitlines()[1].split()[-1] == "NaN"  # raked_mean, empty


def test_every_extra_of_fit_degrades_to_a_note(school_files, capsys, monkeypatch):
    """Interval notes, comparisons, the coverage count and the model check: each may fail alone."""
    import misterp.data.checks as checks
    import misterp.results.compare as compare
    import misterp.results.interval_notes as interval_notes
    import misterp.results.model_checks as model_checks

    def broken(*args, **kwargs):
        raise RuntimeError("cannot handle this")

    for module, name in [(interval_notes, "interval_notes"), (compare, "add_comparisons"),
                         (checks, "coverage"), (model_checks, "predictive_check")]:
        monkeypatch.setattr(module, name, broken)
    out, err = fit(capsys, *school_files, SLOPES, "--check", "sx")
    for what in ["the interval notes", "the raw, weighted and raked comparisons", "the frame's coverage count",
                 "the model check"]:
        assert f"{what} was left out: RuntimeError (cannot handle this)" in err
    assert "raw_mean" not in out
