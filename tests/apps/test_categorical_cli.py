"""A categorical outcome through the command line: carData's Chile plebiscite survey (four answers)."""

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from misterp.apps.cli import main

SURVEY, FRAME = FIXTURES / "chile_survey.csv", FIXTURES / "chile_frame.csv"
FORMULA = "vote ~ sex + education + (1|region) + (1|age_group)"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def bad(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and "Traceback" not in err and err.startswith("misterp: error:"), err
    return err


def fit_args(*extra, survey=SURVEY, formula=FORMULA):
    return ("fit", "--survey", survey, "--frame", FRAME, "--count", "n", "--family", "categorical", "--formula",
            formula, *extra)


def test_a_row_per_region_and_category_with_raw_shares(capsys, tmp_path):
    out = tmp_path / "est.csv"
    code, _, err = run(capsys, *fit_args("--by", "region", "--out", out, "--reference", "N"))
    assert code == 0, err
    assert "engine: laplace, the default for a categorical outcome" in err
    table = pd.read_csv(out)
    assert table.columns[:2].tolist() == ["region", "category"] and len(table) == 20
    assert np.allclose(table.groupby("region")["estimate"].sum(), 1.0)
    survey = pd.read_csv(SURVEY)
    raw = pd.crosstab(survey["region"], survey["vote"], normalize="index").stack()
    np.testing.assert_allclose(table["raw_mean"], raw.loc[list(zip(table["region"], table["category"]))])
    assert (table["raw_n"] == table["region"].map(survey["region"].value_counts())).all()


def test_bad_categorical_input_is_one_paragraph(capsys, tmp_path):
    assert "--reference 'Z' names no category" in bad(capsys, *fit_args("--reference", "Z"))
    single = tmp_path / "single.csv"
    pd.read_csv(SURVEY).assign(vote="Y").to_csv(single, index=False)
    assert "single category" in bad(capsys, *fit_args(survey=single))
    assert "--reference names a categorical outcome's baseline" in bad(
        capsys, "fit", "--survey", SURVEY, "--frame", FRAME, "--count", "n", "--formula", "vote ~ sex",
        "--reference", "A")
    assert "--engine laplace" in bad(capsys, *fit_args("--engine", "bayes"))
