"""Cell predictions (point and draws) x population counts -> Estimate.

Every engine's fit gives the same :class:`CellDraws` (through
:func:`misterp.cell_draws`); this is the only place where predictions are
weighted by counts, and it never asks which engine made them. Subgroups are
aggregated with a sparse indicator matrix, and draws are made and reduced in
chunks, so draws x cells never has to sit in memory at once.

Example
-------
>>> import numpy as np, pandas as pd
>>> from misterp import Frame
>>> frame = Frame(pd.DataFrame({"g": ["a", "b"], "N": [1, 3]}), "N")
>>> poststratify(CellDraws(point=np.array([0.2, 0.6])), frame).table["estimate"].round(3).tolist()
[0.5]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.frame import Frame
from ..data.tables import require_columns
from ..errors import MisterpInputError
from .draws import CellDraws
from .estimate import Estimate


def group_matrix(frame: Frame, by, weight: str | None = None) -> tuple[pd.DataFrame, sp.csr_matrix, np.ndarray]:
    """Population-weighted aggregation over ``by``.

    Returns the group key table (n_groups rows), a sparse (n_groups, n_cells)
    matrix of weights w_c / w_g (rows of empty groups are zero), and the
    group populations (n_groups,). The weights w are the counts N, or the
    frame's ``weight`` column (a cell's total exposure, for a rate).
    """
    counts = frame.counts
    if weight is not None:
        require_columns(frame.data, [weight], "frame", "Name the frame's column of cell weights (exposures).")
        w = pd.to_numeric(frame.data[weight], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(w) & (w >= 0)):
            raise MisterpInputError(f"The frame's weight column {weight!r} must hold finite numbers >= 0; fix it.")
    if not by:
        codes = np.zeros(len(counts), dtype=np.int64)
        keys = pd.DataFrame(index=[0])
    else:
        require_columns(frame.data, by, "frame", "Choose --by columns that the frame has.")
        codes, uniques = pd.MultiIndex.from_frame(frame.data[list(by)]).factorize(sort=True)
        keys = uniques.to_frame(index=False)
        keys.columns = list(by)
    n_groups = len(keys)
    population = np.bincount(codes, weights=counts, minlength=n_groups)
    w = counts if weight is None else w
    total = np.bincount(codes, weights=w, minlength=n_groups)
    safe = np.where(total > 0, total, 1.0)
    weights = sp.csr_matrix((w / safe[codes], (codes, np.arange(len(counts)))),
                            shape=(n_groups, len(counts)))
    return keys.reset_index(drop=True), weights, np.where(total > 0, population, 0.0)


def poststratify(cells: CellDraws, frame: Frame, by=None, interval: str = "auto",
                 chunk_size: int = 256, weight: str | None = None) -> Estimate:
    """Weight cell predictions by frame counts, overall or ``by`` frame columns.

    Parameters
    ----------
    cells : CellDraws
        Predictions for every row of ``frame``, in frame order.
    frame : Frame
    by : str or list of str, optional
        Frame columns to estimate within.
    interval : {"auto", "draws", "quantile", "delta", "cell-bounds"}
        "auto" is the interval the predictions carry (a posterior's central
        95%, other draws' -/+ 2 sd, a GLM's delta method).
        "draws" is estimate -/+ 2 sd of the draws (the article's); "quantile"
        the central 95% interval of the draws (for posteriors).
        "cell-bounds" is the article's GLM interval: poststratify point -/+ 2 se.
    chunk_size : int
        Draws reduced at a time.
    weight : str, optional
        A frame column to weight cells by instead of their counts: each
        cell's total exposure E_c turns a count model's estimate into the
        rate sum(E mu) / sum(E). ``population`` still sums the counts.

    Returns
    -------
    Estimate
        ``estimate`` is the plug-in poststratified value (sum N p / sum N);
        ``sd`` and ``lower``/``upper`` follow ``interval``; empty groups have
        population 0 and a missing estimate.
    """
    by = [by] if isinstance(by, str) else list(by or [])
    keys, weights, population = group_matrix(frame, by, weight)
    estimate = weights @ cells.point
    sd = np.full(len(keys), np.nan)
    lower = upper = sd
    group_draws = None
    if interval == "auto":
        interval = cells.default_interval
    if interval in ("draws", "quantile"):
        if cells.draws is None:
            raise ValueError("these predictions carry no draws")
        group_draws = np.vstack([(weights @ chunk.T).T for chunk in cells.draws.chunks(chunk_size)])
        sd = group_draws.std(axis=0, ddof=1)
        if interval == "draws":
            lower, upper = estimate - 2 * sd, estimate + 2 * sd
            label = f"{cells.method} ±2sd"
        else:
            lower, upper = np.quantile(group_draws, [0.025, 0.975], axis=0)
            label = f"{cells.method} central 95%"
    elif interval == "delta":
        jac, cov = cells.delta
        grad = weights @ jac  # (n_groups, k): d estimate / d params
        sd = np.sqrt(np.einsum("gi,ij,gj->g", grad, cov, grad))
        lower, upper = estimate - 2 * sd, estimate + 2 * sd
        label = "delta-method ±2sd"
    elif interval == "cell-bounds":
        lower = weights @ (cells.point - 2 * cells.se)
        upper = weights @ (cells.point + 2 * cells.se)
        label = "poststratified cell ±2se"
    elif interval == "none":
        label = "none"
    else:
        raise ValueError(f"unknown interval {interval!r}")
    empty = population <= 0
    table = keys.assign(estimate=estimate, sd=sd, lower=lower, upper=upper, population=population,
                        interval=label)
    table.loc[empty, ["estimate", "sd", "lower", "upper"]] = np.nan
    if group_draws is not None:
        group_draws[:, empty] = np.nan
    return Estimate(table.reset_index(drop=True), by, group_draws, cells.unseen)

