"""Structured terms, adjacency and waves through the command line, on the CCES data and a simulated panel."""

import numpy as np
import pandas as pd
import pytest

from conftest import CCES, FIXTURES, cli_error as bad, cli_run as run
from misterp.apps.cli import main
from misterp.apps.demo import run_trend_example
from misterp.sim.simulate import panel_simulation

FRAME = CCES / "poststrat_df.csv"




@pytest.fixture(scope="module")
def survey(tmp_path_factory, cces_all):
    """The biased 4,000-row CCES sample without Vermont, New Hampshire and Maine."""
    rows = pd.read_csv(FIXTURES / "cces_biased4000_rows.csv")["row"]
    data = cces_all.iloc[rows - 1]
    path = tmp_path_factory.mktemp("structured") / "survey.csv"
    data[~data["state"].isin(["VT", "NH", "ME"])].to_csv(path, index=False)
    return path


def test_bym2_borrows_for_states_without_respondents(survey, capsys, tmp_path):
    out = tmp_path / "est.csv"
    code, _, err = run(capsys, "fit", "--survey", survey, "--frame", FRAME, "--count", "n", "--formula",
                       "abortion ~ male + bym2(state) + (1|eth) + (1|educ) + rw1(age)", "--adjacency", "us-states",
                       "--by", "state", "--out", out, "--save-fit", tmp_path / "m.fit")
    assert code == 0 and "['AK', 'HI'] have no neighbour" in err
    table = pd.read_csv(out).set_index("state")
    assert len(table) == 50 and (table.loc[["VT", "NH", "ME"], "raw_n"] == 0).all()
    # an unsampled state sits near its sampled neighbours, not at the national mean by chance: its sd is
    # wider than theirs
    assert (table.loc[["VT", "NH", "ME"], "sd"] > table.loc[["MA", "NY"], "sd"].max()).all()
    code, _, _ = run(capsys, "poststratify", "--fit", tmp_path / "m.fit", "--frame", FRAME, "--count", "n",
                     "--by", "state", "--out", tmp_path / "again.csv")
    again = pd.read_csv(tmp_path / "again.csv").set_index("state")
    assert code == 0 and np.allclose(again["estimate"], table["estimate"])


@pytest.mark.parametrize("args, fragment", [
    (["--formula", "abortion ~ icar(state)"], "needs the areas' neighbours"),
    (["--formula", "abortion ~ rw1(male)"], "needs at least 3 levels of 'male'"),
    (["--formula", "abortion ~ rw1(age)", "--order", "age=18-29,30-39,40-49,50-59,70+,99"],
     "names ['99'], which the survey and frame do not have and leaves out ['60-69']"),
    (["--formula", "abortion ~ (1|state) + rw1(age)", "--bootstrap", "10"], "Drop --bootstrap"),
    (["--formula", "abortion ~ rw1(age)", "--wave", "year"], "--wave year: the survey has no column 'year'"),
])
def test_bad_structured_input_is_one_paragraph(survey, capsys, args, fragment):
    assert fragment in bad(capsys, "fit", "--survey", survey, "--frame", FRAME, "--count", "n", *args)


def test_adjacency_errors(survey, capsys, tmp_path):
    (tmp_path / "self.csv").write_text("area,neighbour\nCA,CA\nCA,OR\n")
    (tmp_path / "zz.csv").write_text("area,neighbour\nCA,OR\nCA,ZZ\n")
    common = ["fit", "--survey", survey, "--frame", FRAME, "--count", "n", "--formula", "abortion ~ icar(state)"]
    assert "own neighbour: ['CA']" in bad(capsys, *common, "--adjacency", tmp_path / "self.csv")
    assert "lacks: ['ZZ']" in bad(capsys, *common, "--adjacency", tmp_path / "zz.csv")


def test_waves_trend_report_and_a_missed_wave(capsys, tmp_path):
    sim = panel_simulation(1)
    sim.survey.to_csv(tmp_path / "panel.csv", index=False)
    sim.frame.data.drop(columns="truth").to_csv(tmp_path / "frame.csv", index=False)
    figures = tmp_path / "figures"
    figures.mkdir()
    code, _, err = run(capsys, "report", "--survey", tmp_path / "panel.csv", "--frame", tmp_path / "frame.csv",
                       "--count", "N", "--formula", "support ~ male + (1|state) + rw1(wave)", "--wave", "wave",
                       "--html", tmp_path / "r.html", "--figures", figures, "--out", tmp_path / "est.csv")
    assert code == 0 and "wave(s) ['9', '17'] have no respondents" in err
    table = pd.read_csv(tmp_path / "est.csv")
    assert table["wave"].tolist() == list(range(1, 25))
    assert {"trend.png", "curve-rw1-wave.png"} <= {p.name for p in figures.iterdir()}


def test_trend_example_rw1_beats_exchangeable_waves():
    result = run_trend_example(seed=1)
    assert result["rmse"]["rw1(wave)"]["all"] < result["rmse"]["(1|wave)"]["all"]
    assert result["rmse"]["rw1(wave)"]["missed"] < result["rmse"]["(1|wave)"]["missed"]


def test_batch_spec_takes_order_and_the_built_in_adjacency(survey, tmp_path):
    from misterp.apps.batch import read_results

    spec = tmp_path / "spec.yaml"
    spec.write_text(f"survey: {survey}\nframe: {FRAME}\ncount: n\noutcomes: [abortion]\n"
                    "formulas: ['~ male + bym2(state) + (1|eth) + rw1(age)']\nengine: laplace\n"
                    "options: {by: [state], adjacency: us-states, order: {age: [18-29, 30-39, 40-49, 50-59, 60-69, 70+]}}\n"
                    f"out: {tmp_path / 'results'}\n")
    assert main(["batch", str(spec), "--no-progress", "--quiet", "--workers", "1"]) == 0
    table = read_results(tmp_path / "results")
    assert len(table) == 50 and table["estimate"].between(0, 1).all()
    spec.write_text(spec.read_text().replace("order: {age: [18-29", "order: {age: [15-17, 18-29"))
    assert main(["batch", str(spec), "--no-progress", "--quiet", "--workers", "1"]) == 1
