"""The report's figures: from a streamed frame as from one in memory; each figure that cannot be
drawn is left out with a note and the report is still written; captions say what is drawn."""

import html
import re

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, LaplaceEngine, MisterpWarning, Survey, cell_draws, poststratify, prepare
from misterp.apps.cli import main
from misterp.data.frame import FrameChunks
from misterp.report import html as report
from misterp.report import plots
from misterp.results.compare import add_comparisons, frame_margins
from misterp.results.estimate import Estimate
from misterp.results.stream import scan_frame


@pytest.fixture(scope="module")
def areas():
    """A weighted survey of 12 areas, a frame of areas x sex x 4 tracts, a laplace fit, and the estimate by area."""
    rng = np.random.default_rng(8)
    n = 600
    area = rng.integers(0, 12, n)
    sex = rng.choice(["f", "m"], n)
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-(rng.normal(0, 0.5, 12)[area] + 0.4 * (sex == "m"))))
    survey = Survey(pd.DataFrame({"y": y.astype(int), "area": [f"a{a:02d}" for a in area], "sex": sex,
                                  "w": rng.uniform(0.5, 2, n)}), "y", weights="w")
    grid = pd.MultiIndex.from_product([[f"a{a:02d}" for a in range(12)], ["f", "m"], range(4)],
                                      names=["area", "sex", "tract"]).to_frame(index=False)
    frame = Frame(grid.sample(frac=1, random_state=2).assign(N=rng.integers(1, 90, len(grid))), "N")
    cells, _ = prepare(survey, frame, "y ~ sex + (1|area)")
    fit = LaplaceEngine().fit(cells)
    estimate = poststratify(cell_draws(fit, frame, n_draws=200, seed=1), frame, by="area")
    return survey, frame, fit, add_comparisons(estimate, survey, frame, cells.design)[0]


def test_streamed_report_figures_equal_in_memory(areas):
    """The figures from a frame's margins summed over chunks of 10 rows are the whole frame's, byte for byte."""
    survey, frame, fit, estimate = areas
    margins = frame_margins(fit.design)
    scan_frame(fit.cells, FrameChunks(frame.data, "N", rows=10), margins)
    whole, streamed = [], []
    in_memory = report.report_figures(estimate, fit, survey, frame, notes=whole)
    chunked = report.report_figures(estimate, fit, survey, margins, notes=streamed)
    assert [f.name for f in chunked] == ["estimates", "draws", "balance", "check", "pooling"]
    assert chunked == in_memory and streamed == whole
    pd.testing.assert_frame_equal(plots.balance_table(survey, margins, ["area", "sex"]),
                                  plots.balance_table(survey, frame, ["area", "sex"]))


def test_figure_drawing_data_it_cannot_draw_is_left_out_with_a_note(areas):
    survey, frame, fit, estimate = areas
    # no interval columns (a table from elsewhere); every group empty, so no draws to show
    bare = Estimate(estimate.table.drop(columns=["lower", "upper"]), ["area"], estimate.draws)
    empty = Estimate(estimate.table, ["area"], np.full_like(estimate.draws, np.nan))
    for broken, left_out, why in [(bare, ["estimates", "draws"], "KeyError"), (empty, ["draws"], "no group has draws")]:
        notes = []
        figures = report.report_figures(broken, fit, survey, frame, notes=notes)
        assert [f.name for f in figures] == [n for n in ["estimates", "draws", "balance", "check", "pooling"]
                                             if n not in left_out]
        for name in left_out:
            assert any(n.startswith(f"the {name} figure was left out") and why in n for n in notes), notes
        page = report.html_report(broken, fit, survey, frame, notes=[])
        assert f"the {left_out[0]} figure was left out" in page and len(re.findall("<img", page)) == len(figures)


@pytest.mark.parametrize("name, maker", [("estimates", "estimates_plot"), ("map", "state_map"),
                                         ("draws", "draws_plot"), ("balance", "balance_plot"),
                                         ("check", "check_plot"), ("pooling", "pooling_plot")])
def test_every_figure_that_fails_is_left_out_and_the_rest_drawn(areas, monkeypatch, name, maker):
    survey, frame, fit, estimate = areas
    states = ["AK", "AL", "AZ", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "IA", "ID"]
    if name == "map":  # the map applies to estimates by state
        estimate = Estimate(estimate.table.assign(area=states).rename(columns={"area": "state"}), ["state"],
                            estimate.draws)

    def broken(*args, **kwargs):
        raise RuntimeError("cannot draw this")

    monkeypatch.setattr(plots, maker, broken)
    notes = []
    figures = report.report_figures(estimate, fit, survey, frame, notes=notes)
    assert name not in [f.name for f in figures] and len(figures) >= 3
    assert f"the {name} figure was left out: RuntimeError (cannot draw this)" in notes


