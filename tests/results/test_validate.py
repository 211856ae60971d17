"""Validation against a known truth: errors and coverage by group."""

import numpy as np
import pandas as pd
import pytest

from conftest import CCES
from misterp import MisterpInputError
from misterp.apps.cli import main
from misterp.results.estimate import Estimate
from misterp.results.validate import validate


def test_errors_and_coverage_by_hand():
    table = pd.DataFrame({"g": ["a", "b", "c"], "estimate": [0.4, 0.6, 0.5], "lower": [0.3, 0.55, 0.45],
                          "upper": [0.5, 0.65, 0.55], "raked_mean": [0.5, 0.5, 0.5]})
    truth = pd.DataFrame({"g": ["c", "a", "b"], "truth": [0.5, 0.45, 0.7]})
    scores = validate(Estimate(table, ["g"]), truth)
    error = np.array([0.4 - 0.45, 0.6 - 0.7, 0.0])
    row = scores.loc["mrp"]
    assert row["mae"] == pytest.approx(np.abs(error).mean()) and row["rmse"] == pytest.approx(np.sqrt((error ** 2).mean()))
    assert row["bias"] == pytest.approx(error.mean()) and row["coverage"] == pytest.approx(2 / 3)
    assert row["correlation"] == pytest.approx(np.corrcoef([0.4, 0.6, 0.5], [0.45, 0.7, 0.5])[0, 1])
    assert list(scores.index) == ["mrp", "raked"] and np.isnan(scores.loc["raked", "coverage"])
    with pytest.raises(MisterpInputError, match=r"the truth lacks \['c'\]"):
        validate(Estimate(table, ["g"]), truth.iloc[1:])


def test_cli_validates_a_biased_sample_against_the_full_data(tmp_path, capsys, cces_all):
    biased = pd.concat([cces_all[cces_all["eth"] == "White"].sample(2000, random_state=1),
                        cces_all[cces_all["eth"] != "White"].sample(300, random_state=1)])
    survey, truth = tmp_path / "biased.csv", tmp_path / "truth.csv"
    biased.to_csv(survey, index=False)
    cces_all.groupby("state")["abortion"].mean().rename("truth").reset_index().to_csv(truth, index=False)
    code = main(["validate", "--survey", str(survey), "--frame", str(CCES / "poststrat_df.csv"), "--count", "n",
                 "--by", "state", "--formula", "abortion ~ male + (1|state) + (1|eth) + (1|age) + (1|educ)",
                 "--truth", str(truth), "--seed", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and out.split()[:2] == ["groups", "mae"]  # --quiet: the scores alone
    rows = {line.split()[0]: line.split() for line in out.strip().splitlines()[1:]}
    assert set(rows) >= {"mrp", "raw", "raked"} and int(rows["mrp"][1]) == 50
