"""Calibration to known totals: one-way and two-way shifts on the link scale, draw by draw."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.special import expit, logit

from conftest import FIXTURES, SEVEN_TERM
from misterp import Frame, LaplaceEngine, MisterpInputError, Survey, cell_draws, poststratify, prepare
from misterp.apps.cli import main
from misterp.model.family import GAUSSIAN
from misterp.results.calibrate import calibrate


@pytest.fixture(scope="module")
def setup(cces_all, cces_frame):
    rows = pd.read_csv(FIXTURES / "cces_sample5000_rows.csv")["row"].to_numpy() - 1
    cells, _ = prepare(Survey(cces_all.iloc[rows], "abortion"), cces_frame, SEVEN_TERM)
    fit = LaplaceEngine().fit(cells)
    full = LaplaceEngine().fit(prepare(Survey(cces_all, "abortion"), cces_frame, SEVEN_TERM)[0])
    truth = cces_frame.data.assign(p=full.predict(cces_frame.data))  # one set of cells: consistent margins
    margins = {}
    for col in ("state", "age"):
        t = truth.groupby(col).apply(lambda d: np.average(d["p"], weights=d["n"]), include_groups=False)
        margins[col] = pd.DataFrame({col: t.index, "target": t.to_numpy()})
    return fit, cells, margins


def test_one_way_shift_meets_every_total_in_every_draw(setup, cces_frame):
    fit, cells, margins = setup
    draws = cell_draws(fit, cces_frame, n_draws=300, seed=1)
    shifted = calibrate(draws, cces_frame, [margins["state"]], cells.family)
    est = poststratify(shifted, cces_frame, by="state")
    target = margins["state"].set_index("state")["target"].loc[est.table["state"]].to_numpy()
    np.testing.assert_allclose(est.draws, np.broadcast_to(target, est.draws.shape), atol=1e-8)
    np.testing.assert_allclose(est.table["estimate"], target, atol=1e-8)
    # by hand: the point's shift in CA solves sum N expit(eta + d) / sum N = target
    ca = (cces_frame.data["state"] == "CA").to_numpy()
    eta, n = logit(draws.point[ca]), cces_frame.counts[ca]
    d = brentq(lambda x: np.average(expit(eta + x), weights=n) - target[list(est.table["state"]).index("CA")], -5, 5,
               xtol=1e-14)
    np.testing.assert_allclose(logit(shifted.point[ca]) - eta, d, atol=1e-9)
    assert est.table["interval"].iloc[0] == "normal-approx, calibrated ±2sd" and est.table["sd"].max() < 1e-7


def test_two_way_shift_meets_both_margins(setup, cces_frame):
    fit, cells, margins = setup
    draws = cell_draws(fit, cces_frame, n_draws=100, seed=2)
    shifted = calibrate(draws, cces_frame, [margins["state"], margins["age"]], cells.family)
    for col in ("state", "age"):
        est = poststratify(shifted, cces_frame, by=col)
        target = margins[col].set_index(col)["target"].loc[est.table[col]].to_numpy()
        np.testing.assert_allclose(est.draws, np.broadcast_to(target, est.draws.shape), atol=1e-8)
    # the eth estimates were not calibrated: they keep a spread
    assert poststratify(shifted, cces_frame, by="eth").table["sd"].min() > 1e-4


def test_a_gaussian_mean_shifts_by_the_gap(tmp_path):
    data = pd.read_csv(FIXTURES / "gaussian_survey.csv")
    frame = Frame(pd.read_csv(FIXTURES / "gaussian_frame.csv"), "N")
    fit = LaplaceEngine().fit(prepare(Survey(data, "score"), frame, "score ~ male + (1|state) + (1|age)",
                                      family=GAUSSIAN)[0])
    draws = cell_draws(fit, frame, n_draws=50, seed=1)
    target = pd.DataFrame({"age": sorted(frame.data["age"].unique()), "target": [25.0, 26.0, 27.0, 28.0, 29.0]})
    est = poststratify(calibrate(draws, frame, [target], GAUSSIAN), frame, by="age")
    np.testing.assert_allclose(est.draws, np.broadcast_to(target["target"], est.draws.shape), atol=1e-8)


def test_groups_must_match(setup, cces_frame):
    fit, cells, margins = setup
    draws = cell_draws(fit, cces_frame, n_draws=10, seed=1)
    extra = pd.concat([margins["state"], pd.DataFrame({"state": ["PR"], "target": [0.5]})])
    with pytest.raises(MisterpInputError, match=r"the table has \['PR'\] unknown group"):
        calibrate(draws, cces_frame, [extra], cells.family)
    with pytest.raises(MisterpInputError, match=r"the frame \['WY'\] group\(s\) without a target"):
        calibrate(draws, cces_frame, [margins["state"][margins["state"]["state"] != "WY"]], cells.family)


def test_cli_calibrates(setup, tmp_path, capsys, cces_all):
    _, _, margins = setup
    survey, totals = tmp_path / "s.csv", tmp_path / "t.csv"
    cces_all.iloc[:3000].to_csv(survey, index=False)
    margins["state"].to_csv(totals, index=False)
    from conftest import CCES

    code = main(["fit", "--survey", str(survey), "--frame", str(CCES / "poststrat_df.csv"), "--count", "n", "--by",
                 "state", "--formula", "abortion ~ male + (1|state) + (1|eth)", "--calibrate", str(totals),
                 "--seed", "1", "--out", str(tmp_path / "o.csv")])
    assert code == 0 and "calibrated every draw" in capsys.readouterr().err
    out = pd.read_csv(tmp_path / "o.csv")
    np.testing.assert_allclose(out["estimate"], margins["state"]["target"], atol=1e-8)
