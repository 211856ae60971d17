"""One self-contained HTML report: inputs and coverage, the model and its problems, the sortable
estimates table, and every plot that applies, as base64 PNG images. Nothing links to another
host, so the file works offline. A figure or section that cannot be made (data it cannot show) is
left out with a note saying why, and the report is still written.

Example
-------
>>> import pandas as pd
>>> from misterp.results.estimate import Estimate
>>> page = html_report(Estimate(pd.DataFrame({"estimate": [0.5], "lower": [0.4], "upper": [0.6]}), []),
...                    title="example")
>>> page.startswith("<!DOCTYPE html>") and "http" not in page
True
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from typing import NamedTuple

import pandas as pd

from ..engines.bayes import BayesFit
from ..engines.inla import InlaFit
from ..engines.bootstrap import BootstrapFit
from ..engines.laplace import MixedFit
from ..results.compare import margin_columns
from ..results.extras import extra
from . import plots, structured

SORTING = """
document.querySelectorAll("table.sortable th").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const up = th.dataset.order !== "up";
  th.dataset.order = up ? "up" : "down";
  const key = row => { const c = row.cells[column]; const n = parseFloat(c.dataset.sort);
                       return isNaN(n) ? (c.dataset.sort === "" ? -Infinity : c.textContent) : n; };
  Array.from(body.rows).sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach(row => body.appendChild(row));
}));
"""
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
th { cursor: pointer; background: #f4f4f4; }
pre { background: #f8f8f8; padding: 1em; overflow-x: auto; font-size: 0.8em; }
img { max-width: 100%; display: block; margin: 1em 0; }
.problem { color: #a40000; }
"""


MAX_INCHES = 100  # a figure taller or wider than this (10,000 pixels at 100 dpi) is left out with a note
WIDTH = 100  # the model summary's prose lines (its warnings) wrap at this many characters


class ReportFigure(NamedTuple):
    """A figure of the report: its file name, its caption, and the figure as PNG bytes."""

    name: str
    caption: str
    png: bytes


