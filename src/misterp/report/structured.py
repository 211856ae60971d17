"""Figures for ordered levels: the trend of estimates over waves, and a structured term's fitted curve.

- :func:`trend_plot`: estimates by wave with their intervals, one line per group of the other ``by``
  columns (the most populous few).
- :func:`term_plot`: an ordered structured term's (``rw1(age)``, ``ar1(wave)``) effects over its levels,
  their mean and a ± 2 sd band from the fit's draws, with the levels without respondents marked.

Example
-------
>>> import pandas as pd
>>> from misterp.results.estimate import Estimate
>>> table = pd.DataFrame({"wave": [1, 2, 3], "estimate": [0.4, 0.5, 0.45], "lower": [0.3, 0.4, 0.35],
...                       "upper": [0.5, 0.6, 0.55], "population": [1.0, 1.0, 1.0]})
>>> fig = trend_plot(Estimate(table, ["wave"]), "wave")
>>> len(fig.axes[0].lines)
1
"""

from __future__ import annotations

import numpy as np

from .plots import _axes

MAX_LINES = 8  # groups drawn in a trend at most: the most populous


def trend_plot(estimate, wave: str, ax=None, max_lines: int = MAX_LINES):
    """Estimates (and their intervals, as bands) over the ``wave`` column of an Estimate by it."""
    if wave not in estimate.by:
        raise ValueError(f"the trend needs an Estimate by {wave!r}")
    table = estimate.table
    others = [c for c in estimate.by if c != wave]
    fig, ax = _axes(ax, (8, 4))
    if others:
        size = table.groupby(others, sort=False)["population"].sum().sort_values(ascending=False)
        groups = list(size.index[:max_lines])
        keys = table[others].apply(tuple, axis=1) if len(others) > 1 else table[others[0]]
    else:
        groups, keys = [None], None
    for k, group in enumerate(groups):
        rows = table if group is None else table[keys == group]
        rows = rows.sort_values(wave)
        x = np.arange(len(rows)) if not np.issubdtype(rows[wave].dtype, np.number) else rows[wave].to_numpy()
        label = "estimate" if group is None else ":".join(map(str, group)) if isinstance(group, tuple) else str(group)
        colour = f"C{k % 10}"
        ax.plot(x, rows["estimate"], "-o", ms=3, color=colour, label=label, gid=f"trend-{label}")
        ax.fill_between(x, rows["lower"], rows["upper"], color=colour, alpha=0.15, linewidth=0)
        if not np.issubdtype(rows[wave].dtype, np.number):
            ax.set_xticks(x, rows[wave].astype(str), rotation=90 if len(x) > 12 else 0, fontsize=7)
    ax.set_xlabel(wave)
    ax.set_ylabel("estimate")
    title = f"by {wave}" + (f", the {len(groups)} largest groups of {':'.join(others)}" if others and
                             len(size) > len(groups) else "")
    ax.set_title(title)
    if others:
        ax.legend(fontsize=7, frameon=False, ncol=2)
    return fig


def term_plot(fit, term: str, ax=None, n_draws: int = 1000, seed: int = 0):
    """The effects of the ordered structured term ``term`` (its name, "rw1(age)") over its levels, on the
    linear predictor's scale: the draws' mean and ± 2 sd, open markers at levels without respondents."""
    design = fit.design
    k = design.group_names.index(term)
    structure = design.structure(k)
    if structure is None or structure.kind not in ("rw1", "rw2", "ar1"):
        raise ValueError(f"{term!r} is not an rw1, rw2 or ar1 term")
    start = len(design.fixed_names) + int((design.n_levels * design.n_effects)[:k].sum())
    draws = fit.parameter_draws(n_draws, np.random.default_rng(seed)).coef[:, start:start + design.n_levels[k]]
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    seen = np.zeros(design.n_levels[k], bool)
    seen[np.unique(fit.cells.groups[k])] = True
    x = np.arange(len(mean))
    fig, ax = _axes(ax)
    ax.fill_between(x, mean - 2 * sd, mean + 2 * sd, color="C0", alpha=0.2, linewidth=0, label="± 2 sd")
    ax.plot(x, mean, "-", color="C0", gid="curve")
    ax.plot(x[seen], mean[seen], "o", color="C0", label="levels with respondents", gid="seen")
    if (~seen).any():
        ax.plot(x[~seen], mean[~seen], "o", mfc="white", color="C0", label="without respondents", gid="unseen")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.set_xticks(x, [str(v) for v in structure.levels], rotation=90 if len(x) > 12 else 0, fontsize=7)
    ax.set_ylabel("effect (linear predictor)")
    ax.set_title(f"{term}: the fitted effects")
    ax.legend(fontsize=8, frameon=False)
    return fig
