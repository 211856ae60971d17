"""Each plot draws the data it says: points, interval ends, labels and order; the map's tiles and
colours; the balance table's shares, standardised differences and design effect."""

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, LaplaceEngine, Survey, cell_draws, poststratify, prepare
from misterp.report import plots
from misterp.results.estimate import Estimate


def by_gid(ax, gid):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert found, gid
    return found[0]


@pytest.fixture(scope="module")
def article(article_survey, article_frame):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    fit = LaplaceEngine().fit(cells)
    return fit, poststratify(cell_draws(fit, article_frame, seed=1), article_frame, by="class")


def test_estimates_plot_points_intervals_labels_and_order(article):
    _, est = article
    table = est.table.assign(raw_mean=[0.1, 0.2, 0.3, 0.4, 0.5], raw_n=[5, 4, 3, 2, 1])
    fig = plots.estimates_plot(Estimate(table, est.by, est.draws))
    ax = fig.axes[0]
    order = table.sort_values("estimate").reset_index(drop=True)
    assert [t.get_text() for t in ax.get_yticklabels()] == order["class"].astype(str).tolist()
    np.testing.assert_allclose(by_gid(ax, "estimates").get_xdata(), order["estimate"])
    ends = np.array([segment[:, 0] for segment in by_gid(ax, "intervals").get_segments()])
    np.testing.assert_allclose(ends, order[["lower", "upper"]].to_numpy())
    np.testing.assert_allclose(by_gid(ax, "raw_mean").get_xdata(), order["raw_mean"])
    assert [t.get_text() for t in ax.texts] == [f"n={n}" for n in order["raw_n"]]


def test_state_map_tiles_and_colours():
    table = pd.DataFrame({"state": ["CA", "TX", "NY"], "estimate": [0.3, 0.5, 0.7]})
    ax = plots.state_map(Estimate(table, ["state"])).axes[0]
    from matplotlib import colormaps

    for state, value in [("CA", 0.3), ("TX", 0.5), ("NY", 0.7)]:
        tile = by_gid(ax, f"tile-{state}")
        row, col = plots.US_TILES[state]
        assert tile.get_xy() == (col, -row)
        np.testing.assert_allclose(tile.get_facecolor(), colormaps["viridis"]((value - 0.3) / 0.4))
    np.testing.assert_allclose(by_gid(ax, "tile-FL").get_facecolor(), (0.85, 0.85, 0.85, 1.0))  # no value
    assert len([a for a in ax.patches if str(a.get_gid()).startswith("tile-")]) == 51


def test_balance_shares_smd_and_design_effect():
    data = pd.DataFrame({"y": [1, 0, 1, 0], "g": ["a", "a", "a", "b"], "w": [1.0, 1.0, 2.0, 4.0]})
    survey = Survey(data, "y", weights="w")
    frame = Frame(pd.DataFrame({"g": ["a", "b"], "N": [50, 50]}), "N")
    table = plots.balance_table(survey, frame, ["g"]).set_index("level")
    # weighted shares: a = 4/8, b = 4/8; the frame's 0.5 each: no difference
    assert table.loc["a", "survey"] == 0.5 and table.loc["a", "smd"] == 0.0
    unweighted = plots.balance_table(Survey(data, "y"), frame, ["g"]).set_index("level")
    s, f = 0.75, 0.5
    assert unweighted.loc["a", "smd"] == pytest.approx((s - f) / np.sqrt((s * (1 - s) + f * (1 - f)) / 2))
    assert plots.kish_deff(np.array([1.0, 1.0, 2.0, 4.0])) == pytest.approx(4 * 22 / 64)
    title = plots.balance_plot(survey, frame, ["g"]).axes[0].get_title()
    assert "Kish design effect 1.38" in title


def test_draws_plot_marks_the_interval(article):
    _, est = article
    ax = plots.draws_plot(est, group="3").axes[0]
    span = by_gid(ax, "interval")  # a Rectangle from lower to upper
    row = est.table.set_index("class").loc[3]
    np.testing.assert_allclose([span.get_x(), span.get_x() + span.get_width()], [row["lower"], row["upper"]])
    assert by_gid(ax, "estimate").get_xdata()[0] == pytest.approx(row["estimate"])
    assert plots.draws_plot(est, group="1", contrast="5").axes[0].get_title() == "1 - 5"


