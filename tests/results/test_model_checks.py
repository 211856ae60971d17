"""Model checks: observed group means against replicated data, with p-values."""

import numpy as np
import pandas as pd

from misterp import GlmEngine, LaplaceEngine, Survey, prepare
from misterp.apps.cli import main
from misterp.results.model_checks import predictive_check


def test_a_good_model_passes_and_a_misspecified_one_fails(article_survey, article_frame):
    survey = Survey(article_survey, "response")
    good = predictive_check(LaplaceEngine().fit(prepare(survey, article_frame, "response ~ (1|class)")[0]),
                            by="class", n_rep=400, seed=1)
    assert good["p_value"].min() > 0.05
    np.testing.assert_allclose(good["observed"], article_survey.groupby("class")["response"].mean())
    assert (good["lower"] <= good["replicated"]).all() and (good["replicated"] <= good["upper"]).all()
    # a straight line in class on the logit scale misses the jump between classes 2 and 3
    linear = predictive_check(GlmEngine().fit(prepare(survey, None, "response ~ class")[0]), by="class",
                              n_rep=400, seed=2)
    assert linear.set_index("class").loc[2, "p_value"] < 0.01


def test_posterior_predictive_check(article_fit):
    check = predictive_check(article_fit, by="class", n_rep=300, seed=3)
    assert check["p_value"].min() > 0.05 and check["respondents"].sum() == 1000


def test_cli_check(tmp_path, capsys, article_survey):
    survey, frame = tmp_path / "s.csv", tmp_path / "f.csv"
    article_survey.to_csv(survey, index=False)
    pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, 4000, 4000, 4000, 7000]}).to_csv(frame, index=False)
    code = main(["fit", "--survey", str(survey), "--frame", str(frame), "--count", "N", "--formula",
                 "response ~ (1|class)", "--check", "class", "--seed", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "Model check by class (p < 0.05: 0 of 5 groups)" in out
    code = main(["fit", "--survey", str(survey), "--frame", str(frame), "--count", "N", "--formula",
                 "response ~ (1|class)", "--check", "age"])
    assert code == 2 and "--check takes columns of the model's predictors" in capsys.readouterr().err


def test_a_categorical_outcome_is_checked_per_category():
    """A row per group and category: the observed shares are the raw ones, the replicates' shares sum to 1."""
    from conftest import FIXTURES

    data = pd.read_csv(FIXTURES / "chile_survey.csv")
    cells, _ = prepare(Survey(data, "vote"), None, "vote ~ sex + (1|region)", family="categorical")
    check = predictive_check(LaplaceEngine().fit(cells), by="region", n_rep=200, seed=1)
    assert len(check) == 20 and check["category"].tolist()[:4] == ["A", "N", "U", "Y"]
    raw = pd.crosstab(data["region"], data["vote"], normalize="index").stack()
    assert np.allclose(check["observed"], raw.loc[list(zip(check["region"], check["category"]))])
    assert np.allclose(check.groupby("region")["replicated"].sum(), 1.0)
    assert (check["p_value"] > 0.01).mean() > 0.9
