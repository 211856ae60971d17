"""One self-contained HTML report: inputs and coverage, the model and its problems, the sortable
estimates table, and every plot that applies, as base64 PNG images. Nothing links to another
host, so the file works offline.

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

import pandas as pd

from ..engines.bayes import BayesFit
from ..engines.bootstrap import BootstrapFit
from ..engines.laplace import MixedFit
from ..results.compare import margin_columns
from . import plots

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


def figure_tag(fig, alt: str) -> str:
    """An <img> holding the figure as a base64 PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def report_figures(estimate, fit=None, survey=None, frame=None) -> list[tuple[str, str, object]]:
    """(name, caption, Figure) of every plot that applies to these results."""
    figures = []
    if estimate.by:
        figures.append(("estimates", "Estimates by group, with the raw, weighted and raked estimates",
                        plots.estimates_plot(estimate)))
    if estimate.by == ["state"] and estimate.table["state"].astype(str).isin(plots.US_TILES).mean() > 0.5:
        figures.append(("map", "The estimates on a US tile map", plots.state_map(estimate)))
    if estimate.draws is not None:
        figures.append(("draws", "The draws of the first group's estimate", plots.draws_plot(estimate)))
    if survey is not None and frame is not None and fit is not None:
        columns = [c for c in margin_columns(fit.design, frame) if c in survey.data]
        if columns:
            figures.append(("balance", "The sample against the population", plots.balance_plot(survey, frame, columns)))
    if fit is not None and estimate.by and all(c in fit.cells.table for c in estimate.by) and \
            len(estimate.table) <= plots.MAX_ROWS:
        from ..results.model_checks import predictive_check

        figures.append(("check", "Model check: observed survey means against replicated data",
                        plots.check_plot(predictive_check(fit, by=estimate.by, n_rep=200, seed=1))))
    mixed = fit.original if isinstance(fit, BootstrapFit) else fit
    if isinstance(mixed, MixedFit) and mixed.design.group_terms and mixed.design.group_terms[0].intercept:
        figures.append(("pooling", "Complete, no and partial pooling", plots.pooling_plot(mixed)))
    if isinstance(fit, BayesFit):
        figures.append(("sampler", "Sampler diagnostics per parameter", plots.sampler_plot(fit)))
        figures.append(("ranks", "Rank plots per chain", plots.rank_plot(fit)))
    return figures


def html_report(estimate, fit=None, survey=None, frame=None, *, title: str = "misterp report",
                inputs: dict | None = None, notes: list[str] | None = None, figures: list | None = None) -> str:
    """The report as one HTML page (a string); ``figures`` as :func:`report_figures` gives them (by
    default, made here)."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if inputs:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in inputs.items())
        parts.append(f"<h2>Inputs</h2><table>{rows}</table>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(
            f'<li class="{"problem" if n.startswith("warning") else ""}">{html.escape(n)}</li>' for n in notes) + "</ul>")
    if fit is not None:
        parts.append(f"<h2>Model</h2><pre>{html.escape(fit.summary())}</pre>")
    parts.append("<h2>Estimates</h2>" + _table(estimate.table))
    figures = report_figures(estimate, fit, survey, frame) if figures is None else figures
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(f"<figure>{figure_tag(fig, caption)}<figcaption>"
                                                  f"{html.escape(caption)}</figcaption></figure>"
                                                  for _, caption, fig in figures))
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
