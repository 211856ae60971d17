"""Design: the encoding learned on the survey, re-applied to any table.

A :class:`Design` knows, for a formula, the levels of every categorical
column and every grouping term as they appear in the survey. Applied to a
table (survey cells or frame cells) it gives the fixed-effects matrix X, the
level index of each cell in each grouping term, and the offset, so that the
same level always gets the same column.

Level policy (lme4's): a grouping level the survey never saw gets index -1
(a population-level prediction, ``allow.new.levels = TRUE``); a fixed-effect
level the survey never saw is an error.

Example
-------
>>> import pandas as pd
>>> from misterp.model.formula import parse_formula
>>> d = Design.learn(parse_formula("y ~ x + (1|g)"), pd.DataFrame({"y": [0, 1], "x": [1., 2.], "g": ["a", "b"]}))
>>> d.fixed_names, d.group_names
(['(Intercept)', 'x'], ['g'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.checks import unseen_fixed_level
from ..data.tables import describe_rows
from ..errors import MisterpInputError
from .formula import Formula
from .terms import build_structures


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _sorted_values(series: pd.Series) -> pd.Index:
    return pd.Index(pd.unique(series)).sort_values()


@dataclass(frozen=True)
class Levels:
    """The distinct combinations of one or more columns, in sorted order.

    Each column's sorted distinct values give integer codes; a combination is
    the mixed-radix number of its codes, so sorting and looking up keys are
    integer operations (several times faster than pandas MultiIndex).

    Attributes
    ----------
    columns : tuple of str
    values : tuple of pd.Index
        Sorted distinct values of each column.
    keys : (n_levels,) int64 array
        Sorted combined codes of the combinations seen.
    """

    columns: tuple
    values: tuple
    keys: np.ndarray

    @classmethod
    def learn(cls, data: pd.DataFrame, columns, values: dict | None = None) -> tuple["Levels", np.ndarray]:
        """Levels of ``columns`` in ``data``, and each row's position among them (n_rows,).

        ``values`` may give each column's sorted distinct values, shared
        between terms so that :meth:`lookup` can reuse a column's codes.
        """
        values = values or {}
        per_column = tuple(values[c] if c in values else _sorted_values(data[c]) for c in columns)
        if np.prod([float(len(v)) for v in per_column]) >= 2.0 ** 62:
            raise MisterpInputError(
                f"The columns {list(columns)} have too many distinct value combinations (over 2^62) "
                "to encode as cells. Round or bin the continuous columns among them.")
        levels = cls(tuple(columns), per_column, np.zeros(0, dtype=np.int64))
        keys, position = np.unique(levels._combined(data), return_inverse=True)
        return cls(tuple(columns), per_column, keys), position

    @classmethod
    def of(cls, column: str, values) -> "Levels":
        """Every one of ``values`` (in their order) as the levels of one column, seen or not."""
        return cls((column,), (pd.Index(list(values)),), np.arange(len(values), dtype=np.int64))

    def _combined(self, data: pd.DataFrame, cache: dict | None = None) -> np.ndarray:
        """Mixed-radix code of each row (-1 where a value is unseen); ``cache`` keeps column codes."""
        cache = {} if cache is None else cache
        code = np.zeros(len(data), dtype=np.int64)
        for col, values in zip(self.columns, self.values):
            key = (col, id(values))
            if key not in cache:
                cache[key] = values.get_indexer(data[col])
            idx = cache[key]
            code = np.where((idx < 0) | (code < 0), -1, code * len(values) + idx)
        return code

    def lookup(self, data: pd.DataFrame, cache: dict | None = None) -> np.ndarray:
        """Position of each row's combination among the levels; -1 where unseen."""
        code = self._combined(data, cache)
        pos = np.searchsorted(self.keys, code).clip(max=len(self.keys) - 1)
        return np.where((code >= 0) & (self.keys[pos] == code), pos, -1)

    def __len__(self) -> int:
        return len(self.keys)

    def table(self) -> pd.DataFrame:
        """The combinations as a table, one row per level, columns as learned."""
        out, rest = {}, self.keys
        for col, values in reversed(list(zip(self.columns, self.values))):
            out[col] = values[rest % len(values)]
            rest = rest // len(values)
        return pd.DataFrame({c: np.asarray(out[c]) for c in self.columns})

    def labels(self) -> list[str]:
        """Readable labels, such as "HS:30-39"."""
        table = self.table().astype(str)
        return table.iloc[:, 0].str.cat(table.iloc[:, 1:], sep=":").tolist() if len(self.columns) > 1 \
            else table.iloc[:, 0].tolist()


