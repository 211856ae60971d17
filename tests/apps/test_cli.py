"""The command line: end to end, and every bad input gives a message and exit code 2."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import CCES, cli_error as bad, cli_run as run
from misterp.apps.cli import main


@pytest.fixture()
def files(tmp_path, article_survey):
    survey = tmp_path / "survey.csv"
    frame = tmp_path / "frame.csv"
    article_survey.to_csv(survey, index=False)
    pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, 4000, 4000, 4000, 7000]}).to_csv(frame, index=False)
    return tmp_path, survey, frame



def test_fit_writes_the_estimate_table(files, capsys, ref):
    tmp, survey, frame = files
    out = tmp / "est.csv"
    code, _, err = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)",
                       "--count", "N", "--out", out, "--seed", "1", "--engine", "laplace")
    assert code == 0, err
    table = pd.read_csv(out)
    assert list(table.columns) == ["estimate", "sd", "lower", "upper", "population", "interval",
                                   "raw_mean", "raw_n", "raked_mean"]
    assert abs(table["estimate"][0] - ref["glmer_poststrat"][0]) < 1e-5
    assert 0.015 < table["sd"][0] < 0.023


def test_fit_by_state_from_parquet(tmp_path, capsys, cces_all):
    survey = tmp_path / "s.parquet"
    cces_all.iloc[:3000].to_parquet(survey)
    code, out, err = run(capsys, "fit", "--survey", survey, "--frame", CCES / "poststrat_df.csv",
                         "--formula", "abortion ~ male + (1|state) + (1|eth)", "--count", "n", "--by", "state,eth")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1 + 200
    assert "respondents" in err


def test_glm_engine_and_bootstrap(files, capsys):
    tmp, survey, frame = files
    code, out, _ = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ factor(class)",
                       "--count", "N", "--engine", "glm")
    assert code == 0 and "delta-method" in out
    code, out, _ = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)",
                       "--count", "N", "--bootstrap", "30", "--seed", "2", "--no-progress")
    assert code == 0 and "bootstrap" in out



def test_missing_values_error_and_drop(files, capsys, article_survey):
    tmp, _, frame = files
    survey = tmp / "missing.csv"
    d = article_survey.copy().astype({"class": "float"})
    d.loc[[4, 9], "class"] = np.nan
    d.to_csv(survey, index=False)
    args = ["fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)", "--count", "N"]
    err = bad(capsys, *args)
    assert "missing values in column(s) ['class']" in err and "rows 5, 10" in err and "--drop-missing" in err
    code, _, err = run(capsys, *args, "--drop-missing")
    assert code == 0 and "dropped 2 survey row(s)" in err


@pytest.mark.parametrize("mutate, formula, fragment", [
    (lambda s, f: s.assign(response=s["response"] * 2), "response ~ (1|class)", "must hold only 0 and 1"),
    (lambda s, f: s.assign(**{"class": s["class"].replace(5, 9)}), "response ~ (1|class)", "level(s) ['9'] that the frame"),
    (lambda s, f: s, "response ~ (1|klass)", "no column(s) ['klass']"),
    (lambda s, f: s, "response ~ (1|class", "Cannot parse the formula"),
    (lambda s, f: s.iloc[:0], "response ~ (1|class)", "survey has no rows"),
])
def test_survey_errors(files, capsys, article_survey, mutate, formula, fragment):
    tmp, _, frame = files
    survey = tmp / "bad.csv"
    mutate(article_survey, None).to_csv(survey, index=False)
    err = bad(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", formula, "--count", "N")
    assert fragment in err


@pytest.mark.parametrize("frame_table, fragment", [
    (pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, -1, 4000, 4000, 7000]}), "finite numbers >= 0"),
    (pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, np.inf, 4000, 4000, 7000]}), "finite numbers >= 0"),
    (pd.DataFrame({"class": [1, 2, 3, 4, 5, 5], "N": [1, 2, 3, 4, 5, 6]}), "repeats cells"),
])
def test_frame_errors(files, capsys, frame_table, fragment):
    tmp, survey, _ = files
    frame = tmp / "badframe.csv"
    frame_table.to_csv(frame, index=False)
    err = bad(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)", "--count", "N")
    assert fragment in err


def test_unreadable_and_missing_files(files, capsys):
    tmp, survey, frame = files
    err = bad(capsys, "fit", "--survey", tmp / "nope.csv", "--frame", frame, "--formula", "response ~ 1", "--count", "N")
    assert "does not exist" in err
    broken = tmp / "broken.parquet"
    broken.write_text("not parquet")
    err = bad(capsys, "fit", "--survey", broken, "--frame", frame, "--formula", "response ~ 1", "--count", "N")
    assert "cannot be read as Parquet" in err


def test_zero_count_groups_are_reported_empty(files, capsys):
    tmp, survey, _ = files
    frame = tmp / "zero.csv"
    pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, 4000, 4000, 4000, 0]}).to_csv(frame, index=False)
    code, out, _ = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)",
                       "--count", "N", "--by", "class")
    assert code == 0
    assert out.strip().splitlines()[-1].split()[:2] == ["5", "NaN"]


def test_demo_json_has_every_reference_key(capsys, ref):
    code = main(["demo", "--json", "--nsim", "40"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    for key, value in ref.items():
        assert len(result[key]) == len(value), key
        tol = 1e-9 if key in ("truth", "cell_proportions", "simple_poststrat") else 1e-4
        np.testing.assert_allclose(result[key], value, atol=tol, err_msg=key)
    assert isinstance(result["bootstrap_sd"], float) and len(result["bootstrap_interval"]) == 2


def test_demo_other_seeds_change_the_data(capsys, monkeypatch):
    from misterp.apps import demo

    monkeypatch.setattr(demo, "_bayes_section", lambda *args: {})  # the data are the point: skip the sampler
    main(["demo", "--json", "--nsim", "20", "--seeds", "1,2,3"])
    result = json.loads(capsys.readouterr().out)
    assert result["nonresponse_sample_table"] != [341, 326, 148, 95, 90]
    assert sum(result["nonresponse_sample_table"]) == 1000


def test_save_fit_and_poststratify_again(tmp_path, capsys, cces_all):
    survey = tmp_path / "s.csv"
    cces_all.iloc[:3000].to_csv(survey, index=False)
    frame = CCES / "poststrat_df.csv"
    formula = "abortion ~ male + (1|state) + (1|eth) + (1|age)"
    fit_file, first, second = tmp_path / "m.fit", tmp_path / "a.csv", tmp_path / "b.csv"
    code, _, err = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", formula, "--count", "n",
                       "--by", "state", "--seed", "4", "--save-fit", fit_file, "--out", first)
    assert code == 0, err
    code, _, err = run(capsys, "poststratify", "--fit", fit_file, "--frame", frame, "--count", "n",
                       "--by", "state", "--seed", "4", "--out", second)
    assert code == 0, err
    a, b = pd.read_csv(first), pd.read_csv(second)
    pd.testing.assert_frame_equal(a[b.columns], b)
    code, out, _ = run(capsys, "poststratify", "--fit", fit_file, "--frame", frame, "--count", "n", "--by", "eth,age")
    assert code == 0 and len(out.strip().splitlines()) == 1 + 24


def test_poststratify_bad_fit_file(tmp_path, capsys):
    bogus = tmp_path / "x.fit"
    bogus.write_text("hello")
    err = bad(capsys, "poststratify", "--fit", bogus, "--frame", CCES / "poststrat_df.csv", "--count", "n")
    assert "not a misterp fit file" in err


def test_bayes_engine_from_the_command_line(files, capsys):
    tmp, survey, frame = files
    code, out, err = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)",
                         "--count", "N", "--engine", "bayes", "--chains", "2", "--warmup", "200", "--draws", "200",
                         "--seed", "3", "--parameterization", "noncentred", "--out", tmp / "b.csv")  # as the test below:
    # one sampler program, compiled once
    assert code == 0, err
    row = pd.read_csv(tmp / "b.csv").iloc[0]
    assert row["interval"] == "posterior central 95%" and abs(row["estimate"] - 0.4365) < 0.02


def test_bootstrap_fit_saved_and_poststratified_again_gives_the_same_table(files, capsys):
    """A saved bootstrap is a Fit of its own: poststratify --fit reproduces the fit-time table,
    label included (it used to fall back to the normal approximation)."""
    tmp, survey, frame = files
    fit_file, first, second = tmp / "b.fit", tmp / "a.csv", tmp / "b.csv"
    code, _, err = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)",
                       "--count", "N", "--bootstrap", "40", "--seed", "2", "--no-progress", "--by", "class",
                       "--save-fit", fit_file, "--out", first)
    assert code == 0, err
    code, _, err = run(capsys, "poststratify", "--fit", fit_file, "--frame", frame, "--count", "N", "--by", "class",
                       "--no-progress", "--out", second)
    assert code == 0, err
    a, b = pd.read_csv(first), pd.read_csv(second)
    pd.testing.assert_frame_equal(a[b.columns], b, check_exact=True)
    assert set(b["interval"]) == {"bootstrap ±2sd"}


def test_old_pickle_fit_file_is_refused_without_loading_it(tmp_path, capsys):
    old = tmp_path / "old.fit"
    old.write_bytes(b"misterp-fit\n" + b"\x80\x04\x95 anything a pickle could hold")
    err = bad(capsys, "poststratify", "--fit", old, "--frame", CCES / "poststrat_df.csv", "--count", "n")
    assert "format version 1, a pickle" in err and "Fit the model again" in err


@pytest.mark.parametrize("command", ["demo", "fit", "poststratify", "report"])
def test_every_subcommand_takes_no_progress_and_quiet(command):
    from misterp.apps.cli import _parser

    required = {"fit": ["--survey", "s", "--frame", "f", "--formula", "y ~ 1", "--count", "n"],
                "poststratify": ["--fit", "m", "--frame", "f", "--count", "n"], "demo": [],
                "report": ["--frame", "f", "--count", "n", "--html", "r.html"]}
    args = _parser().parse_args([command, *required[command], "--no-progress", "--quiet"])
    assert args.no_progress and args.quiet


def test_saved_bayes_fit_reproduces_its_table_with_unseen_levels(files, capsys):
    """The unseen level's posterior draws come from the fit's own seed, at fit time and after loading."""
    tmp, survey, _ = files
    frame = tmp / "frame7.csv"
    pd.DataFrame({"class": [1, 2, 3, 4, 5, 6], "N": [4000, 4000, 4000, 4000, 7000, 900]}).to_csv(frame, index=False)
    fit_file, first, second = tmp / "bayes.fit", tmp / "a.csv", tmp / "b.csv"
    code, _, err = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)",
                       "--count", "N", "--engine", "bayes", "--chains", "2", "--warmup", "200", "--draws", "200",
                       "--seed", "3", "--parameterization", "noncentred", "--by", "class", "--save-fit", fit_file,
                       "--out", first)
    assert code == 0, err
    code, _, err = run(capsys, "poststratify", "--fit", fit_file, "--frame", frame, "--count", "N", "--by", "class",
                       "--out", second)
    assert code == 0, err
    a, b = pd.read_csv(first), pd.read_csv(second)
    pd.testing.assert_frame_equal(a[b.columns], b, check_exact=True)
    assert b["sd"].iloc[-1] > 2 * b["sd"].iloc[0]  # class 6: the population level plus a new effect


def test_poisson_counts_with_an_exposure(tmp_path, capsys):
    """--family poisson --exposure years: lme4's fit; --frame-exposure weights by each cell's exposure (a rate)."""
    from conftest import FIXTURES

    ref = pd.read_csv(FIXTURES / "poisson_glmer_scalars.csv").set_index("name")["value"]
    frame = pd.read_csv(FIXTURES / "poisson_frame.csv")
    per_person, with_exposure = tmp_path / "f1.csv", tmp_path / "f2.csv"
    frame.drop(columns=["years", "person_years"]).to_csv(per_person, index=False)
    frame.drop(columns="years").rename(columns={"person_years": "years"}).to_csv(with_exposure, index=False)
    common = ["fit", "--engine", "laplace", "--survey", FIXTURES / "poisson_survey.csv", "--count", "N", "--family", "poisson",
              "--exposure", "years", "--formula", "visits ~ male + (1|state) + (1|age)", "--seed", "1"]
    code, out, err = run(capsys, *common, "--frame", per_person)
    assert code == 0, err
    assert abs(float(out.splitlines()[1].split()[0]) - ref["overall"]) < 1e-4
    code, out, err = run(capsys, *common, "--frame", with_exposure, "--frame-exposure", "years",
                         "--save-fit", tmp_path / "p.fit")
    assert code == 0 and "weighted by the frame's exposure 'years'" in err
    assert abs(float(out.splitlines()[1].split()[0]) - ref["rate"]) < 1e-4
    code, out, err = run(capsys, "poststratify", "--fit", tmp_path / "p.fit", "--frame", with_exposure, "--count", "N",
                         "--frame-exposure", "years")
    assert code == 0 and abs(float(out.splitlines()[1].split()[0]) - ref["rate"]) < 1e-4
    err = bad(capsys, *common[:-6], "--family", "binomial", "--formula", "visits ~ (1|state)", "--frame", per_person)
    assert "use --family poisson" in err or "goes with a count outcome" in err
    err = bad(capsys, *common[:-4], "--formula", "visits ~ male + (1|state) + offset(log(years))", "--frame", per_person)
    assert "either as --exposure years or as offset(log(years))" in err


def test_gaussian_outcome_reml_and_ml(tmp_path, capsys):
    """--family gaussian is lmer (REML; --ml for maximum likelihood); --ml with another family is exit 2."""
    from conftest import FIXTURES

    common = ["fit", "--survey", FIXTURES / "gaussian_survey.csv", "--frame", FIXTURES / "gaussian_frame.csv",
              "--count", "N", "--formula", "score ~ male + (1|state) + (1|age)", "--seed", "1"]
    for flag, tag in (([], "reml"), (["--ml"], "ml")):
        ref = pd.read_csv(FIXTURES / f"gaussian_lmer_{tag}_scalars.csv").set_index("name")["value"]
        code, out, err = run(capsys, *common, "--family", "gaussian", "--engine", "laplace", *flag)
        assert code == 0, err
        assert float(out.splitlines()[1].split()[0]) == pytest.approx(ref["overall"], rel=1e-5)
    err = bad(capsys, *common, "--family", "poisson", "--ml")
    assert "--ml chooses maximum likelihood over REML" in err
    err = bad(capsys, *common)
    assert "for a continuous outcome, use --family gaussian" in err


def test_quiet_prints_only_the_table(files, capsys):
    tmp, survey, frame = files
    code, out, err = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)",
                         "--count", "N", "--seed", "1", "--quiet")
    assert code == 0 and err == "" and out.splitlines()[0].split()[0] == "estimate"
    code, out, err = run(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)",
                         "--count", "N", "--seed", "1")
    assert code == 0 and "respondents in 5 cells" in err


def test_every_option_of_every_subcommand_has_a_line_and_its_default():
    import argparse

    from misterp.apps.cli import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, parser in commands.items():
        text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings:
                continue
            flag = action.option_strings[0]
            assert action.help and flag in text, f"misterp {name} {flag} has no description"
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert "default" in parser._get_formatter()._get_help_string(action), (name, action.dest)
    assert "Default: inla, or laplace with --bootstrap or --ml" in " ".join(commands["fit"].format_help().split())


def test_the_same_command_prints_the_same_table_without_a_seed(files, capsys):
    tmp, survey, frame = files
    args = ["fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)", "--count", "N",
            "--by", " class"]  # a padded column name is stripped
    first, second = run(capsys, *args)[1], run(capsys, *args)[1]
    assert first == second and len(first.strip().splitlines()) == 6
    saved = tmp / "m.fit"
    assert run(capsys, *args, "--save-fit", saved)[1] == first
    again = run(capsys, "poststratify", "--fit", saved, "--frame", frame, "--count", "N", "--by", "class ,")[1]
    assert again.splitlines()[1].split()[:5] == first.splitlines()[1].split()[:5]


def test_validate_quiet_prints_only_the_scores(files, capsys):
    tmp, survey, frame = files
    truth = tmp / "truth.csv"
    pd.DataFrame({"class": [1, 2, 3, 4, 5], "truth": [0.5, 0.6, 0.7, 0.8, 0.9]}).to_csv(truth, index=False)
    code, out, err = run(capsys, "validate", "--survey", survey, "--frame", frame, "--formula",
                         "response ~ (1|class)", "--count", "N", "--by", "class", "--truth", truth, "--quiet")
    assert code == 0 and err == ""
    assert out.split()[:6] == ["groups", "mae", "rmse", "bias", "correlation", "coverage"]


def test_a_reader_that_leaves_early_gets_no_traceback(files):
    import subprocess
    import sys

    tmp, survey, frame = files
    command = (f"{sys.executable} -m misterp fit --survey {survey} --frame {frame} --count N "
               f"--formula 'response ~ (1|class)' --by class | true")  # true reads nothing and exits
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_the_default_engine_is_inla_and_the_run_says_so(files, capsys):
    """No --engine: inla, named in the notes; --bootstrap alone means laplace (bootMer refits glmer)."""
    tmp, survey, frame = files
    common = ["fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)", "--count", "N"]
    code, out, err = run(capsys, *common)
    assert code == 0 and "engine: inla, the default" in err and "inla ±2sd" in out
    code, out, err = run(capsys, *common, "--bootstrap", "20", "--no-progress")
    assert code == 0 and "engine: laplace, the default with --bootstrap" in err and "bootstrap ±2sd" in out
    code, out, err = run(capsys, *common, "--engine", "laplace")
    assert code == 0 and "the default" not in err and "normal-approx ±2sd" in out


def test_a_county_sized_model_goes_to_laplace_by_default(tmp_path, capsys):
    """3,000 counties are more effects than inla takes by default: laplace's sparse path fits them, and says why."""
    from conftest import FIXTURES

    data = pd.read_csv(FIXTURES / "sparse_county.csv")
    data.to_csv(tmp_path / "s.csv", index=False)
    data.groupby(["county", "state", "male", "age", "eth"], as_index=False).size().to_csv(tmp_path / "f.csv",
                                                                                         index=False)
    code, out, err = run(capsys, "fit", "--survey", tmp_path / "s.csv", "--trials", "n", "--frame", tmp_path / "f.csv",
                         "--count", "size", "--formula", "y ~ male + (1|county) + (1|state)", "--by", "state")
    assert code == 0, err
    assert "engine: laplace, the default for this model" in " ".join(err.split()) and "normal-approx" in out


@pytest.mark.parametrize("option", [["--prior-scale", "0"], ["--sd-prior-scale", "-1"], ["--draws", "0"]])
def test_bad_prior_and_draw_settings_are_named(files, capsys, option):
    """Found in review: these reached the default engine as a ZeroDivisionError or numpy's error."""
    tmp, survey, frame = files
    err = bad(capsys, "fit", "--survey", survey, "--frame", frame, "--formula", "response ~ (1|class)", "--count", "N",
              *option)
    assert f"{option[0]} must be" in err and "Traceback" not in err