def test_a_continuous_covariate_is_left_out_of_the_balance_and_the_check(tmp_path, capsys):
    """A gaussian slope on a continuous score, which the frame gives on a coarser grid: the report is
    written, the balance figure leaves the score out, and the check by the score (a group per survey
    value) is too large to draw."""
    rng = np.random.default_rng(4)
    school = np.repeat(np.arange(30), 25)
    ses = np.round(rng.normal(0, 0.4, 30)[school] + rng.normal(0, 0.65, len(school)), 3)
    sx = rng.choice(["Male", "Female"], len(school))
    y = 12 + 2.4 * ses + rng.normal(0, 2, 30)[school] + rng.normal(0, 0.6, 30)[school] * ses + rng.normal(0, 6, len(ses))
    survey = pd.DataFrame({"school": [f"s{s:02d}" for s in school], "sector": np.where(school % 3, "Public", "Catholic"),
                           "sx": sx, "ses": ses, "mathach": y.round(3)})
    survey.to_csv(tmp_path / "survey.csv", index=False)
    frame = survey.assign(ses=(survey["ses"] * 2).round() / 2).groupby(["school", "sector", "sx", "ses"]).size()
    frame.rename("N").reset_index().to_csv(tmp_path / "frame.csv", index=False)
    args = ["report", "--survey", str(tmp_path / "survey.csv"), "--frame", str(tmp_path / "frame.csv"), "--count", "N",
            "--family", "gaussian", "--formula", "mathach ~ ses + sx + (1 + ses | school)", "--seed", "1"]
    assert main(args + ["--by", "sector", "--html", str(tmp_path / "sector.html")]) == 0, capsys.readouterr().err
    page = (tmp_path / "sector.html").read_text()
    assert "the balance figure leaves out ses: " in page and "are not among the frame&#x27;s" in page
    assert len(re.findall("<img", page)) == 4  # estimates, draws, balance (school and sx), pooling
    assert main(args + ["--by", "ses", "--html", str(tmp_path / "ses.html")]) == 0
    err = capsys.readouterr().err
    assert "the check figure was left out: ValueError (it would be 700 x" in err and "too large to show" in err
    assert "the check figure was left out" in (tmp_path / "ses.html").read_text()


def test_the_draws_caption_names_the_group_drawn(areas):
    survey, frame, fit, estimate = areas
    largest = estimate.table["population"].idxmax()
    assert largest != 0  # the first group is not the largest: the old caption's "first group" was wrong
    caption = report.draws_caption(estimate)
    label = estimate.table["area"].iloc[largest]
    assert caption == f"The draws of the estimate for {label}, the largest group by population"
    assert plots.draws_plot(estimate).axes[0].get_title() == label
    overall = poststratify(cell_draws(fit, frame, n_draws=50, seed=1), frame)
    assert report.draws_caption(overall) == "The draws of the overall estimate"


def test_the_estimates_caption_names_only_the_series_drawn(areas):
    survey, frame, fit, estimate = areas
    assert report.estimates_caption(estimate) == ("Estimates by group, with their intervals and the raw, weighted "
                                                  "and raked estimates")
    unweighted = add_comparisons(Estimate(estimate.table[["area", "estimate", "sd", "lower", "upper", "population",
                                                          "interval"]], ["area"], estimate.draws),
                                 Survey(survey.data, "y"), frame, fit.design)[0]
    assert report.estimates_caption(unweighted) == "Estimates by group, with their intervals and the raw and raked " \
                                                   "estimates"
    ax = plots.estimates_plot(unweighted).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["interval", "MRP", "raw", "raked"]
    assert report.estimates_caption(Estimate(unweighted.table.drop(columns=["raw_mean", "raked_mean"]), ["area"])) == \
        "Estimates by group, with their intervals"


def test_the_summarys_long_warning_lines_wrap():
    """A singular fit's warning (about 200 characters) wraps in the report; the summary's tables do not."""
    data = pd.DataFrame({"y": [1] * 4 + [0] * 4, "g": list("abcd") * 2}).loc[lambda d: d.index.repeat(10)]
    with pytest.warns(MisterpWarning, match="singular"):
        fit = LaplaceEngine().fit(prepare(Survey(data, "y"), None, "y ~ (1|g)")[0])
    summary = fit.summary()
    assert any(len(line) > 110 and line.startswith("warning") for line in summary.splitlines())
    frame = Frame(pd.DataFrame({"g": list("abcd"), "N": [1, 2, 3, 4]}), "N")
    page = report.html_report(poststratify(cell_draws(fit, frame, n_draws=20, seed=1), frame), fit)
    shown = html.unescape(re.search(r"<pre>(.*?)</pre>", page, re.S).group(1))
    assert max(len(line) for line in shown.splitlines()) <= report.WIDTH
    assert " ".join(shown.split()).count("boundary (singular) fit: in g a variance is 0") == 1
    kept = [line for line in summary.splitlines() if "  " in line.strip()]  # table rows, as they were
    assert kept and all(line in shown.splitlines() for line in kept)


def test_a_categorical_estimate_gets_the_share_plot():
    from conftest import FIXTURES

    survey = Survey(pd.read_csv(FIXTURES / "chile_survey.csv"), "vote")
    frame = Frame(pd.read_csv(FIXTURES / "chile_frame.csv"), "n")
    cells, _ = prepare(survey, frame, "vote ~ sex + (1|region)", family="categorical")
    fit = LaplaceEngine().fit(cells)
    estimate = poststratify(cell_draws(fit, frame, seed=1), frame, by="region")
    notes = []
    names = [f.name for f in report.report_figures(estimate, fit, survey, frame, notes=notes)]
    assert "shares" in names and "check" in names and "estimates" not in names and "draws" not in names, notes
