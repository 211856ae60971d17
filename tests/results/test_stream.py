"""Streaming poststratification equals the in-memory path, chunk by chunk, in bounded memory: from a
DataFrame, a Parquet or a CSV file, calibrated to known totals or not."""

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, GlmEngine, LaplaceEngine, Survey, cell_draws, poststratify, prepare, read_frame
from misterp.apps.cli import main
from misterp.data.frame import FrameChunks
from misterp.results.calibrate import calibrate
from misterp.results.compare import add_comparisons, frame_margins
from misterp.results.stream import poststratify_stream, scan_frame


@pytest.fixture(scope="module")
def data():
    """A survey of 25 of 30 areas (5 unseen by the survey), and a frame of areas x sex x tract."""
    rng = np.random.default_rng(3)
    n = 1500
    area = rng.integers(0, 25, n)
    sex = rng.choice(["f", "m"], n)
    effect = rng.normal(0, 0.5, 30)
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(effect[area] + 0.3 * (sex == "m"))))
    labels = [f"a{a:02d}" for a in area]
    survey = Survey(pd.DataFrame({"y": y.astype(int), "area": labels, "region": [a[1] for a in labels],
                                  "sex": sex, "w": rng.uniform(0.5, 2, n)}), "y", weights="w")
    grid = pd.MultiIndex.from_product([[f"a{a:02d}" for a in range(30)], ["f", "m"], range(8)],
                                      names=["area", "sex", "tract"]).to_frame(index=False)
    grid = grid.sample(frac=1, random_state=1).reset_index(drop=True)  # areas spread over chunks
    grid["region"] = grid["area"].str[1]
    grid["N"] = rng.integers(0, 100, len(grid)).astype(float)
    return survey, Frame(grid, "N")


@pytest.mark.parametrize("engine, intervals", [("laplace", ["draws", "quantile"]), ("glm", ["delta", "cell-bounds"])])
def test_stream_equals_in_memory(data, engine, intervals):
    survey, frame = data
    formula = "y ~ sex + (1|area)" if engine == "laplace" else "y ~ sex + region"
    cells, _ = prepare(survey, frame, formula)
    fit = LaplaceEngine().fit(cells) if engine == "laplace" else GlmEngine().fit(cells)
    chunks = FrameChunks(frame.data, "N", rows=97)
    by = [["area"], ["area", "tract"], []]
    draws = cell_draws(fit, frame, n_draws=300, seed=5)
    if engine == "laplace":
        assert draws.unseen == {"area": sorted(draws.unseen["area"], key=list(frame.data["area"]).index)}
        assert len(draws.unseen["area"]) == 5
    for interval in intervals:
        streamed = poststratify_stream(fit, chunks, by=by, interval=interval, n_draws=300, seed=5)
        for b, got in zip(by, streamed):
            want = poststratify(draws, frame, by=b, interval=interval)
            pd.testing.assert_frame_equal(got.table.drop(columns=["estimate", "sd", "lower", "upper"]),
                                          want.table.drop(columns=["estimate", "sd", "lower", "upper"]))
            for col in ["estimate", "sd", "lower", "upper"]:
                np.testing.assert_allclose(got.table[col], want.table[col], rtol=0, atol=1e-10)
            if want.draws is not None:
                np.testing.assert_allclose(got.draws, want.draws, rtol=0, atol=1e-10)
            assert got.unseen == want.unseen


def test_unseen_levels_draw_the_same_in_any_chunk(data):
    survey, frame = data
    cells, _ = prepare(survey, frame, "y ~ sex + (1|area)")
    fit = LaplaceEngine().fit(cells)
    one = cell_draws(fit, Frame(frame.data.iloc[:200], "N"), n_draws=50, seed=2)
    other = cell_draws(fit, Frame(frame.data.iloc[::-1].reset_index(drop=True), "N"), n_draws=50, seed=2)
    unseen = frame.data["area"].isin(one.unseen["area"]).to_numpy()
    rows = np.flatnonzero(unseen[:200])[:5]
    a = next(one.draws.chunks(50))[:, rows]
    b = next(other.draws.chunks(50))[:, len(frame.data) - 1 - rows]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


