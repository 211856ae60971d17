"""The article's simulation and the vignette's 6,300-cell example."""

import pytest

from misterp.apps.cli import main
from misterp.apps.demo import run_states_example
from misterp.sim.simulate import article_simulation, vignette_simulation


def test_article_simulation_reproduces_its_tables(ref):
    sim = article_simulation()
    assert sim.representative_table.tolist() == ref["representative_sample_table"]
    assert sim.nonresponse_table.tolist() == ref["nonresponse_sample_table"]
    assert sim.representative_mean == ref["representative_sample_mean"][0]
    assert sim.survey["response"].mean() == ref["raw_mean"][0]
    assert sim.truth == pytest.approx(ref["truth"][0], abs=1e-15)


def test_vignette_design():
    sim = vignette_simulation(seed=3)
    cells = sim.frame.data
    assert len(cells) == 6300 and cells[["male", "eth", "age", "income", "state"]].drop_duplicates().shape[0] == 6300
    assert cells["N"].sum() == pytest.approx(250e6, rel=1e-3)
    assert len(sim.survey) == 1200 and set(sim.survey["pref"]) <= {0, 1}
    # the sample over-represents high-response groups: the oldest age group most of all
    share = sim.survey["age"].value_counts(normalize=True)
    assert share[7] > 2 * 0.1
    again = vignette_simulation(seed=3)
    assert again.survey.equals(sim.survey)


@pytest.mark.parametrize("seeds", [range(1, 6), pytest.param(range(1, 21), marks=pytest.mark.slow)])
def test_mrp_beats_raw_and_raked_state_estimates(seeds):
    wins = 0
    for seed in seeds:
        rmse = run_states_example(seed)["rmse"]
        wins += rmse["mrp"] < rmse["raw"] and rmse["mrp"] < rmse["raked"]
    assert wins >= 0.9 * len(seeds)


def test_demo_states_example(capsys):
    assert main(["demo", "--example", "states", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "RMSE over the" in out and "mrp" in out and "raked" in out