def test_pooling_plot_is_the_articles_table(article, ref):
    fit, _ = article
    ax = plots.pooling_plot(fit).axes[0]
    np.testing.assert_allclose(by_gid(ax, "none").get_ydata(), ref["cell_proportions"], atol=1e-9)
    np.testing.assert_allclose(by_gid(ax, "partial").get_ydata(), ref["glmer_predict"], atol=1e-5)
    assert by_gid(ax, "complete").get_ydata()[0] == pytest.approx(ref["pooled_predict"][0])


def test_sampler_plot_draws_the_diagnostics(article_fit):
    fig = plots.sampler_plot(article_fit)
    table = article_fit.diagnostics()
    np.testing.assert_allclose(by_gid(fig.axes[0], "rhat").get_ydata(), table["rhat"])
    np.testing.assert_allclose(by_gid(fig.axes[1], "ess_bulk").get_ydata(), table["ess_bulk"])


def test_estimate_plot_is_the_estimates_plot(article):
    _, est = article
    ax = est.plot().axes[0]
    np.testing.assert_allclose(by_gid(ax, "estimates").get_xdata(), np.sort(est.table["estimate"]))


def test_rank_plot_counts_each_chains_ranks(article_fit):
    draws = article_fit.samples["tau"][:, :, 0]
    counts = plots.rank_counts(draws, bins=10)
    assert counts.shape == (4, 10) and counts.sum() == draws.size
    pooled = np.sort(draws.ravel())
    first_bin = draws < pooled[draws.size // 10]  # each chain's draws in the lowest tenth
    np.testing.assert_array_equal(counts[:, 0], first_bin.sum(axis=1))
    fig = plots.rank_plot(article_fit, ["tau"], bins=10)
    np.testing.assert_array_equal(by_gid(fig.axes[0], "tau-chain2").get_ydata(), counts[2])


def test_check_plot_flags_small_p_values():
    check = pd.DataFrame({"g": ["a", "b"], "respondents": [10, 10], "observed": [0.2, 0.9], "replicated": [0.25, 0.5],
                          "lower": [0.1, 0.4], "upper": [0.4, 0.6], "p_value": [0.5, 0.01]})
    ax = plots.check_plot(check).axes[0]
    np.testing.assert_allclose(by_gid(ax, "flagged").get_xdata(), [0.9])
    np.testing.assert_allclose(by_gid(ax, "observed").get_xdata(), [0.2])
    ends = np.array([s[:, 0] for s in by_gid(ax, "replicated").get_segments()])
    np.testing.assert_allclose(ends, [[0.1, 0.4], [0.4, 0.6]])


def _shares_by_state():
    from misterp import Estimate

    rows = [("CA", "a", 0.5), ("CA", "b", 0.3), ("CA", "c", 0.2), ("TX", "a", 0.2), ("TX", "b", 0.7), ("TX", "c", 0.1)]
    return Estimate(pd.DataFrame(rows, columns=["state", "category", "estimate"]), ["state"])


def test_share_plot_stacks_each_groups_categories():
    from misterp.report.plots import share_plot

    ax = share_plot(_shares_by_state()).axes[0]
    bars = [p for p in ax.patches if p.get_gid() == "share-b"]
    # groups sorted by the first category's share: TX (0.2) then CA (0.5); b starts where a ends
    assert [round(p.get_x(), 6) for p in bars] == [0.2, 0.5] and [round(p.get_width(), 6) for p in bars] == [0.7, 0.3]


def test_leading_map_colours_each_state_by_its_leading_category():
    from matplotlib.colors import to_rgba

    from misterp.report.plots import leading_map

    ax = leading_map(_shares_by_state()).axes[0]
    assert by_gid(ax, "tile-CA").get_facecolor()[:3] == to_rgba("C0")[:3]
    assert by_gid(ax, "tile-TX").get_facecolor()[:3] == to_rgba("C1")[:3]
    assert by_gid(ax, "tile-NY").get_facecolor()[:3] == (0.85, 0.85, 0.85)
