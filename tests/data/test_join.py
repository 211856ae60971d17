"""Group-level predictors joined onto survey and frame, and the case-study model they enable."""

import numpy as np
import pandas as pd
import pytest

from conftest import CCES, FIXTURES, r_scalars
from misterp import CellDraws, LaplaceEngine, MisterpInputError, poststratify, prepare, read_frame, read_survey
from misterp.apps.cli import main

STATES = CCES / "statelevel_predictors.csv"
CASE_STUDY = ("abortion ~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) "
              "+ repvote + factor(region)")


def test_join_adds_columns_without_dropping_or_reordering():
    survey = read_survey(pd.DataFrame({"y": [1, 0, 1], "state": ["AK", "AL", "AK"]}), "y",
                         join=pd.DataFrame({"state": ["AL", "AK"], "repvote": [0.6, 0.5]}))
    assert survey.data["state"].tolist() == ["AK", "AL", "AK"]
    assert survey.data["repvote"].tolist() == [0.5, 0.6, 0.5]


@pytest.mark.parametrize("table, fragment", [
    (pd.DataFrame({"state": ["AK"], "repvote": [0.5]}), "have no match in the join table on ['state']: ['AL']"),
    (pd.DataFrame({"state": ["AK", "AK", "AL"], "repvote": [0.5, 0.4, 0.6]}), "several rows for the key(s) ['AK']"),
    (pd.DataFrame({"region": ["x"], "repvote": [0.5]}), "share no column with the survey"),
    (pd.DataFrame({"state": ["AK", "AL"]}), "adds no predictor"),
])
def test_join_errors_name_the_keys(table, fragment):
    with pytest.raises(MisterpInputError) as e:
        read_survey(pd.DataFrame({"y": [1, 0], "state": ["AK", "AL"]}), "y", join=table)
    assert fragment in str(e.value)


@pytest.mark.parametrize("tag", ["sample5000", "all"])
def test_case_study_model_matches_lme4(tag, cces_all):
    """lme4 at its converged optimum (bobyqa; tests/fixtures/r/make_cces_casestudy.R)."""
    data = cces_all
    if tag == "sample5000":
        data = cces_all.iloc[pd.read_csv(FIXTURES / "cces_sample5000_rows.csv")["row"].to_numpy() - 1]
    frame = read_frame(CCES / "poststrat_df.csv", "n", join=STATES)
    cells, _ = prepare(read_survey(data, "abortion", join=STATES), frame, CASE_STUDY)
    fit = LaplaceEngine().fit(cells)
    ref = r_scalars(f"casestudy_{tag}")
    fixef = fit.fixef()
    for name in ref.index[ref.index.str.startswith("fixef:")]:
        assert abs(fixef[name[6:].replace("factor(region)", "region")] - ref[name]) < 1e-3, name
    assert fit.loglik >= ref["loglik"] - 1e-4
    states = poststratify(CellDraws(point=fit.predict(frame.data)), frame, by="state").table
    r_states = pd.read_csv(FIXTURES / f"cces_casestudy_{tag}_state.csv")
    np.testing.assert_allclose(states["estimate"], r_states["estimate"], atol=2e-3)


def test_cli_join_by_state(tmp_path, capsys, cces_all):
    survey = tmp_path / "s.csv"
    cces_all.iloc[:4000].to_csv(survey, index=False)
    out = tmp_path / "states.csv"
    code = main(["fit", "--survey", str(survey), "--frame", str(CCES / "poststrat_df.csv"), "--count", "n",
                 "--formula", CASE_STUDY, "--join", str(STATES), "--by", "state", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert len(pd.read_csv(out)) == 50


def test_interaction_and_offset_match_lme4(cces_all):
    """eth x repvote and an offset (tests/fixtures/r/make_interaction_offset.R)."""
    rows = pd.read_csv(FIXTURES / "cces_sample5000_rows.csv")["row"].to_numpy() - 1
    data = cces_all.iloc[rows].assign(off=lambda d: np.where(d["age"] == "70+", 0.3, 0.0))
    frame_data = pd.read_csv(CCES / "poststrat_df.csv").assign(off=lambda d: np.where(d["age"] == "70+", 0.3, 0.0))
    frame = read_frame(frame_data, "n", join=STATES)
    formula = "abortion ~ male + eth * repvote + offset(off) + (1|state) + (1|educ)"
    cells, _ = prepare(read_survey(data, "abortion", join=STATES), frame, formula)
    fit = LaplaceEngine().fit(cells)
    ref = r_scalars("interaction_sample5000")
    fixef = fit.fixef()
    # eth x repvote is nearly collinear with eth: lme4's bobyqa stops ~2e-4 short on those
    # coefficients, while our optimum has the higher likelihood
    for name in ref.index[ref.index.str.startswith("fixef:")]:
        assert abs(fixef[name[6:]] - ref[name]) < 1e-3, name
    assert fit.loglik >= ref["loglik"] - 1e-6
    states = poststratify(CellDraws(point=fit.predict(frame.data)), frame, by="state").table
    r_states = pd.read_csv(FIXTURES / "cces_interaction_sample5000_state.csv")
    np.testing.assert_allclose(states["estimate"], r_states["estimate"], atol=1e-4)
