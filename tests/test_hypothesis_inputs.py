"""Generated surveys and frames: misterp never crashes and its estimates stay in range.

Hypothesis draws the shape of a problem (levels, respondents, rare or common
answers, empty cells, levels the survey never saw, counts from 0 to 10^18);
each example runs prepare -> fit (glm and laplace) -> cell_draws ->
poststratify in Python, and the same files through ``misterp fit``. Only a
:class:`MisterpInputError` with a message may stop a run; an estimate must lie
in [0, 1] and between the smallest and largest point prediction of the cells it
weights. Derandomized, so every run checks the same examples.
"""

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import misterp as mp
from misterp.apps.cli import main

SETTINGS = settings(derandomize=True, max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
COUNT_SCALES = [0, 1, 10, 1e4, 1e12, 1e18]


@st.composite
def problems(draw):
    """(survey, frame, mixed formula, fixed formula): a survey of 0/1 answers by g (and h), and a frame of
    every g x h cell, some empty, some of levels the survey never has."""
    n_g = draw(st.integers(1, 6))
    n_h = draw(st.integers(1, 3))
    unseen = draw(st.integers(0, 2))              # frame levels of g that no respondent has
    n = draw(st.sampled_from([200, 40, 8, 2, 1, 1000]))
    rate = draw(st.sampled_from([0.5, 0.05, 0.95, 0.002, 0.998, 0.0, 1.0]))
    both = draw(st.integers(0, 4)) > 0  # mostly make sure both answers occur (a rare event happens once)
    spread = draw(st.sampled_from([0.0, 1.0, 4.0]))  # sd of g's effect on the logit scale
    stray = draw(st.booleans()) and draw(st.integers(0, 9)) == 0  # now and then a survey level the frame lacks
    scales = draw(st.lists(st.sampled_from(COUNT_SCALES), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    g_levels = [f"g{i}" for i in range(n_g + unseen)]
    h_levels = [f"h{i}" for i in range(n_h)]
    g = rng.integers(0, n_g, n)
    h = rng.integers(0, n_h, n)
    base = np.log(rate / (1 - rate)) if 0 < rate < 1 else (-np.inf if rate == 0 else np.inf)
    effect = rng.normal(0.0, spread, n_g)[g]
    y = (rng.random(n) < 1 / (1 + np.exp(-(base + effect)))).astype(int)
    if both and n > 1 and y.min() == y.max():
        y[rng.integers(0, n)] = 1 - y[0]
    survey = pd.DataFrame({"y": y, "g": np.array(g_levels)[g], "h": np.array(h_levels)[h]})
    if stray:
        survey.loc[0, "g"] = "stray"
    cells = pd.DataFrame([(a, b) for a in g_levels for b in h_levels], columns=["g", "h"])
    # a count per cell: a random scale times a random factor, so 0, 1 and 10^18 can sit side by side
    counts = np.array(scales)[rng.integers(0, len(scales), len(cells))] * rng.integers(1, 7, len(cells))
    frame = cells.assign(N=np.round(counts).astype(np.int64))
    mixed = draw(st.sampled_from(["y ~ (1|g)", "y ~ h + (1|g)", "y ~ (1|g) + (1|h)"]))
    fixed = draw(st.sampled_from(["y ~ 1", "y ~ h", "y ~ g + h"]))
    return survey, frame, mixed, fixed


def check_estimate(est, point: np.ndarray, frame: mp.Frame, by) -> None:
    """Each group's estimate lies in [0, 1] and within its positively weighted cells' point predictions."""
    table = est.table
    counts = frame.counts
    groups = [np.ones(len(counts), dtype=bool)] if not by else \
        [(frame.data[by] == row[by]).to_numpy() for _, row in table.iterrows()]
    for (_, row), members in zip(table.iterrows(), groups):
        weighted = members & (counts > 0)
        if not weighted.any():
            assert row["population"] == 0 and np.isnan(row["estimate"])
            continue
        lo, hi = point[weighted].min(), point[weighted].max()
        assert 0.0 <= row["estimate"] <= 1.0, row
        slack = 1e-12 * max(1.0, hi)
        assert lo - slack <= row["estimate"] <= hi + slack, (row["estimate"], lo, hi)


def run_api(survey: pd.DataFrame, frame_table: pd.DataFrame, formula: str, engine) -> None:
    try:
        frame = mp.read_frame(frame_table, "N")
        cells, _ = mp.prepare(mp.read_survey(survey, "y"), frame, formula)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mp.MisterpWarning)
            fit = engine.fit(cells)
        draws = mp.cell_draws(fit, frame, n_draws=100, seed=1)
    except mp.MisterpInputError as e:
        assert str(e).strip()
        return
    assert np.all((draws.point >= 0) & (draws.point <= 1))
    for by in (None, "g"):
        check_estimate(mp.poststratify(draws, frame, by=by), draws.point, frame, by)


@SETTINGS
@given(problems())
def test_python_api_never_crashes_and_stays_in_range(problem):
    survey, frame, mixed, fixed = problem
    run_api(survey, frame, fixed, mp.GlmEngine())
    run_api(survey, frame, mixed, mp.LaplaceEngine())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@SETTINGS
@given(problem=problems(), engine=st.sampled_from(["glm", "laplace"]))
def test_command_line_never_crashes(folder, problem, engine):
    survey, frame, mixed, fixed = problem
    survey.to_csv(folder / "s.csv", index=False)
    frame.to_csv(folder / "f.csv", index=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # capsys is not reset between generated examples
            code = main(["fit", "--survey", str(folder / "s.csv"), "--frame", str(folder / "f.csv"), "--count", "N",
                     "--formula", mixed if engine == "laplace" else fixed, "--engine", engine, "--by", "g",
                     "--seed", "1", "--out", str(folder / "o.csv"), "--quiet"])
    err = err.getvalue()
    if code == 2:
        assert err.startswith("misterp: error:") and len(err.strip()) > len("misterp: error:")
        return
    assert code == 0, err
    out = pd.read_csv(folder / "o.csv")
    shown = out["estimate"].dropna()
    assert ((shown >= 0) & (shown <= 1)).all()
    assert out.loc[out["population"] == 0, "estimate"].isna().all()
