"""MRP plots with matplotlib: each returns its Figure and draws into ``ax`` when given one.

- :func:`estimates_plot`: groups sorted by estimate, with interval bars and the raw,
  design-weighted and raked estimates and the raw n beside them.
- :func:`draws_plot`: a poststratified estimate's draws as a density, the interval marked,
  or the contrast of two groups.
- :func:`balance_plot`: each model variable's share in the survey and in the frame, the
  standardised mean difference per level, and Kish's design effect of the weights.
- :func:`state_map`: a US tile grid coloured by a ``state`` column of postal codes.
- :func:`pooling_plot`: complete, no and partial pooling per level of a grouping term.
- :func:`sampler_plot`: a Bayesian fit's R-hat and bulk ESS per parameter.
- :func:`rank_plot`: rank histograms per chain (Vehtari et al. 2021), flat when chains agree.
- :func:`check_plot`: observed group means against replicated ones (a model check's table).
- :func:`hyper_plot`: an inla fit's hyperparameters' marginals, with the design's points and weights.

The figures use matplotlib's object interface (no pyplot state, no display needed).

Example
-------
>>> import pandas as pd
>>> from misterp.results.estimate import Estimate
>>> table = pd.DataFrame({"state": ["AK", "AL"], "estimate": [0.4, 0.6], "lower": [0.3, 0.5],
...                       "upper": [0.5, 0.7], "raw_n": [10, 20]})
>>> fig = estimates_plot(Estimate(table, ["state"]))
>>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
['AK', 'AL']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..results.compare import FrameMargins

# a common US tile grid: (row, column) of each state's square, DC included
US_TILES = {
    "AK": (0, 0), "ME": (0, 10), "VT": (1, 9), "NH": (1, 10),
    "WA": (2, 0), "ID": (2, 1), "MT": (2, 2), "ND": (2, 3), "MN": (2, 4), "IL": (2, 5), "WI": (2, 6),
    "MI": (2, 7), "NY": (2, 8), "RI": (2, 9), "MA": (2, 10),
    "OR": (3, 0), "NV": (3, 1), "WY": (3, 2), "SD": (3, 3), "IA": (3, 4), "IN": (3, 5), "OH": (3, 6),
    "PA": (3, 7), "NJ": (3, 8), "CT": (3, 9),
    "CA": (4, 0), "UT": (4, 1), "CO": (4, 2), "NE": (4, 3), "MO": (4, 4), "KY": (4, 5), "WV": (4, 6),
    "VA": (4, 7), "MD": (4, 8), "DE": (4, 9),
    "AZ": (5, 1), "NM": (5, 2), "KS": (5, 3), "AR": (5, 4), "TN": (5, 5), "NC": (5, 6), "SC": (5, 7),
    "DC": (5, 8),
    "OK": (6, 3), "LA": (6, 4), "MS": (6, 5), "AL": (6, 6), "GA": (6, 7),
    "HI": (7, 0), "TX": (7, 3), "FL": (7, 8),
}
COMPARISONS = {"raw_mean": ("raw", "o"), "weighted_mean": ("weighted", "s"), "raked_mean": ("raked", "D")}
MAX_ROWS = 60  # above this many groups or levels, a plot shows the lowest and highest 30


def _axes(ax, size=(7, 4)):
    """(figure, axes): the given axes' figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _label(table: pd.DataFrame, by: list) -> list[str]:
    return table[by].astype(str).agg(":".join, axis=1).tolist() if by else ["overall"]