def test_scan_and_comparisons_equal_in_memory(data):
    survey, frame = data
    cells, _ = prepare(survey, frame, "y ~ sex + (1|area)")
    margins = frame_margins(cells.design)
    cover = scan_frame(cells, FrameChunks(frame.data, "N", rows=50), margins)
    assert cover["frame_cells"] == len(frame.data) and cover["without_respondents"] > 0
    fit = LaplaceEngine().fit(cells)
    estimate = poststratify(cell_draws(fit, frame, n_draws=50, seed=1), frame, by="area")
    ours, notes = add_comparisons(estimate, survey, margins, cells.design)
    theirs, their_notes = add_comparisons(estimate, survey, frame, cells.design)
    pd.testing.assert_frame_equal(ours.table, theirs.table, rtol=1e-12)
    assert {"raw_mean", "raw_n", "weighted_mean", "raked_mean"} <= set(ours.table) and notes == their_notes


def test_scan_finds_repeats_across_chunks_and_missing_levels(data):
    from misterp import MisterpInputError

    survey, frame = data
    cells, _ = prepare(survey, frame, "y ~ sex + (1|area)")
    repeated = pd.concat([frame.data, frame.data.iloc[[3]]], ignore_index=True)
    with pytest.raises(MisterpInputError, match=r"repeats cells: 2 rows .*\(file rows 5, 482\)"):
        scan_frame(cells, FrameChunks(repeated, "N", rows=100))
    lacking = frame.data[frame.data["area"] != "a03"]
    with pytest.raises(MisterpInputError, match="a03"):
        scan_frame(cells, FrameChunks(lacking, "N", rows=100))


