"""misterp compare: the ranking on stdout or in a CSV file, and every misuse named with exit code 2."""

import pandas as pd
import pytest

from conftest import CCES, SEVEN_TERM, cli_error as bad, cli_run as run

ARTICLE = ["response ~ 1", "response ~ factor(class)", "response ~ (1|class)"]
CASE_STUDY = ("abortion ~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) "
              "+ repvote + factor(region)")


@pytest.fixture()
def files(tmp_path, article_survey):
    survey, frame = tmp_path / "survey.csv", tmp_path / "frame.csv"
    article_survey.to_csv(survey, index=False)
    pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, 4000, 4000, 4000, 7000]}).to_csv(frame, index=False)
    return tmp_path, ["--survey", survey, "--frame", frame, "--count", "N"]



def formulas(*texts):
    return [a for text in texts for a in ("--formula", text)]


def table_rows(out):
    """The printed ranking as a DataFrame (the lines after the model legend)."""
    lines = out.strip().split("\n\n", 1)[1].splitlines()
    return pd.DataFrame([line.split() for line in lines[1:]], columns=lines[0].split())


def test_compare_prints_the_legend_and_ranking(files, capsys):
    _, inputs = files
    code, out, err = run(capsys, "compare", *inputs, *formulas(*ARTICLE), "--by", "class", "--seed", "1")
    assert code == 0, err
    legend = out.split("\n\n")[0].splitlines()
    assert legend == [f"m{i + 1}: {f}" for i, f in enumerate(ARTICLE)]
    table = table_rows(out)
    assert list(table.columns) == ["scheme", "score", "unit", "rank", "model", "n", "loss", "se", "diff", "diff_se"]
    kfold = table[(table["scheme"] == "kfold") & (table["score"] == "area_mse")].set_index("model")
    assert kfold.loc["m1", "rank"] == "3" and kfold["n"].tolist() == ["5"] * 3
    assert set(table.loc[table["scheme"] == "areas", "model"]) == {"m1", "m3"}
    assert "stratified by class" in err and "m2 has class as a fixed effect" in err
    code, quiet_out, quiet_err = run(capsys, "compare", *inputs, *formulas(*ARTICLE), "--by", "class", "--seed", "1",
                                     "--quiet")
    assert code == 0 and quiet_err == "" and quiet_out == out  # deterministic, notes hidden


def test_compare_writes_csv_with_area_and_folds(files, capsys):
    tmp, inputs = files
    out = tmp / "ranking.csv"
    code, printed, err = run(capsys, "compare", *inputs, *formulas(*ARTICLE[::2]), "--area", "class", "--folds", "3",
                             "--cv", "kfold", "--out", out, "--seed", "2")
    assert code == 0, err
    assert printed == "" and "wrote 6 row(s)" in err and "3 folds" in err
    table = pd.read_csv(out)
    assert list(table.columns) == ["scheme", "score", "unit", "rank", "model", "n", "loss", "se", "diff", "diff_se",
                                   "formula"]
    assert set(table["scheme"]) == {"kfold"} and set(table["formula"]) == {ARTICLE[0], ARTICLE[2]}
    assert table.groupby("score")["rank"].apply(sorted).tolist() == [[1, 2]] * 3



def test_compare_misuse_is_named(files, capsys):
    _, inputs = files
    two = formulas(*ARTICLE[::2])
    assert "at least twice" in bad(capsys, "compare", *inputs, *formulas(ARTICLE[2]), "--by", "class")
    assert "--area COL, or --by COL" in bad(capsys, "compare", *inputs, *two)
    assert "--bootstrap" in bad(capsys, "compare", *inputs, *two, "--by", "class", "--bootstrap", "10")
    assert "PSIS-LOO needs posterior draws" in bad(capsys, "compare", *inputs, *two, "--by", "class", "--cv", "loo")
    assert "Unknown scheme" in bad(capsys, "compare", *inputs, *two, "--by", "class", "--cv", "kfold,holdout")
    assert "'region' is not in the survey" in bad(capsys, "compare", *inputs, *two, "--area", "region")
    assert "at least 2" in bad(capsys, "compare", *inputs, *two, "--by", "class", "--folds", "1")
    assert "same left-hand side" in bad(capsys, "compare", *inputs, *formulas(ARTICLE[2], "class ~ 1"),
                                        "--by", "class")


def test_compare_takes_cells_with_trials(tmp_path, capsys, article_survey):
    cells = article_survey.groupby("class", as_index=False).agg(yes=("response", "sum"), n=("response", "size"))
    survey, frame = tmp_path / "cells.csv", tmp_path / "frame.csv"
    cells.to_csv(survey, index=False)
    pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, 4000, 4000, 4000, 7000]}).to_csv(frame, index=False)
    code, out, err = run(capsys, "compare", "--survey", survey, "--frame", frame, "--count", "N", "--trials", "n",
                         "--by", "class", *formulas("yes ~ 1", "yes ~ (1|class)"), "--cv", "kfold")
    assert code == 0, err
    assert set(table_rows(out).query("unit == 'respondents'")["n"]) == {"1000"}
    assert "into 1000 respondents" in err


def test_compare_cces_seven_term_against_the_case_study(tmp_path, capsys, cces_all):
    """A 2,000-row CCES sample, K-fold only: both models scored on every respondent and state."""
    survey = tmp_path / "cces.csv"
    cces_all.sample(2000, random_state=3).to_csv(survey, index=False)
    code, out, err = run(capsys, "compare", "--survey", survey, "--frame", CCES / "poststrat_df.csv", "--count", "n",
                         "--join", CCES / "statelevel_predictors.csv", "--by", "state", "--cv", "kfold", "--folds",
                         "3", "--seed", "1", *formulas(SEVEN_TERM, CASE_STUDY))
    assert code == 0, err
    table = table_rows(out)
    assert set(table["score"]) == {"log_loss", "brier", "area_mse"} and set(table["model"]) == {"m1", "m2"}
    assert set(table.loc[table["unit"] == "respondents", "n"]) == {"2000"}
    assert int(table.loc[table["unit"] == "areas", "n"].iloc[0]) >= 45  # states with two or more respondents
    assert all(float(v) > 0 for v in table["loss"])


@pytest.mark.slow
def test_compare_bayes_prints_loo_and_its_warning(files, capsys):
    _, inputs = files
    code, out, err = run(capsys, "compare", *inputs, *formulas(*ARTICLE[::2]), "--by", "class", "--engine", "bayes",
                         "--chains", "2", "--warmup", "150", "--draws", "150", "--seed", "4", "--no-progress")
    assert code == 0, err
    table = table_rows(out)
    assert set(table["scheme"]) == {"loo"} and table.iloc[0]["model"] == "m2"
    assert "Kuh et al. 2023" in err