def estimates_plot(estimate, ax=None, comparisons: bool = True):
    """Groups sorted by estimate with their intervals; the comparison estimates and raw n beside them.

    Parameters
    ----------
    estimate : Estimate
        ``poststratify``'s result (with ``add_comparisons``' columns, when they are there).
    ax : matplotlib Axes, optional
    comparisons : bool
        Draw the raw, design-weighted and raked estimates when the table has them.

    Returns
    -------
    matplotlib Figure; the groups run bottom to top in increasing estimate.
    """
    table = estimate.table.assign(label=_label(estimate.table, estimate.by))
    table = table[table["estimate"].notna()].sort_values("estimate", kind="stable").reset_index(drop=True)
    shown = len(table)
    if shown > MAX_ROWS:  # the table holds every group; the plot, the extremes
        table = pd.concat([table.head(MAX_ROWS // 2), table.tail(MAX_ROWS // 2)], ignore_index=True)
    fig, ax = _axes(ax, (7, max(3.0, 0.22 * len(table) + 1)))
    if shown > MAX_ROWS:
        ax.set_title(f"the {MAX_ROWS // 2} lowest and highest of {shown} groups")
    y = np.arange(len(table))
    ax.hlines(y, table["lower"], table["upper"], color="0.35", linewidth=1.5, label="interval", gid="intervals")
    ax.plot(table["estimate"], y, "o", color="C0", label="MRP", gid="estimates")
    if comparisons:
        drawn = comparisons_drawn(table)
        for k, (column, (name, marker)) in enumerate(COMPARISONS.items()):
            if name in drawn:
                ax.plot(table[column], y, marker, mfc="none", color=f"C{k + 1}", label=name, gid=column)
    ax.set_yticks(y, table["label"])
    if "raw_n" in table:
        for yi, n in zip(y, table["raw_n"]):
            if pd.isna(n):
                continue
            ax.annotate(f"n={int(n)}", (1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=7, color="0.4")
    ax.set_xlabel("estimate")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def comparisons_drawn(table: pd.DataFrame) -> list[str]:
    """The comparison series (raw, weighted, raked) that ``table`` holds values of: those the estimates
    plot draws."""
    return [name for column, (name, _) in COMPARISONS.items() if column in table and table[column].notna().any()]


def group_labels(estimate) -> list[str]:
    """Each group's label as the plots write it ("CA", "CA:White"; "overall" without groups)."""
    return _label(estimate.table, estimate.by)


def largest_group(estimate) -> int:
    """The row of the group that :func:`draws_plot` shows by default: the largest by population among
    the groups whose draws are all finite (the first such group when there is no population)."""
    finite = np.isfinite(estimate.draws).all(axis=0)
    if not finite.any():
        raise ValueError("no group has draws to plot (every group is empty)")
    population = estimate.table["population"].to_numpy(float) if "population" in estimate.table else 1.0
    return int(np.argmax(np.where(finite, population, -np.inf)))


def draws_plot(estimate, group=None, contrast=None, ax=None, bins: int = 60):
    """The draws of one group's estimate (or of group - contrast) as a histogram density, with the
    estimate and the interval's ends marked.

    ``group`` and ``contrast`` are labels as the estimates plot writes them ("CA", "CA:White").
    """
    if estimate.draws is None:
        raise ValueError("this Estimate carries no draws (a delta-method interval); fit with draws")
    labels = group_labels(estimate)
    pick = largest_group(estimate) if group is None else labels.index(str(group))
    values = estimate.draws[:, pick]
    title = labels[pick]
    if contrast is not None:
        values = values - estimate.draws[:, labels.index(str(contrast))]
        title = f"{title} - {contrast}"
    values = values[np.isfinite(values)]
    if not len(values):
        raise ValueError(f"{title} has no draws to plot (an empty group?)")
    fig, ax = _axes(ax)
    ax.hist(values, bins=bins, density=True, color="C0", alpha=0.6, gid="density")
    low, high = np.quantile(values, [0.025, 0.975])
    row = estimate.table.iloc[pick]
    if contrast is None:
        low, high = row["lower"], row["upper"]
        ax.axvline(row["estimate"], color="k", gid="estimate")
    else:
        ax.axvline(np.mean(values), color="k", gid="estimate")
    ax.axvspan(low, high, color="C1", alpha=0.15, gid="interval")
    ax.set_title(title)
    ax.set_xlabel("poststratified estimate" if contrast is None else "difference")
    return fig


def kish_deff(weights: np.ndarray) -> float:
    """Kish's design effect of unequal weights: n sum(w^2) / (sum w)^2."""
    w = np.asarray(weights, dtype=float)
    return float(len(w) * np.sum(w ** 2) / np.sum(w) ** 2)


def balance_table(survey, frame, columns, notes: list | None = None) -> pd.DataFrame:
    """Each level's share in the survey (weighted by design weights when given) and in the frame,
    and the standardised mean difference of its indicator, (share_s - share_f) / sqrt(pooled var).

    ``frame`` is a Frame or a :class:`~misterp.results.compare.FrameMargins` holding ``columns``
    (a streamed frame's population per level). A column whose survey values the frame lacks (a
    continuous covariate on a coarser frame grid) is left out, and one with more than
    ``MAX_ROWS // 2`` levels keeps those furthest from the population; ``notes`` gets a note of
    each.
    """
    notes = [] if notes is None else notes
    data = survey.data
    weights = data[survey.weights].to_numpy(float) if survey.weights else np.ones(len(data))
    tables = []
    for col in columns:
        population = _population(frame, col)
        survey_share = pd.Series(weights).groupby(data[col].to_numpy()).sum() / weights.sum()
        absent = survey_share.index.difference(population.index)
        if len(absent):
            notes.append(f"the balance figure leaves out {col}: {len(absent)} of its survey values are not among "
                         f"the frame's {len(population)} ({', '.join(map(str, absent[:3]))}"
                         f"{' ...' if len(absent) > 3 else ''})")
            continue
        levels = population.index
        s = survey_share.reindex(levels, fill_value=0.0).to_numpy(float)
        f = (population / population.sum()).to_numpy(float)
        pooled = np.sqrt((s * (1 - s) + f * (1 - f)) / 2)
        smd = np.divide(s - f, pooled, out=np.zeros(len(levels)), where=pooled > 0)
        table = pd.DataFrame({"variable": col, "level": levels, "survey": s, "population": f, "smd": smd})
        if len(table) > MAX_ROWS // 2:
            notes.append(f"the balance figure shows the {MAX_ROWS // 2} of the {len(table)} levels of {col} whose "
                         "shares differ most between survey and population")
            table = table.iloc[np.sort(np.argsort(-np.abs(smd), kind="stable")[:MAX_ROWS // 2])]
        tables.append(table)
    if not tables:
        raise ValueError("no model variable has survey values that the frame's levels cover")
    return pd.concat(tables, ignore_index=True)


def _population(frame, col: str) -> pd.Series:
    """The frame's population per level of ``col``, sorted by level (a Frame's, or FrameMargins' sums)."""
    if isinstance(frame, FrameMargins):
        if col not in frame.totals or col in frame.many:
            raise ValueError(f"the frame's margins do not hold {col}")
        return frame.totals[col].sort_index()
    return frame.data.groupby(col)[frame.count].sum().astype(float).sort_index()


def balance_plot(survey, frame, columns, ax=None, notes: list | None = None):
    """The sample against the population: per variable and level, the survey's and the frame's
    shares, and the standardised mean difference; Kish's design effect in the title when the
    survey has weights. ``frame`` and ``notes`` as :func:`balance_table` takes them."""
    table = balance_table(survey, frame, columns, notes)
    fig, ax = _axes(ax, (7, max(3.0, 0.2 * len(table) + 1)))
    y = np.arange(len(table))
    ax.barh(y - 0.2, table["survey"], height=0.4, label="survey", color="C0", gid="survey")
    ax.barh(y + 0.2, table["population"], height=0.4, label="population", color="C1", gid="population")
    ax.set_yticks(y, [f"{v}: {lv}" for v, lv in zip(table["variable"], table["level"])], fontsize=7)
    ax.set_xlabel("share")
    for yi, smd in zip(y, table["smd"]):
        ax.annotate(f"SMD {smd:+.2f}", (1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=7,
                    color="C3" if abs(smd) > 0.1 else "0.4")
    title = "sample against population"
    if survey.weights:
        title += f" (Kish design effect {kish_deff(survey.data[survey.weights]):.2f})"
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.invert_yaxis()
    return fig


def state_map(estimate, column: str = "estimate", ax=None, cmap: str = "viridis"):
    """A US tile grid: one square per state of the Estimate's ``state`` column, coloured by
    ``column``; states without a value are grey."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    if estimate.by != ["state"]:
        raise ValueError("the map needs an Estimate by state alone (postal codes, as 'CA')")
    values = estimate.table.set_index(estimate.table["state"].astype(str))[column]
    norm = Normalize(values.min(), values.max())
    colours = colormaps[cmap]
    fig, ax = _axes(ax, (8, 5))
    for state, (row, col) in US_TILES.items():
        value = values.get(state, np.nan)
        face = colours(norm(value)) if np.isfinite(value) else (0.85, 0.85, 0.85, 1.0)
        ax.add_patch(Rectangle((col, -row), 0.95, 0.95, facecolor=face, edgecolor="white", gid=f"tile-{state}"))
        ax.text(col + 0.475, -row + 0.475, state, ha="center", va="center", fontsize=7,
                color="white" if np.isfinite(value) and norm(value) < 0.6 else "black")
    ax.set_xlim(-0.2, 11.2)
    ax.set_ylim(-7.2, 1.2)
    ax.set_aspect("equal")
    ax.axis("off")
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm, colours), ax=ax, shrink=0.6, label=column)
    return fig


def share_plot(estimate, ax=None):
    """A categorical or ordinal outcome's shares by group: one stacked bar per group (the lowest and highest
    30 groups by the first category's share when there are more than 60), a segment per category in the
    categories' order, labelled where it is wide enough."""
    table = estimate.table
    if "category" not in table:
        raise ValueError("the share plot needs an Estimate with a category column (a categorical outcome)")
    categories = list(dict.fromkeys(table["category"]))
    shares = table.assign(group=_label(table, estimate.by)).pivot_table(
        index="group", columns="category", values="estimate", sort=False)[categories]
    shares = shares.sort_values(categories[0])
    if len(shares) > MAX_ROWS:
        shares = pd.concat([shares.iloc[:MAX_ROWS // 2], shares.iloc[-(MAX_ROWS // 2):]])
    fig, ax = _axes(ax, (8, max(2.5, 0.3 * len(shares) + 1.2)))
    left = np.zeros(len(shares))
    colours = [f"C{i % 10}" for i in range(len(categories))]
    y = np.arange(len(shares))
    for category, colour in zip(categories, colours):
        width = shares[category].to_numpy()
        ax.barh(y, width, left=left, color=colour, label=str(category), gid=f"share-{category}")
        for yi, (x0, w) in enumerate(zip(left, width)):
            if w >= 0.08:
                ax.text(x0 + w / 2, yi, f"{w:.0%}", ha="center", va="center", fontsize=7, color="white")
        left = left + width
    ax.set_yticks(y, shares.index)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share")
    ax.legend(ncols=min(len(categories), 6), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


def leading_map(estimate, ax=None):
    """A US tile grid of a categorical outcome's estimate by state: each state coloured by its leading
    category (as the share plot colours it), shaded by that category's share."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch, Rectangle

    if estimate.by != ["state"] or "category" not in estimate.table:
        raise ValueError("the leading-category map needs a categorical Estimate by state alone")
    table = estimate.table.assign(state=estimate.table["state"].astype(str))
    categories = list(dict.fromkeys(table["category"]))
    lead = table.loc[table.groupby("state")["estimate"].idxmax()].set_index("state")
    fig, ax = _axes(ax, (8, 5))
    for state, (row, col) in US_TILES.items():
        face = (0.85, 0.85, 0.85, 1.0)
        if state in lead.index and np.isfinite(lead.loc[state, "estimate"]):
            share = float(lead.loc[state, "estimate"])
            base = to_rgba(f"C{categories.index(lead.loc[state, 'category']) % 10}")
            face = base[:3] + (min(1.0, 0.35 + share),)
        ax.add_patch(Rectangle((col, -row), 0.95, 0.95, facecolor=face, edgecolor="white", gid=f"tile-{state}"))
        ax.text(col + 0.475, -row + 0.475, state, ha="center", va="center", fontsize=7)
    ax.set_xlim(-0.2, 11.2)
    ax.set_ylim(-7.2, 1.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(handles=[Patch(color=f"C{i % 10}", label=str(c)) for i, c in enumerate(categories)],
              loc="lower right", frameon=False, title="leading")
    return fig


def pooling_plot(fit, term: str | None = None, ax=None):
    """Complete pooling (the overall raw mean), no pooling (each level's raw mean) and partial
    pooling (the multilevel fit's predictions for the level's survey cells, averaged over its
    respondents) for the levels of one grouping term, on the outcome's scale, as the article
    compares them; the lowest and highest 30 levels when there are more than 60."""
    design, cells = fit.design, fit.cells
    k = 0 if term is None else design.group_names.index(term)
    family = fit.family
    codes = cells.groups[k]
    stats = {name: np.bincount(codes, weights=v, minlength=design.n_levels[k]) for name, v in cells.stats.items()}
    none = family.observed_mean(stats)
    complete = family.observed_mean({name: v.sum(keepdims=True) for name, v in cells.stats.items()})[0]
    n = family.count(cells.stats)
    partial = np.bincount(codes, weights=n * fit.predict(cells.table), minlength=design.n_levels[k]) / family.count(stats)
    labels = np.array(design.level_labels(k), dtype=object)
    if len(labels) > MAX_ROWS:
        keep = np.argsort(partial)[np.r_[:MAX_ROWS // 2, -(MAX_ROWS // 2):0]]
        none, partial, labels = none[keep], partial[keep], labels[keep]
    fig, ax = _axes(ax)
    x = np.arange(len(labels))
    ax.axhline(complete, color="0.5", linestyle="--", label="complete pooling", gid="complete")
    ax.plot(x, none, "o", mfc="none", color="C1", label="no pooling", gid="none")
    ax.plot(x, partial, "o", color="C0", label="partial pooling", gid="partial")
    ax.set_xticks(x, list(labels), rotation=90 if len(labels) > 10 else 0, fontsize=7)
    ax.set_title(f"pooling across {design.group_names[k]}")
    ax.legend(fontsize=8, frameon=False)
    return fig


def check_plot(check: pd.DataFrame, ax=None):
    """A model check (:func:`misterp.results.model_checks.predictive_check`'s table): each group's
    replicated 95% range and the observed mean, red where the p-value is below 0.05."""
    groups = [c for c in check.columns if c not in ("respondents", "observed", "replicated", "lower", "upper",
                                                     "p_value")]
    labels = check[groups].astype(str).agg(":".join, axis=1) if groups else pd.Series(["all"])
    fig, ax = _axes(ax, (7, max(3.0, 0.22 * len(check) + 1)))
    y = np.arange(len(check))
    ax.hlines(y, check["lower"], check["upper"], color="0.6", linewidth=3, label="replicated 95%", gid="replicated")
    flagged = check["p_value"].to_numpy() < 0.05
    ax.plot(check["observed"][~flagged], y[~flagged], "o", color="C0", label="observed", gid="observed")
    ax.plot(check["observed"][flagged], y[flagged], "o", color="C3", label="observed, p < 0.05", gid="flagged")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("group mean")
    ax.legend(fontsize=8, frameon=False)
    return fig


def rank_counts(draws: np.ndarray, bins: int = 20) -> np.ndarray:
    """Per chain, the counts of its draws' ranks (among all chains' draws) in ``bins`` equal bins:
    (chains, bins) for draws (chains, iterations)."""
    chains, n = draws.shape
    ranks = np.argsort(np.argsort(draws.ravel(), kind="stable"), kind="stable").reshape(chains, n)
    edges = np.linspace(0, chains * n, bins + 1)
    return np.stack([np.histogram(r, bins=edges)[0] for r in ranks])


def rank_plot(fit, parameters: list[str] | None = None, bins: int = 20):
    """Rank plots of a Bayesian fit: for each parameter (by default the intercept and the group-sd
    scales), each chain's histogram of ranks among all draws, drawn as steps; they lie flat, near
    the dashed line, when the chains sample the same distribution."""
    from matplotlib.figure import Figure

    names = parameters or [p for p in fit.samples if p in ("alpha", "beta", "tau", "aux_unscaled")
                           or p.startswith("simplex_")]
    columns = []
    for name in names:
        value = fit.samples[name]
        flat = value.reshape(value.shape[0], value.shape[1], -1)
        columns += [(f"{name}[{j}]" if flat.shape[2] > 1 else name, flat[:, :, j]) for j in range(flat.shape[2])]
    fig = Figure(figsize=(7, 1.8 * len(columns) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(columns), 1, squeeze=False)[:, 0])
    for ax, (label, draws) in zip(axes, columns):
        counts = rank_counts(draws, bins)
        for c, row in enumerate(counts):
            ax.step(np.arange(bins), row, where="mid", label=f"chain {c + 1}", gid=f"{label}-chain{c}")
        ax.axhline(draws.shape[1] / bins, color="0.5", linestyle="--", linewidth=0.8)
        ax.set_ylabel(label)
        ax.set_yticks([])
    axes[0].legend(fontsize=7, frameon=False, ncol=4)
    axes[-1].set_xlabel("rank bin")
    return fig


def sampler_plot(fit, ax=None):
    """A Bayesian fit's diagnostics per parameter: R-hat (line at 1.01) and bulk and tail ESS
    (line at 400)."""
    table = fit.diagnostics()
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 3.5), layout="constrained")
        axes = fig.subplots(1, 2)
    else:
        fig, axes = ax.figure, [ax, ax.twinx()]
    x = np.arange(len(table))
    axes[0].plot(x, table["rhat"], ".", gid="rhat")
    for i in np.argsort(-table["rhat"].fillna(0).to_numpy())[:3]:  # name the worst
        axes[0].annotate(table["parameter"].iloc[i], (x[i], table["rhat"].iloc[i]), fontsize=6)
    axes[0].axhline(1.01, color="C3", linewidth=0.8)
    axes[0].set_ylabel("R-hat")
    axes[1].plot(x, table["ess_bulk"], ".", label="bulk", gid="ess_bulk")
    axes[1].plot(x, table["ess_tail"], ".", label="tail", gid="ess_tail")
    axes[1].axhline(400, color="C3", linewidth=0.8)
    axes[1].set_ylabel("ESS")
    axes[1].legend(fontsize=8, frameon=False)
    for a in axes:
        a.set_xlabel("parameter")
    return fig


def hyper_plot(fit, bins: int = 50):
    """An inla fit's hyperparameters: each sd's marginal posterior (the skewness-corrected Gaussian
    the design was built on, as a density), with the 2.5/50/97.5% quantiles marked and the design's
    points below it, their heights their weights; one panel per sd (the first eight)."""
    from matplotlib.figure import Figure

    samples, table = fit.hyper_samples(), fit.hyper_table()
    m = min(samples.shape[1], 8)
    cols = min(m, 4)
    fig = Figure(figsize=(3 * cols, 2.4 * ((m + cols - 1) // cols)), layout="constrained")
    axes = np.atleast_1d(fig.subplots((m + cols - 1) // cols, cols, squeeze=False).ravel())
    for k, ax in enumerate(axes):
        if k >= m:
            ax.set_visible(False)
            continue
        values = samples[:, k]
        hi = np.quantile(values, 0.995)
        ax.hist(values[values <= hi], bins=bins, density=True, color="C0", alpha=0.6, gid=f"hyper{k}")
        for q in ("0.025quant", "0.5quant", "0.975quant"):
            ax.axvline(table[q].iloc[k], color="C3", linewidth=0.8, linestyle="-" if q == "0.5quant" else ":")
        points = fit.reported[:, k]
        shown = points <= hi
        ax.vlines(points[shown], 0, -fit.weights[shown] * ax.get_ylim()[1], color="C1", linewidth=1.2)
        ax.set_title(table.index[k], fontsize=8)
        ax.tick_params(labelsize=7)
    return fig
