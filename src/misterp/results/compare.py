"""What MRP is compared with, per group: the raw survey mean, the design-weighted
mean, and the raking estimate (survey weights raked to the frame's margins).

Example
-------
>>> import numpy as np, pandas as pd
>>> from misterp import CellDraws, Frame, Survey, poststratify, prepare
>>> survey = Survey(pd.DataFrame({"y": [1, 0, 1, 1], "g": ["a", "a", "b", "b"]}), "y")
>>> frame = Frame(pd.DataFrame({"g": ["a", "b"], "N": [1, 3]}), "N")
>>> cells, _ = prepare(survey, frame, "y ~ (1|g)")
>>> estimate = poststratify(CellDraws(point=np.array([0.55, 0.9])), frame, by="g")
>>> est, notes = add_comparisons(estimate, survey, frame, cells.design, family=cells.family)
>>> est.table[["raw_mean", "raw_n", "raked_mean"]].values.tolist()
[[0.5, 2.0, 0.5], [1.0, 2.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..data.frame import Frame
from ..data.raking import rake
from ..data.survey import Survey
from ..errors import MisterpInputError
from ..model.design import Design
from ..model.family import DEFAULT_FAMILY, Family, as_family
from .estimate import Estimate
from .extras import extra


class FrameMargins:
    """The frame's population per value of some columns, summed over chunks of frame rows.

    Raking needs only these margins, so a census-sized frame read in chunks
    never has to be in memory at once. A column of ``capped`` with more than
    ``cap`` values stops being counted (a continuous covariate is no raking
    margin); ``n_values`` then says only that it has more.
    """

    def __init__(self, columns, cap: int = 0, capped=()):
        self.totals = {col: pd.Series(dtype=float) for col in dict.fromkeys(columns)}
        self.cap, self.capped = cap, set(capped)
        self.many: set = set()

    @classmethod
    def of(cls, frame: Frame, columns) -> "FrameMargins":
        margins = cls(columns)
        margins.add(frame)
        return margins

    def add(self, frame: Frame) -> None:
        """Add a chunk of frame rows."""
        for col, total in self.totals.items():
            if col in self.many:
                continue
            total = total.add(frame.data.groupby(col, sort=True)[frame.count].sum().astype(float), fill_value=0)
            if col in self.capped and len(total) > self.cap:
                self.many.add(col)
                total = pd.Series(dtype=float)
            self.totals[col] = total.sort_index()

    def n_values(self, col: str) -> int:
        """Distinct values of ``col`` (more than ``cap`` when it stopped counting)."""
        return self.cap + 1 if col in self.many else len(self.totals[col])


def margin_candidates(design: Design) -> list[str]:
    """Columns that may be raking margins: single-column grouping and fixed terms."""
    cols = [g.columns[0] for g in design.group_terms if len(g.columns) == 1]
    cols += [term.columns[0] for term in design.formula.fixed if len(term.columns) == 1]
    return list(dict.fromkeys(cols))


def frame_margins(design: Design, frame: Frame | None = None, max_levels: int = 20) -> FrameMargins:
    """Empty margins of the model's candidate columns (add chunks to them), or a whole frame's."""
    grouping = {c for g in design.group_terms for c in g.columns}
    numeric = [term.columns[0] for term in design.formula.fixed
               if len(term.columns) == 1 and term.columns[0] not in set(design.categorical) | grouping]
    margins = FrameMargins(margin_candidates(design), cap=max_levels, capped=numeric)
    if frame is not None:
        margins.add(frame)
    return margins


def margin_columns(design: Design, frame, max_levels: int = 20) -> list[str]:
    """The model's main-effect variables: raking margins.

    Columns of single-column grouping terms, and of single-column fixed terms
    that are categorical or take at most ``max_levels`` values in the frame
    (a -0.5/0.5 ``male``, not a continuous ``repvote``). ``frame`` is a
    Frame or its :func:`frame_margins`.
    """
    margins = frame if isinstance(frame, FrameMargins) else frame_margins(design, frame, max_levels)
    cols = [g.columns[0] for g in design.group_terms if len(g.columns) == 1]
    for term in design.formula.fixed:
        if len(term.columns) == 1:
            col = term.columns[0]
            if col in design.categorical or margins.n_values(col) <= max_levels:
                cols.append(col)
    return list(dict.fromkeys(cols))


def raking_weights(survey: Survey, frame, margins: list[str], tol: float = 1e-10,
                   respondents: np.ndarray | None = None, skip_empty: bool = False) -> tuple[np.ndarray, list]:
    """Survey weights (design weights, or 1) raked to the frame's population margins (``frame`` is a
    Frame or a :class:`FrameMargins` holding those columns).

    A row of a survey given as cells stands for its ``respondents`` (n_rows,),
    and its weight is their total. A
    category with population but no respondents cannot be reached by any
    weighting; it is left out of its margin, whose other targets are scaled
    up to the full population so that every margin keeps the same total (the
    usual collapsing), and a note says so. With ``skip_empty`` such a margin is
    left out instead (scaled nested margins, say counties within states, can
    contradict each other).

    Returns the raked weights (n_rows,) and the notes.
    """
    data = survey.data
    base = data[survey.weights].to_numpy(float) if survey.weights else np.ones(len(data))
    if respondents is not None:
        base = base * respondents
    population = frame if isinstance(frame, FrameMargins) else FrameMargins.of(frame, margins)
    codes, targets, notes, used = [], [], [], []
    for col in margins:
        totals = population.totals[col]
        code = totals.index.get_indexer(data[col])
        if (code < 0).any():  # a covariate on a coarser grid in the frame: no margin to rake to
            values = pd.unique(data[col][code < 0])
            notes.append(f"raking: left out the {col} margin: {len(values)} survey value(s) of {col} are not among "
                         f"the frame's {len(totals)} ({', '.join(map(str, values[:3]))}"
                         f"{' ...' if len(values) > 3 else ''})")
            continue
        present = np.bincount(code[code >= 0], minlength=len(totals)) > 0
        empty = ~present & (totals.to_numpy() > 0)
        if empty.any() and skip_empty:
            notes.append(f"raking: left out the {col} margin, {int(empty.sum())} of whose categories have no "
                         "respondents")
            continue
        if empty.any():
            share = totals[empty].sum() / totals.sum()
            notes.append(f"raking: {int(empty.sum())} {col} categories have no respondents "
                         f"({share:.1%} of the population); their margin was scaled over the others")
            kept = totals[present] * (totals.sum() / totals[present].sum())
            code, totals = kept.index.get_indexer(data[col]), kept
        codes.append(code)
        targets.append(totals.to_numpy(float))
        used.append(col)
    return rake(base, codes, targets, tol=tol, names=used), notes


def add_comparisons(estimate: Estimate, survey: Survey, frame, design: Design, drop_missing: bool = False,
                    *, family: Family | str = DEFAULT_FAMILY) -> tuple[Estimate, list[str]]:
    """``estimate`` with, per group, ``raw_mean``, ``raw_n``, ``weighted_mean`` (with design
    weights) and ``raked_mean``; and notes on what could not be computed.

    Means are the outcome's totals over its respondents (or their exposure,
    for a count family), as the ``family`` reads the survey's rows (a row
    given as cells stands for its respondents). ``frame`` is a Frame or its
    :func:`frame_margins` (all that raking reads of it).
    """
    family = as_family(family)
    if not isinstance(frame, FrameMargins):
        frame = frame_margins(design, frame)
    survey, _ = survey.complete(design.formula.columns, drop_missing)
    data = survey.data
    rows = family.rows(data, design.formula, trials=survey.trials, exposure=survey.exposure)
    totals, counts, denominators = rows.total, rows.count, rows.denominator
    by, table, notes = estimate.by, estimate.table.copy(), []
    # a family with categories has K rows per group: a row's share is its category's respondents over the group's
    K = 1 if family.categories is None else len(family.categories)
    if all(c in data.columns for c in by):
        if K == 1:
            position = _group_of(data, table, by)
        else:
            answered = data.assign(category=np.asarray(family.categories)[totals.astype(int)])
            position = _group_of(answered, table, by + ["category"])
            totals = np.ones(len(data))
    else:
        position = None
        notes.append(f"the survey has no column(s) {[c for c in by if c not in data.columns]}: "
                     "no raw or raked comparisons by group")

    def by_group(weights, values=totals, ratio=True):
        """Weighted outcome totals / weighted denominators per group (the totals alone without ``ratio``); the
        group's denominators (and, without ``ratio``, the values) summed over its K category rows."""
        if position is None:
            return np.full(len(table), np.nan if ratio else 0.0)
        ok = position >= 0
        group = position[ok] // K  # the table's rows run K per group
        if not ratio:
            return np.repeat(np.bincount(group, weights=(weights * values)[ok], minlength=len(table) // K), K)
        num = np.bincount(position[ok], weights=(weights * values)[ok], minlength=len(table))
        den = np.repeat(np.bincount(group, weights=(weights * denominators)[ok], minlength=len(table) // K), K)
        return np.divide(num, den, out=np.full(len(table), np.nan), where=den > 0)

    table["raw_mean"] = extra("the raw survey mean", notes, by_group, np.ones(len(data)), default=np.nan)
    table["raw_n"] = extra("the raw survey n", notes, lambda: by_group(counts, np.ones(len(data)), ratio=False)
                           .astype(int), default=0)
    if survey.weights:
        table["weighted_mean"] = extra("the design-weighted mean", notes, by_group,
                                       data[survey.weights].to_numpy(float), default=np.nan)
    raked = extra("the raking estimate", notes, _raked_weights, survey, frame, design, counts, notes)
    table["raked_mean"] = np.nan if raked is None else by_group(raked / counts)  # per respondent of each row
    return replace(estimate, table=table), notes


def _raked_weights(survey: Survey, frame: FrameMargins, design: Design, counts: np.ndarray, notes: list[str]):
    """Survey weights raked to the model's margins (see :func:`raking_weights`), notes added to ``notes``."""
    margins = margin_columns(design, frame)
    try:
        raked, rake_notes = raking_weights(survey, frame, margins, respondents=counts)
    except MisterpInputError as e:
        # margins scaled over their empty categories can contradict each other: drop those margins
        raked, rake_notes = raking_weights(survey, frame, margins, respondents=counts, skip_empty=True)
        rake_notes = [f"raking to every margin failed ({e}); raked without the margins that have categories "
                      "without respondents"] + rake_notes
    notes += rake_notes
    return raked


def _group_of(data: pd.DataFrame, groups: pd.DataFrame, by: list[str]) -> np.ndarray:
    """Row of ``groups`` each survey row belongs to; -1 for none. For no ``by``, all 0."""
    if not by:
        return np.zeros(len(data), dtype=np.int64)
    index = pd.MultiIndex.from_frame(groups[by])
    return index.get_indexer(pd.MultiIndex.from_frame(data[by]))