def test_memory_is_bounded_by_the_chunk(data):
    """A frame 10x the chunk: peak memory far below the draws x frame rows x 8 bytes (154 MB) that
    predicting every row at once would take."""
    import tracemalloc

    survey, frame = data
    cells, _ = prepare(survey, frame, "y ~ sex + (1|area)")
    fit = LaplaceEngine().fit(cells)
    big = pd.concat([frame.data.assign(copy=i) for i in range(40)], ignore_index=True)  # 19,200 rows
    chunks = FrameChunks(big, "N", rows=len(big) // 10)
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    area, area_sex = poststratify_stream(fit, chunks, by=[["area"], ["area", "sex"]], n_draws=1000, seed=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert area.draws.shape == (1000, 30) and area_sex.draws.shape == (1000, 60)
    assert peak - before < 1000 * len(big) * 8 / 20


def test_parquet_frame_through_fit_equals_csv(data, tmp_path, capsys):
    survey, frame = data
    survey.data.to_csv(tmp_path / "s.csv", index=False)
    frame.data.to_csv(tmp_path / "f.csv", index=False)
    frame.data.to_parquet(tmp_path / "f.parquet")
    tables = []
    for name in ("f.csv", "f.parquet"):
        out = tmp_path / f"{name}.out.csv"
        code = main(["fit", "--survey", str(tmp_path / "s.csv"), "--frame", str(tmp_path / name), "--count", "N",
                     "--weights", "w", "--by", "area", "--formula", "y ~ sex + (1|area)", "--seed", "4",
                     "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        tables.append(pd.read_csv(out))
    assert len(tables[0]) == 30 and {"raw_mean", "weighted_mean", "raked_mean"} <= set(tables[0])
    pd.testing.assert_frame_equal(tables[0], tables[1], rtol=1e-10)


def _targets(frame, columns, seed=0):
    """Consistent known totals: each group's population-weighted mean of a made-up share per frame row."""
    share = np.random.default_rng(seed).uniform(0.2, 0.8, len(frame.data))
    data = frame.data.assign(_p=share * frame.counts, _n=frame.counts)
    sums = data.groupby(columns, as_index=False)[["_p", "_n"]].sum()
    return sums.assign(target=sums["_p"] / sums["_n"]).drop(columns=["_p", "_n"])


@pytest.mark.parametrize("margins", [[["area"]], [["region"], ["sex"]]])
def test_streamed_calibration_equals_in_memory(data, margins, tmp_path):
    """One-way by the model's grouping (with unseen areas), two-way by a column the model lacks and sex;
    a CSV frame in chunks of 97 rows against calibrate() on the whole frame."""
    survey, frame = data
    cells, _ = prepare(survey, frame, "y ~ sex + (1|area)")
    fit = LaplaceEngine().fit(cells)
    totals = [_targets(frame, m) for m in margins]
    frame.data.to_csv(tmp_path / "frame.csv", index=False)
    chunks = FrameChunks(tmp_path / "frame.csv", "N", rows=97)
    frame = read_frame(tmp_path / "frame.csv", "N")  # as the file gives it (region's digits are numbers)
    by = [["area"], ["region", "sex"], []]
    streamed = poststratify_stream(fit, chunks, by=by, n_draws=200, seed=3, totals=totals)
    whole = calibrate(cell_draws(fit, frame, n_draws=200, seed=3), frame, totals, cells.family)
    for b, got in zip(by, streamed):
        want = poststratify(whole, frame, by=b)
        pd.testing.assert_frame_equal(got.table, want.table, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.draws, want.draws, rtol=0, atol=1e-10)
        assert got.unseen == want.unseen and len(got.unseen["area"]) == 5
    if margins == [["area"]]:  # every draw meets its area's total
        target = totals[0].set_index("area")["target"].loc[streamed[0].table["area"]].to_numpy()
        np.testing.assert_allclose(streamed[0].draws, np.broadcast_to(target, streamed[0].draws.shape), atol=1e-9)


def test_streamed_calibration_of_a_point_fit_and_its_errors(data):
    """A glm fit without draws calibrates its point; a table naming a column the frame lacks is refused
    with the whole frame's message."""
    from misterp import MisterpInputError

    survey, frame = data
    fit = GlmEngine().fit(prepare(survey, frame, "y ~ sex + region")[0])
    totals = [_targets(frame, ["area"])]
    chunks = FrameChunks(frame.data, "N", rows=50)
    got = poststratify_stream(fit, chunks, by=[["area"]], totals=totals)[0]
    want = poststratify(calibrate(cell_draws(fit, frame), frame, totals, fit.family), frame, by="area")
    pd.testing.assert_frame_equal(got.table, want.table, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.table["estimate"], totals[0]["target"], atol=1e-9)
    wrong = [totals[0].rename(columns={"area": "county"})]
    with pytest.raises(MisterpInputError) as streamed:
        poststratify_stream(fit, chunks, by=[["area"]], totals=wrong)
    with pytest.raises(MisterpInputError) as whole:
        calibrate(cell_draws(fit, frame), frame, wrong, fit.family)
    assert "must be frame columns; ['county'] are not" in str(whole.value) and str(streamed.value) == str(whole.value)


def test_csv_frame_through_fit_and_calibrate_equals_in_memory(data, tmp_path, capsys):
    """misterp fit streams a CSV frame, calibrated or not, as the in-memory path computes it."""
    survey, frame = data
    survey.data.to_csv(tmp_path / "s.csv", index=False)
    frame.data.to_csv(tmp_path / "f.csv", index=False)
    totals = _targets(frame, ["region"])
    totals.to_csv(tmp_path / "t.csv", index=False)
    cells, _ = prepare(survey, frame, "y ~ sex + (1|area)")
    fit = LaplaceEngine().fit(cells)
    for extra in ([], ["--calibrate", str(tmp_path / "t.csv")]):
        code = main(["fit", "--survey", str(tmp_path / "s.csv"), "--frame", str(tmp_path / "f.csv"), "--count", "N",
                     "--by", "area", "--formula", "y ~ sex + (1|area)", "--seed", "4", "--engine", "laplace", "--out",
                     str(tmp_path / "o.csv"), *extra])
        assert code == 0, capsys.readouterr().err
        draws = cell_draws(fit, frame, seed=4)
        if extra:
            draws = calibrate(draws, frame, [totals], cells.family)
            assert "calibrated every draw" in capsys.readouterr().err
        want = poststratify(draws, frame, by="area").table
        got = pd.read_csv(tmp_path / "o.csv")
        np.testing.assert_allclose(got[["estimate", "sd", "lower", "upper"]], want[["estimate", "sd", "lower", "upper"]],
                                   rtol=0, atol=1e-10)
