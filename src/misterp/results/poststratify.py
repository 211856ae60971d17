"""Cell predictions (point and draws) x population counts -> Estimate.

Every engine's fit gives the same :class:`CellDraws` (through
:func:`misterp.cell_draws`); this is the only place where predictions are
weighted by counts, and it never asks which engine made them. Subgroups are
aggregated by :class:`GroupSums`, running per-group weighted sums over chunks
of frame rows (the whole frame is one chunk here; :mod:`misterp.results.stream`
feeds it a census-sized frame chunk by chunk), and draws are made and reduced
in chunks, so draws x cells never has to sit in memory at once.

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


class GroupSums:
    """Running per-group sums for one grouping, over chunks of frame rows.

    Per group g it keeps the population sum N, the weight W_g = sum w, and
    the weighted sums sum w p of the point predictions, of every draw
    (n_draws, n_groups), of the delta method's Jacobian (n_groups, k) or of
    the cell bounds, as the interval needs; groups are numbered as they are
    first seen and sorted at the end. Nothing it holds grows with the frame's
    rows: only with groups (and draws).
    """

    def __init__(self, by=None, interval: str = "auto", chunk_size: int = 256,
                 weight: "str | CellDraws | None" = None):
        self.by = [by] if isinstance(by, str) else list(by or [])
        self.interval, self.chunk_size, self.weight = interval, chunk_size, weight
        self.method = "none"
        self.ids: dict = {}           # group key tuple -> running number
        self.key_frames: list = []    # the keys, as the frame's columns, in running order
        self.sums: dict = {}          # name -> array whose last axis is the groups
        self.unseen: dict = {}
        self.categories = None        # the outcome's categories, when the means are their shares
        self.scores = None            # and their numeric values, for the mean score

    @property
    def n_groups(self) -> int:
        return len(self.ids)

    def add(self, data: pd.DataFrame, counts: np.ndarray, cells: CellDraws, unit: np.ndarray | None = None) -> None:
        """Add a chunk: ``data`` and ``counts`` (n_rows,) are its frame rows; ``cells`` predicts its distinct
        model cells (n_units), ``unit`` (n_rows,) being each row's (by default, one unit per row)."""
        turnout = self.weight if isinstance(self.weight, CellDraws) else None
        if not self.sums:
            self._start(cells, turnout)
        if turnout is not None:
            w = counts  # each cell's voters, N_c t_c, are counted draw by draw below
        elif self.weight is not None:
            require_columns(data, [self.weight], "frame", "Name the frame's column of cell weights (exposures).")
            w = pd.to_numeric(data[self.weight], errors="coerce").to_numpy(float)
            if not np.all(np.isfinite(w) & (w >= 0)):
                raise MisterpInputError(f"The frame's weight column {self.weight!r} must hold finite numbers >= 0; "
                                        "fix it.")
        else:
            w = counts
        codes = self._codes(data)
        self._grow()
        G, n_units = self.n_groups, len(cells.point)
        unit = np.arange(len(data)) if unit is None else unit
        # weights of each (group, unit) pair: duplicates are summed
        weights = sp.csr_matrix((w, (codes, unit)), shape=(G, n_units))
        sums = self.sums
        sums["population"] += np.bincount(codes, weights=counts, minlength=G)
        if turnout is not None:
            self._add_turnout(weights, cells, turnout)
        else:
            sums["total"] += np.bincount(codes, weights=w, minlength=G)
            sums["point"] += by_group(weights, cells.point)
        if self.interval in ("draws", "quantile") and turnout is None:
            if cells.draws is None:
                raise ValueError("these predictions carry no draws")
            for start, chunk in zip(range(0, cells.draws.n_draws, self.chunk_size), cells.draws.chunks(self.chunk_size)):
                sums["draws"][start:start + len(chunk)] += by_group(weights, np.moveaxis(chunk, 1, 0))
        elif self.interval == "delta":
            sums["jacobian"] += by_group(weights, cells.delta[0])  # ([K,] k, n_groups): d sum / d params
            self.cov = cells.delta[1]
        elif self.interval == "cell-bounds":
            sums["lower"] += by_group(weights, cells.point - 2 * cells.se)
            sums["upper"] += by_group(weights, cells.point + 2 * cells.se)
        for term, labels in cells.unseen.items():
            self.unseen[term] = list(dict.fromkeys(self.unseen.get(term, []) + list(labels)))

    def _add_turnout(self, weights, cells: CellDraws, turnout: CellDraws) -> None:
        """Shares weighted by each cell's turnout t_c, draw by draw with the turnout model's draws:
        sum_c N_c t_c p_c over groups, and the voters sum_c N_c t_c beside them."""
        if len(turnout.point) != len(cells.point):
            raise MisterpInputError(f"The turnout predictions cover {len(turnout.point)} frame cells and the choice "
                                    f"predictions {len(cells.point)}; predict both for the same frame.")
        sums, t = self.sums, turnout.point
        sums["total"] += weights @ t
        sums["point"] += by_group(weights, cells.point * (t[:, None] if cells.point.ndim == 2 else t))
        for start, chunk, voting in zip(range(0, cells.draws.n_draws, self.chunk_size),
                                        cells.draws.chunks(self.chunk_size), turnout.draws.chunks(self.chunk_size)):
            weighted = chunk * (voting[..., None] if chunk.ndim == 3 else voting)
            sums["draws"][start:start + len(chunk)] += by_group(weights, np.moveaxis(weighted, 1, 0))
            sums["voters"][start:start + len(chunk)] += by_group(weights, voting.T)

    def _start(self, cells: CellDraws, turnout: CellDraws | None = None) -> None:
        """Fix the interval and the sums it needs, from the first chunk's predictions."""
        if turnout is not None:
            if cells.draws is None or turnout.draws is None or cells.draws.n_draws != turnout.draws.n_draws:
                raise MisterpInputError(
                    "Weighting by turnout pairs the choice model's draws with the turnout model's, draw by draw: "
                    "predict both with draws, as many of each (cell_draws(fit, frame, n_draws=1000)).")
            self.interval = "quantile" if cells.default_interval == "quantile" else "draws"
        if self.interval == "auto":
            self.interval = cells.default_interval
        if self.interval not in ("draws", "quantile", "delta", "cell-bounds", "none"):
            raise ValueError(f"unknown interval {self.interval!r}")
        self.method = cells.method
        self.categories, self.scores = cells.categories, cells.scores
        per_cell = () if cells.categories is None else (len(cells.categories),)  # a category axis before groups
        self.sums = {name: np.zeros(0) for name in ("population", "total")}
        names = ["point"] + {"delta": [], "cell-bounds": ["lower", "upper"]}.get(self.interval, [])
        self.sums.update({name: np.zeros(per_cell + (0,)) for name in names})
        if self.interval in ("draws", "quantile") and cells.draws is not None:
            self.sums["draws"] = np.zeros((cells.draws.n_draws,) + per_cell + (0,))
        if turnout is not None:
            self.sums["voters"] = np.zeros((cells.draws.n_draws, 0))
        if self.interval == "delta":
            self.sums["jacobian"] = np.zeros(per_cell + (cells.delta[0].shape[-1], 0))

    def _codes(self, data: pd.DataFrame) -> np.ndarray:
        """Running group number of each row of ``data``, numbering new groups."""
        if not self.by:
            if not self.ids:
                self.ids[()] = 0
                self.key_frames.append(pd.DataFrame(index=[0]))
            return np.zeros(len(data), dtype=np.int64)
        require_columns(data, self.by, "frame", "Choose --by columns that the frame has.")
        local, first = row_codes(data, self.by)
        uniques = data[self.by].iloc[first].reset_index(drop=True)
        keys = list(uniques.itertuples(index=False, name=None))
        new = [i for i, key in enumerate(keys) if key not in self.ids]
        for i in new:
            self.ids[keys[i]] = len(self.ids)
        if new:
            self.key_frames.append(uniques.iloc[new])
        return np.array([self.ids[key] for key in keys], dtype=np.int64)[local]

    def _grow(self) -> None:
        G = self.n_groups
        for name, a in self.sums.items():
            if a.shape[-1] < G:
                pad = [(0, 0)] * (a.ndim - 1) + [(0, G - a.shape[-1])]
                self.sums[name] = np.pad(a, pad)

    def estimate(self) -> Estimate:
        """The groups' :class:`Estimate`, sorted by the ``by`` columns as ``poststratify`` gives them."""
        keys = pd.concat(self.key_frames, ignore_index=True)
        if self.by:
            rank, _ = pd.MultiIndex.from_frame(keys[self.by]).factorize(sort=True)
            order = np.argsort(rank)
        else:
            order = np.zeros(1, dtype=np.int64)
        keys = keys.iloc[order].reset_index(drop=True)
        sums = {name: a[..., order] for name, a in self.sums.items()}
        total = sums["total"]
        safe = np.where(total > 0, total, 1.0)
        population = np.where(total > 0, sums["population"], 0.0)
        estimate = sums["point"] / safe
        sd = np.full(len(keys), np.nan)
        lower = upper = sd
        group_draws = None
        interval, method = self.interval, self.method
        if interval in ("draws", "quantile"):
            if "voters" in sums:  # each draw's shares among its own voters
                voters = sums["voters"]
                voters = np.where(voters > 0, voters, 1.0)
                group_draws = sums["draws"] / (voters[:, None, :] if sums["draws"].ndim == 3 else voters)
            else:
                group_draws = sums["draws"] / safe
            sd = group_draws.std(axis=0, ddof=1)
            if interval == "draws":
                lower, upper = estimate - 2 * sd, estimate + 2 * sd
                label = f"{method} ±2sd"
            else:
                lower, upper = np.quantile(group_draws, [0.025, 0.975], axis=0)
                label = f"{method} central 95%"
        elif interval == "delta":
            grad = sums["jacobian"] / safe  # ([K,] k, n_groups): d estimate / d params
            sd = np.sqrt(np.einsum("...ig,ij,...jg->...g", grad, self.cov, grad))
            lower, upper = estimate - 2 * sd, estimate + 2 * sd
            label = "delta-method ±2sd"
        elif interval == "cell-bounds":
            lower, upper = sums["lower"] / safe, sums["upper"] / safe
            label = "poststratified cell ±2se"
        else:
            label = "none"
        empty = population <= 0
        sd = np.broadcast_to(sd, np.shape(estimate))
        lower, upper = np.broadcast_to(lower, np.shape(estimate)), np.broadcast_to(upper, np.shape(estimate))
        if group_draws is not None:
            group_draws[..., empty] = np.nan
        scores = {}
        if self.scores is not None:  # numeric levels: each group's mean score, and its draws' sd
            scores["mean_score"] = self.scores @ np.asarray(estimate)
            if group_draws is not None:
                scores["mean_score_sd"] = np.einsum("k,dkg->dg", self.scores, group_draws).std(axis=0, ddof=1)
        if self.categories is not None:  # a row per group and category, groups first
            K = len(self.categories)
            scores = {name: np.repeat(values, K) for name, values in scores.items()}
            keys = keys.loc[np.repeat(keys.index, K)].reset_index(drop=True).assign(
                category=np.tile(self.categories, len(population)))
            estimate, sd, lower, upper = (np.asarray(a).T.ravel() for a in (estimate, sd, lower, upper))
            population, empty = np.repeat(population, K), np.repeat(empty, K)
            if group_draws is not None:
                group_draws = np.swapaxes(group_draws, 1, 2).reshape(len(group_draws), -1)
        table = keys.assign(estimate=estimate, sd=sd, lower=lower, upper=upper, population=population,
                            interval=label, **scores)
        if "voters" in sums:  # the turnout beside the shares: voters over the population, and its draws' sd
            K = 1 if self.categories is None else len(self.categories)
            people = np.where(sums["population"] > 0, sums["population"], 1.0)
            table["turnout"] = np.repeat(sums["total"] / people, K)
            table["turnout_sd"] = np.repeat((sums["voters"] / people).std(axis=0, ddof=1), K)
        table.loc[empty, ["estimate", "sd", "lower", "upper"]] = np.nan
        return Estimate(table.reset_index(drop=True), self.by, group_draws, self.unseen)