def figure_tag(png: bytes, alt: str) -> str:
    """An <img> holding PNG bytes as base64."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render(fig) -> bytes:
    """The figure as PNG bytes at 100 dpi; a ValueError for one too large to draw."""
    width, height = fig.get_size_inches()
    if max(width, height) > MAX_INCHES:
        raise ValueError(f"it would be {width * 100:.0f} x {height * 100:.0f} pixels, too large to show")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def report_figures(estimate, fit=None, survey=None, frame=None, notes: list | None = None,
                   wave: str | None = None) -> list[ReportFigure]:
    """Every figure that applies to these results, drawn.

    Parameters
    ----------
    estimate : Estimate
    fit, survey : optional
    frame : Frame or FrameMargins, optional
        What the balance figure reads of the frame: its population per level of the model's
        variables (a streamed frame's :func:`misterp.results.compare.frame_margins`).
    notes : list of str, optional
        Gets a note for each figure that cannot be drawn (it is left out; the others are kept) and
        for each part a figure leaves out.
    wave : str, optional
        The wave column: a trend figure when the estimate is by it.

    Returns
    -------
    list of ReportFigure
    """
    notes = [] if notes is None else notes
    figures: list[ReportFigure] = []

    def add(name, caption, make, *args):
        made = extra(f"the {name} figure", notes,
                     lambda: ReportFigure(name, caption() if callable(caption) else caption, render(make(*args))))
        if made is not None:
            figures.append(made)

    shares = "category" in estimate.table  # a categorical or ordinal outcome: a share per category
    if shares:
        add("shares", "The shares of each category by group", plots.share_plot, estimate)
    elif estimate.by:
        add("estimates", lambda: estimates_caption(estimate), plots.estimates_plot, estimate)
    if estimate.by == ["state"] and estimate.table["state"].astype(str).isin(plots.US_TILES).mean() > 0.5:
        if shares:
            add("map", "Each state's leading category on a US tile map (darker: a larger share)", plots.leading_map,
                estimate)
        else:
            add("map", "The estimates on a US tile map", plots.state_map, estimate)
    if wave and wave in estimate.by:
        add("trend", f"The estimates over {wave}, with their intervals", structured.trend_plot, estimate, wave)
    if fit is not None:
        for k, name in enumerate(fit.design.group_names):
            kind = getattr(fit.design.structure(k), "kind", None)
            if kind in ("rw1", "rw2", "ar1"):
                add(f"curve-{kind}-{fit.design.group_terms[k].columns[0]}", f"The fitted {name} effects, ± 2 sd",
                    structured.term_plot, fit, name)
    if estimate.draws is not None and not shares:
        add("draws", lambda: draws_caption(estimate), plots.draws_plot, estimate)
    if survey is not None and frame is not None and fit is not None:
        columns = extra("the balance figure", notes, lambda: [c for c in margin_columns(fit.design, frame)
                                                             if c in survey.data], default=[])
        if columns:
            add("balance", "The sample against the population", plots.balance_plot, survey, frame, columns, None,
                notes)
    if fit is not None and estimate.by and all(c in fit.cells.table for c in estimate.by) and \
            len(estimate.table) <= plots.MAX_ROWS:
        from ..results.model_checks import predictive_check

        add("check", "Model check: observed survey means against replicated data",
            lambda: plots.check_plot(predictive_check(fit, by=estimate.by, n_rep=200, seed=1)))
    mixed = fit.original if isinstance(fit, BootstrapFit) else fit
    if isinstance(mixed, MixedFit) and mixed.design.group_terms and mixed.design.group_terms[0].intercept:
        add("pooling", "Complete, no and partial pooling", plots.pooling_plot, mixed)
    if isinstance(fit, InlaFit) and len(fit.mode):
        add("hyperparameters", "The hyperparameters' posteriors (orange: the integration points, by weight)",
            plots.hyper_plot, fit)
    if isinstance(fit, BayesFit):
        add("sampler", "Sampler diagnostics per parameter", plots.sampler_plot, fit)
        add("ranks", "Rank plots per chain", plots.rank_plot, fit)
    return figures


def estimates_caption(estimate) -> str:
    """The estimates figure's caption, naming only the comparison series it draws."""
    drawn = plots.comparisons_drawn(estimate.table)
    if not drawn:
        return "Estimates by group, with their intervals"
    listed = drawn[0] if len(drawn) == 1 else ", ".join(drawn[:-1]) + " and " + drawn[-1]
    return f"Estimates by group, with their intervals and the {listed} estimate{'s' * (len(drawn) > 1)}"


def draws_caption(estimate) -> str:
    """The draws figure's caption, naming the group it draws (the largest by population)."""
    label = plots.group_labels(estimate)[plots.largest_group(estimate)]
    if not estimate.by:
        return "The draws of the overall estimate"
    return f"The draws of the estimate for {label}, the largest group by population"


def wrap_summary(text: str, width: int = WIDTH) -> str:
    """A model summary with its long prose lines (warnings) wrapped at ``width`` characters; table rows,
    whose columns line up with runs of spaces, are left as they are."""
    lines = []
    for line in text.splitlines():
        if len(line) <= width or "  " in line.strip():
            lines.append(line)
        else:
            lines += textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(lines)


def html_report(estimate, fit=None, survey=None, frame=None, *, title: str = "misterp report",
                inputs: dict | None = None, notes: list[str] | None = None, figures: list | None = None,
                wave: str | None = None) -> str:
    """The report as one HTML page (a string).

    ``figures`` as :func:`report_figures` gives them (by default, made here, and the notes on any
    it leaves out are added to ``notes``); ``frame`` is a Frame or its FrameMargins (see
    :func:`report_figures`). An optional section that fails (the model summary) is left out with
    a note; the page is still written.
    """
    notes = list(notes or [])
    figures = report_figures(estimate, fit, survey, frame, notes, wave) if figures is None else figures
    summary = extra("the model summary", notes, fit.summary) if fit is not None else None
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if inputs:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in inputs.items())
        parts.append(f"<h2>Inputs</h2><table>{rows}</table>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(
            f'<li class="{"problem" if n.startswith("warning") else ""}">{html.escape(n)}</li>' for n in notes) + "</ul>")
    if summary is not None:
        parts.append(f"<h2>Model</h2><pre>{html.escape(wrap_summary(summary))}</pre>")
    parts.append("<h2>Estimates</h2>" + _table(estimate.table))
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(f"<figure>{figure_tag(f.png, f.caption)}<figcaption>"
                                                  f"{html.escape(f.caption)}</figcaption></figure>"
                                                  for f in figures))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts) + f"<script>{SORTING}</script></body></html>\n")


def _table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f'<td data-sort="{html.escape(_sort_key(v))}">{html.escape(_cell(v))}</td>'
                                    for v in row) + "</tr>" for row in table.itertuples(index=False))
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _sort_key(value) -> str:
    """The raw value the table sorts by (numbers unformatted; empty for a missing one)."""
    if isinstance(value, float) and pd.isna(value):
        return ""
    return repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return str(value)
