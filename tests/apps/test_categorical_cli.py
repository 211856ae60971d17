"""A categorical outcome through the command line: carData's Chile plebiscite survey (four answers)."""

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES, cli_error as bad, cli_run as run

SURVEY, FRAME = FIXTURES / "chile_survey.csv", FIXTURES / "chile_frame.csv"
FORMULA = "vote ~ sex + education + (1|region) + (1|age_group)"




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
    assert "--engine laplace" in bad(capsys, *fit_args("--engine", "inla"))


@pytest.fixture(scope="module")
def election(tmp_path_factory):
    from misterp.sim.simulate import election_simulation

    sim = election_simulation(seed=1)
    folder = tmp_path_factory.mktemp("election")
    for name, table in (("survey", sim.survey), ("frame", sim.frame.data), ("choices", sim.choices)):
        table.to_csv(folder / f"{name}.csv", index=False)
    return folder, sim.truth


def test_turnout_times_choice_recovers_a_simulated_election(election, capsys):
    """Party shares per seat among the seat's voters, with party C standing in half the seats: the truth
    sum N t p / sum N t inside the ±2 sd intervals for most seats, C at 0 where it does not stand."""
    folder, truth = election
    code, _, err = run(capsys, "fit", "--survey", folder / "survey.csv", "--frame", folder / "frame.csv",
                       "--count", "N", "--family", "categorical", "--formula", "vote ~ male + (1|age) + (1|seat)",
                       "--turnout", "voted ~ male + (1|age) + (1|seat)", "--choices", folder / "choices.csv",
                       "--by", "seat", "--out", folder / "est.csv")
    assert code == 0, err
    assert "the choice model on the" in err and "renormalised over its area's choice set" in err
    table = pd.read_csv(folder / "est.csv").merge(truth, on=["seat", "category"], suffixes=("", "_true"))
    stands = table["share"] > 0
    assert (table.loc[~stands, "estimate"] == 0).all() and (~stands).sum() == 10
    inside = (table["estimate"] - table["share"]).abs() < 2 * table["sd"]
    assert inside[stands].mean() >= 0.85, inside[stands].mean()
    assert np.sqrt(((table["estimate"] - table["share"])[stands] ** 2).mean()) < 0.06
    turnout = table.drop_duplicates("seat")
    assert ((turnout["turnout"] - turnout["turnout_true"]).abs() < 2 * turnout["turnout_sd"]).mean() >= 0.85


def test_bad_turnout_and_choices_input(election, capsys, tmp_path):
    folder, _ = election
    survey = pd.read_csv(folder / "survey.csv")
    coded = tmp_path / "coded.csv"
    survey.assign(voted=survey["voted"].map({0: "no", 1: "yes"})).to_csv(coded, index=False)
    base = ("fit", "--frame", folder / "frame.csv", "--count", "N", "--family", "categorical", "--formula",
            "vote ~ male + (1|seat)")
    err = bad(capsys, *base, "--survey", coded, "--turnout", "voted ~ male + (1|seat)")
    assert "'voted' must hold only 0 and 1" in err
    lonely = tmp_path / "choices.csv"
    pd.read_csv(folder / "choices.csv").query("seat != 'S03'").to_csv(lonely, index=False)
    assert "have no category in the choice sets" in bad(capsys, *base, "--survey", folder / "survey.csv",
                                                        "--turnout", "voted ~ male + (1|seat)", "--choices", lonely)
    assert "--choices sets which categories" in bad(capsys, "fit", "--survey", folder / "survey.csv", "--frame",
                                                    folder / "frame.csv", "--count", "N", "--formula",
                                                    "voted ~ male", "--choices", lonely)


WVS, WVS_FRAME = FIXTURES / "wvs_survey.csv", FIXTURES / "wvs_frame.csv"


def ordinal_args(*extra, survey=WVS, formula="poverty ~ religion + gender + (1|country)"):
    return ("fit", "--survey", survey, "--frame", WVS_FRAME, "--count", "n", "--family", "ordinal", "--formula",
            formula, *extra)


def test_an_ordinal_outcome_by_country(capsys, tmp_path):
    out = tmp_path / "est.csv"
    code, _, err = run(capsys, *ordinal_args("--levels", "Too Little,About Right,Too Much", "--by", "country",
                                             "--out", out))
    assert code == 0, err
    table = pd.read_csv(out)
    assert table["category"].tolist()[:3] == ["Too Little", "About Right", "Too Much"] and len(table) == 12
    assert np.allclose(table.groupby("country")["estimate"].sum(), 1.0)
    # a numeric outcome takes its numeric order
    scored = tmp_path / "scored.csv"
    pd.read_csv(WVS).assign(score=lambda d: d["poverty"].map({"Too Little": 1, "About Right": 2, "Too Much": 10})
                            ).to_csv(scored, index=False)
    code, _, err = run(capsys, *ordinal_args("--out", out, survey=scored, formula="score ~ religion + (1|country)"))
    assert code == 0, err
    scored_table = pd.read_csv(out)
    assert scored_table["category"].astype(str).tolist() == ["1", "2", "10"]
    # numeric levels: the mean score sum_k level_k share_k beside the shares
    assert scored_table["mean_score"].iloc[0] == pytest.approx((scored_table["estimate"] * [1, 2, 10]).sum())
    assert scored_table["mean_score_sd"].iloc[0] > 0 and "mean_score" not in table


def test_bad_ordinal_input_is_one_paragraph(capsys):
    assert "whose order misterp does not guess: give it with --levels" in bad(capsys, *ordinal_args())
    assert "it misses ['Too Much']" in bad(capsys, *ordinal_args("--levels", "Too Little,About Right"))
    assert "it names ['Plenty']" in bad(capsys, *ordinal_args("--levels", "Too Little,About Right,Too Much,Plenty"))
    assert "--levels orders an ordinal outcome" in bad(capsys, *fit_args("--levels", "A,N"))