def by_group(weights, values: np.ndarray) -> np.ndarray:
    """Weighted sums of ``values`` (n_units, ...) into the groups of ``weights`` (n_groups, n_units),
    with the groups on the last axis: (..., n_groups)."""
    values = np.asarray(values)
    flat = np.asarray(weights @ values.reshape(len(values), -1))  # (n_groups, prod of the other axes)
    return np.moveaxis(flat, 0, -1).reshape(values.shape[1:] + (weights.shape[0],))


def row_codes(data: pd.DataFrame, columns: list) -> tuple[np.ndarray, np.ndarray]:
    """Each row's combination of ``columns``, numbered in order of first appearance, (n_rows,), and each
    combination's first row, (n_combinations,). Column by column (no tuples): fast on millions of rows."""
    codes = np.zeros(len(data), dtype=np.int64)
    for col in columns:
        code, uniques = pd.factorize(data[col], use_na_sentinel=False)
        codes = pd.factorize(codes * len(uniques) + code)[0]  # renumbered, so it stays below n_rows
    _, first = np.unique(codes, return_index=True)
    return codes, first


def poststratify(cells: CellDraws, frame: Frame, by=None, interval: str = "auto",
                 chunk_size: int = 256, weight: "str | CellDraws | None" = None) -> Estimate:
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
    weight : str or CellDraws, optional
        A frame column to weight cells by instead of their counts: each
        cell's total exposure E_c turns a count model's estimate into the
        rate sum(E mu) / sum(E). ``population`` still sums the counts.
        Or a turnout model's predictions for the same frame rows: each
        share becomes sum_c N_c t_c p_c / sum_c N_c t_c, draw by draw (the
        two models' draws paired in order), with the groups' ``turnout``
        and ``turnout_sd`` beside it.

    Returns
    -------
    Estimate
        ``estimate`` is the plug-in poststratified value (sum N p / sum N);
        ``sd`` and ``lower``/``upper`` follow ``interval``; empty groups have
        population 0 and a missing estimate.
    """
    sums = GroupSums(by, interval, chunk_size, weight)  # the whole frame as one chunk
    sums.add(frame.data, frame.counts, cells)
    return sums.estimate()