@dataclass(frozen=True)
class Design:
    """The survey-learned encoding of a formula.

    Attributes
    ----------
    formula : Formula
    categorical : dict[str, pd.Index]
        Levels of every column used categorically by a fixed term.
    group_levels : tuple[Levels, ...]
        Levels of each grouping term, in lme4's term order.
    group_terms : tuple
        The grouping terms, sorted as lme4 sorts them (most levels first).
    fixed_names : list[str]
        Column names of X, R style ("(Intercept)", "class2", "x").
    slope_levels : dict[str, pd.Index]
        Levels of every column used as a factor slope ``factor(z)`` in a
        grouping term.
    dropped : tuple[str, ...]
        Columns of the formula's X that the survey cannot estimate (a
        combination with no respondents, or one column a sum of others):
        left out of X, as lme4 drops them, so their coefficients are 0.
    structures : dict[str, Structure]
        Each structured term's (``rw1(age)``, ``bym2(state)``) levels and
        structure, by term name (:mod:`misterp.model.terms`): its levels are
        all of the structure's, with or without respondents.
    """

    formula: Formula
    categorical: dict
    group_terms: tuple
    group_levels: tuple
    fixed_names: list
    slope_levels: dict = field(default_factory=dict)
    dropped: tuple = ()
    structures: dict = field(default_factory=dict)

    @classmethod
    def learn(cls, formula: Formula, data: pd.DataFrame, structures: dict | None = None) -> "Design":
        """Learn levels from ``data`` (the survey, or its cells); a structured term's levels come from
        ``structures`` (by default :func:`misterp.model.terms.build_structures` on ``data`` alone)."""
        if structures is None:
            structures = build_structures(formula, data)[0] if any(g.structured for g in formula.groups) else {}
        categorical = {}
        for term in formula.fixed:
            for col, as_factor in zip(term.columns, term.as_factor):
                if as_factor or not _is_numeric(data[col]):
                    categorical[col] = _sorted_values(data[col])
        # one sorted value index per column, shared by every term that uses it
        shared = {c: _sorted_values(data[c]) for g in formula.groups for c in g.columns}
        levels = [Levels.learn(data, g.columns, shared)[0] if not g.structured else
                  Levels.of(g.columns[0], structures[g.name].levels) for g in formula.groups]
        # lme4 (mkReTrms) reorders only when some term has more levels than the one before it,
        # then by decreasing number of levels, ties in reverse formula order
        order = list(range(len(levels)))
        if any(len(levels[k + 1]) > len(levels[k]) for k in range(len(levels) - 1)):
            order = sorted(order, key=lambda k: (-len(levels[k]), -k))
        names = _fixed_names(formula, categorical)
        slope_levels = {c: _sorted_values(data[c]) for g in formula.groups for c, f in g.slopes
                        if f or not _is_numeric(data[c])}
        design = cls(formula, categorical, tuple(formula.groups[k] for k in order), tuple(levels[k] for k in order),
                     names, slope_levels, (), dict(structures))
        keep = _estimable(design.fixed_matrix(data))
        if keep.all():
            return design
        return cls(design.formula, categorical, design.group_terms, design.group_levels,
                   [n for n, k in zip(names, keep) if k], slope_levels, tuple(n for n, k in zip(names, keep) if not k),
                   dict(structures))

    def structure(self, term: int):
        """The :class:`misterp.model.terms.Structure` of grouping term ``term``, or None for an iid term."""
        return self.structures.get(self.group_terms[term].name) if self.group_terms[term].structured else None

    @property
    def level_columns(self) -> list[str]:
        """The predictors that take levels: factors, grouping columns and factor slopes, in the formula's
        order. A frame cell has respondents when one shares its values of these; a numeric covariate is
        left out (the model predicts any value of it, and a frame on a grid rarely repeats the survey's)."""
        leveled = set(self.categorical) | {c for g in self.group_terms for c in g.columns} | set(self.slope_levels)
        return [c for c in self.formula.predictors if c in leveled]

    @property
    def group_names(self) -> list[str]:
        """Term names, made unique as lme4 does ("state", "state.1" for ``(x || state)``)."""
        seen: dict = {}
        names = []
        for g in self.group_terms:
            count = seen.get(g.name, 0)
            names.append(g.name if count == 0 else f"{g.name}.{count}")
            seen[g.name] = count + 1
        return names

    def effect_names(self, term: int) -> list[str]:
        """Names of a grouping term's effects, lme4 style ("(Intercept)", "male", "factor(male)0.5")."""
        g = self.group_terms[term]
        names = ["(Intercept)"] if g.intercept else []
        for col, as_factor, full in self._slope_coding(g):
            if col in self.slope_levels:
                shown = f"factor({col})" if as_factor else col
                keep = list(self.slope_levels[col]) if full else list(self.slope_levels[col])[1:]
                names += [f"{shown}{v}" for v in keep]
            else:
                names.append(col)
        return names

    def _slope_coding(self, g) -> list[tuple[str, bool, bool]]:
        """(column, as_factor, full dummy coding) per slope: as R's model.matrix, only the first
        factor of a term without an intercept gets a column per level, the others contrasts."""
        out, full_left = [], not g.intercept
        for col, as_factor in g.slopes:
            factor = col in self.slope_levels
            out.append((col, as_factor, factor and full_left))
            full_left = full_left and not factor
        return out

    @property
    def n_effects(self) -> np.ndarray:
        """Effects per grouping term (1 for a random intercept), shape (n_terms,)."""
        return np.array([len(self.effect_names(k)) for k in range(len(self.group_terms))], dtype=int)

    @property
    def n_random(self) -> int:
        """q: random effects in all, sum over terms of levels x effects."""
        return int((self.n_levels * self.n_effects).sum())

    def effect_values(self, term: int, data: pd.DataFrame) -> np.ndarray:
        """Each row's value of each of the term's effects, (n_rows, K): 1 for the intercept, the
        column for a numeric slope, indicators of a factor slope's levels (its contrasts with an
        intercept)."""
        g = self.group_terms[term]
        pieces = [np.ones((len(data), 1))] if g.intercept else []
        for col, _, full in self._slope_coding(g):
            if col in self.slope_levels:
                levels = self.slope_levels[col]
                codes = levels.get_indexer(data[col])
                if (codes < 0).any():
                    raise unseen_fixed_level(col, sorted(set(data[col][codes < 0].astype(str))), levels,
                                             slope=True)
                dummies = np.eye(len(levels))[codes]
                pieces.append(dummies if full else dummies[:, 1:])
            else:
                pieces.append(_numeric(data, col)[:, None])
        return np.hstack(pieces)

    @property
    def n_levels(self) -> np.ndarray:
        """Number of levels per grouping term, shape (n_terms,)."""
        return np.array([len(lv) for lv in self.group_levels], dtype=int)

    def level_labels(self, term: int) -> list[str]:
        """Readable labels of one grouping term's levels ("HS:30-39")."""
        return self.group_levels[term].labels()

    def fixed_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """X for the rows of ``data``, shape (n_rows, n_fixed)."""
        cols = [np.ones(len(data))] if self.formula.intercept else []
        for k, term in enumerate(self.formula.fixed):
            pieces = []
            for col, as_factor in zip(term.columns, term.as_factor):
                if col in self.categorical:
                    levels = self.categorical[col]
                    codes = levels.get_indexer(data[col])
                    if (codes < 0).any():
                        raise unseen_fixed_level(col, sorted(set(data[col][codes < 0].astype(str))), levels)
                    dummies = np.eye(len(levels))[codes]
                    first = not self.formula.intercept and k == 0 and len(term.columns) == 1
                    pieces.append(dummies if first else dummies[:, 1:])
                else:
                    pieces.append(_numeric(data, col)[:, None])
            for combo in product(*[range(p.shape[1]) for p in pieces]):
                cols.append(np.prod([p[:, j] for p, j in zip(pieces, combo)], axis=0))
        X = np.column_stack(cols) if cols else np.zeros((len(data), 0))
        if self.dropped:
            X = X[:, [n not in self.dropped for n in _fixed_names(self.formula, self.categorical)]]
        return X

    def group_index(self, data: pd.DataFrame) -> np.ndarray:
        """Level index of each row in each grouping term, shape (n_terms, n_rows); -1 = unseen."""
        out = np.empty((len(self.group_terms), len(data)), dtype=np.int64)
        cache: dict = {}
        for k, levels in enumerate(self.group_levels):
            out[k] = levels.lookup(data, cache)
        return out

    def linear_map(self, data: pd.DataFrame, unseen: str = "zero"):
        """[X, Z] for the rows of ``data``: every engine's prediction goes through it.

        Parameters
        ----------
        unseen : {"zero", "level", "term"}
            Columns for grouping levels the survey never saw: none (their
            effect is 0, lme4's ``allow.new.levels``); one per unseen level
            (independent new effects); or one per term, shared by all its
            unseen levels (rstanarm's ``posterior_epred``).

        Returns
        -------
        matrix : sparse (n_rows, n_fixed + q + n_extra)
        extra_term : (n_extra,) int array
            The grouping term of each extra column; a term with K effects has
            K consecutive columns per new level (or per term).
        unseen_labels : dict
            Term name -> labels of its unseen levels.
        """
        X = self.fixed_matrix(data)
        codes = self.group_index(data)
        widths = self.n_effects
        starts = np.concatenate([[0], np.cumsum(self.n_levels * widths)])
        rows, cols, vals = [np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)]  # no terms: Z is empty
        extra_term, labels = [], {}
        next_col = starts[-1]
        for k, K in enumerate(widths):
            seen = codes[k] >= 0
            values = self.effect_values(k, data) if K > 1 or not self.group_terms[k].intercept else None
            effects = np.arange(K)
            # a level's K effects sit side by side (lme4's order: by level, then by effect)
            rows.append(np.repeat(np.flatnonzero(seen), K))
            cols.append((starts[k] + codes[k][seen][:, None] * K + effects).ravel())
            vals.append(np.ones(int(seen.sum()) * K) if values is None else values[seen].ravel())
            if seen.all():
                continue
            keys = data.loc[~seen, list(self.group_terms[k].columns)].astype(str).agg(":".join, axis=1)
            new_level, names = pd.factorize(keys)
            labels[self.group_terms[k].name] = list(names)  # (x || g)'s two terms share g's levels
            if unseen == "zero":
                continue
            slot = new_level if unseen == "level" else np.zeros(len(new_level), dtype=int)
            width = len(names) if unseen == "level" else 1
            rows.append(np.repeat(np.flatnonzero(~seen), K))
            cols.append((next_col + slot[:, None] * K + effects).ravel())
            vals.append(np.ones(int((~seen).sum()) * K) if values is None else values[~seen].ravel())
            extra_term += [k] * (width * K)
            next_col += width * K
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        Z = sp.csr_matrix((v, (r, c)), shape=(len(data), next_col))
        return sp.hstack([sp.csr_matrix(X), Z]).tocsr(), np.asarray(extra_term, dtype=int), labels

    def random_matrix(self, data: pd.DataFrame) -> sp.csr_matrix:
        """Z for the rows of ``data`` (levels the survey never saw get no column), sparse (n_rows, q)."""
        return self.linear_map(data)[0][:, len(self.fixed_names):].tocsr()

    def random_entries(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each row's nonzero columns of Z and their values, (n_rows, width) each, padded with
        column 0 and value 0 where a row has fewer entries."""
        Z = self.random_matrix(data)
        counts = np.diff(Z.indptr)
        width = int(counts.max(initial=0))
        slot = np.arange(Z.nnz) - np.repeat(Z.indptr[:-1], counts)  # position within its row
        cols, vals = np.zeros((len(data), width), dtype=int), np.zeros((len(data), width))
        rows = np.repeat(np.arange(len(data)), counts)
        cols[rows, slot], vals[rows, slot] = Z.indices, Z.data
        return cols, vals

    def offset(self, data: pd.DataFrame) -> np.ndarray:
        """The offset column (its log for ``offset(log(col))``), or zeros; shape (n_rows,)."""
        return offset_values(self.formula, data)


def _fixed_names(formula: Formula, categorical: dict) -> list[str]:
    """Every column name of the formula's X, before any is dropped."""
    names = ["(Intercept)"] if formula.intercept else []
    for k, term in enumerate(formula.fixed):
        names += _term_names(term, categorical, full_first=(not formula.intercept and k == 0))
    return names


RANK_TOL = 1e-7  # lme4's and R's qr() tolerance


def _estimable(X: np.ndarray) -> np.ndarray:
    """Which columns of X (n, p) to keep, (p,) bool: each in turn unless it is, to RANK_TOL of
    its norm, a combination of the columns kept before it (R's qr without pivoting, which
    drops the later of collinear columns, as glm's NA coefficients and lme4's dropped ones)."""
    X = X[np.isfinite(X).all(axis=1)]
    if X.shape[1] == 0:
        return np.ones(0, bool)
    X = np.unique(X, axis=0)  # the cells' rows span the same space, and are few
    keep = np.zeros(X.shape[1], bool)
    basis = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        column = X[:, j]
        norm = np.linalg.norm(column)
        residual = column - basis @ (basis.T @ column)
        residual -= basis @ (basis.T @ residual)  # twice is enough (Kahan, Parlett)
        if norm > 0 and np.linalg.norm(residual) > RANK_TOL * norm:
            keep[j] = True
            basis = np.column_stack([basis, residual / np.linalg.norm(residual)])
    return keep


def _term_names(term, categorical, full_first: bool) -> list[str]:
    parts = []
    for col in term.columns:
        if col in categorical:
            levels = [str(v) for v in categorical[col]]
            keep = levels if (full_first and len(term.columns) == 1) else levels[1:]
            parts.append([f"{col}{lv}" for lv in keep])
        else:
            parts.append([col])
    return [":".join(p) for p in product(*parts)]


def offset_values(formula: Formula, data: pd.DataFrame, what: str = "table") -> np.ndarray:
    """The formula's offset for the rows of ``data`` (its log for ``offset(log(col))``), or zeros;
    an error names the rows (1-based, as in the file after its header) whose values do not fit."""
    col = formula.offset
    if col is None:
        return np.zeros(len(data))
    values = pd.to_numeric(data[col], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values) | ((values <= 0) if formula.offset_log else False)
    if bad.any():
        need = "positive numbers (an exposure, under log())" if formula.offset_log else "finite numbers"
        raise MisterpInputError(
            f"The offset column {col!r} must hold {need}, but {what} rows {describe_rows(np.flatnonzero(bad) + 1)} "
            f"hold {sorted(set(data[col][bad].astype(str)))[:5]}. Fix those values or drop those rows.")
    return np.log(values) if formula.offset_log else values


def _numeric(data: pd.DataFrame, col: str) -> np.ndarray:
    """A numeric column's values; an error names the rows that are not numbers."""
    values = pd.to_numeric(data[col], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise MisterpInputError(
            f"Column {col!r} is used as a number, but rows {describe_rows(np.flatnonzero(bad) + 1)} hold "
            f"{sorted(set(data[col][bad].astype(str)))[:5]}. Fix those values, or write factor({col}) to use it "
            "as categories.")
    return values
