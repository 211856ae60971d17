"""Structured random intercepts: the levels of ``rw1(age)``, ``rw2(age)``, ``ar1(age)``,
``icar(state)`` and ``bym2(state)``, their structure matrix and their constraints.

A structured term is a random intercept whose levels are not exchangeable. Its prior is a Gaussian
with a known structure (what :mod:`misterp.engines.terms` turns into a precision, given the sd):

- ``rw1``: first differences u_k - u_(k-1) ~ N(0, sd^2), with sum(u) = 0;
- ``rw2``: second differences u_k - 2 u_(k-1) + u_(k-2) ~ N(0, sd^2), with sum(u) = 0 and
  sum(k u_k) = 0;
- ``ar1``: u_1 ~ N(0, sd^2), u_k = rho u_(k-1) + N(0, sd^2 (1 - rho^2)): sd is the marginal sd;
- ``icar``: u = sd phi, phi with density exp(-1/2 sum over edges (phi_i - phi_j)^2), sum(phi) = 0
  on each connected component; an island (an area without neighbours) is u = sd theta, theta ~ N(0, 1);
- ``bym2``: u = sd (sqrt(1 - rho) theta + sqrt(rho / s) phi), theta ~ N(0, I), phi the icar field
  with sum(phi) = 0 on each component and s the component's scaling factor (the geometric mean of
  the diagonal of the generalised inverse of its icar structure; Freni-Sterrantino, Ventrucci and
  Rue 2018); an island is u = sd theta.

The levels of a structured term are all of them, not only those the survey has: the sorted levels
of the survey and the frame (or ``--order``) for the ordered kinds, and the areas of the adjacency,
the survey and the frame for the spatial ones. A level without respondents still gets an effect,
borrowed from its neighbours.

Example
-------
>>> s = Structure("rw1", ("a", "b", "c"))
>>> s.matrix().toarray().tolist(), s.constraints().tolist()
([[1.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 1.0]], [[1.0, 1.0, 1.0]])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..data.adjacency import Adjacency
from ..errors import MisterpInputError

ORDERED = ("rw1", "rw2", "ar1")
SPATIAL = ("icar", "bym2")
MIN_LEVELS = {"rw1": 3, "rw2": 4, "ar1": 3, "icar": 2, "bym2": 2}


@dataclass(frozen=True, eq=False)
class Structure:
    """One structured term's levels and structure.

    Attributes
    ----------
    kind : {"rw1", "rw2", "ar1", "icar", "bym2"}
    levels : tuple
        The levels, in the term's order (ordered kinds) or sorted (areas).
    edges : (n_edges, 2) int array
        Positions (i < j) of neighbouring areas; empty for the ordered kinds.
    """

    kind: str
    levels: tuple
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=int))

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @cached_property
    def components(self) -> list[np.ndarray]:
        """The levels of each connected component, (sizes,) int arrays: one for the ordered kinds."""
        if self.kind in ORDERED:
            return [np.arange(self.n_levels)]
        n, labels = connected_components(self._adjacency(), directed=False)
        return [np.flatnonzero(labels == c) for c in range(n)]

    @property
    def islands(self) -> np.ndarray:
        """Areas without a neighbour, (n_islands,) positions."""
        return np.array(sorted(int(c[0]) for c in self.components if len(c) == 1), dtype=int)

    def _adjacency(self) -> sp.csr_matrix:
        J, (i, j) = self.n_levels, np.asarray(self.edges, int).reshape(-1, 2).T
        W = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(J, J))
        return (W + W.T).tocsr()

    def matrix(self) -> sp.csr_matrix:
        """The structure matrix R (J, J), the precision of the term at sd 1: D'D for rw1 and rw2 (D the
        first or second differences), the graph's Laplacian for icar and bym2's phi with 1 on an island's
        diagonal (its independent effect). ar1's depends on rho (:mod:`misterp.engines.terms`)."""
        J = self.n_levels
        if self.kind in ("rw1", "rw2"):
            D = sp.eye(J, format="csr")
            for _ in range(1 if self.kind == "rw1" else 2):
                D = (D[1:] - D[:-1]).tocsr()
            return (D.T @ D).tocsr()
        if self.kind in SPATIAL:
            W = self._adjacency()
            degree = np.asarray(W.sum(axis=1)).ravel()
            return (sp.diags(np.where(degree > 0, degree, 1.0)) - W).tocsr()
        raise ValueError(f"{self.kind} has no fixed structure matrix")

    def constraints(self) -> np.ndarray:
        """The rows c with c'u = 0 (n_constraints, J): the null space of :meth:`matrix`, sum(u) = 0 (and
        sum(k u_k) = 0 for rw2) or one sum per component of two or more areas; none for ar1."""
        J = self.n_levels
        if self.kind == "ar1":
            return np.zeros((0, J))
        if self.kind == "rw2":
            k = np.arange(1.0, J + 1)
            return np.vstack([np.ones(J), k - k.mean()])
        rows = []
        for comp in self.components:
            if len(comp) > 1:
                row = np.zeros(J)
                row[comp] = 1.0
                rows.append(row)
        return np.array(rows).reshape(-1, J)

    @cached_property
    def scale_factors(self) -> np.ndarray:
        """Each level's bym2 scaling factor s, (J,): its component's geometric mean of the diagonal of the
        generalised inverse of R restricted to the component (1 on an island)."""
        out = np.ones(self.n_levels)
        R = self.matrix()
        for comp in self.components:
            if len(comp) > 1:
                block = R[comp][:, comp].toarray()
                # R + 11'/n has inverse R^+ + 11'/n: R's null space is the constant
                centre = np.full(block.shape, 1.0 / len(comp))
                variances = np.diag(np.linalg.inv(block + centre)) - 1.0 / len(comp)
                out[comp] = np.exp(np.mean(np.log(variances)))
        return out

    def field_basis(self, islands: bool = True) -> np.ndarray:
        """B (J, r) with B z, z ~ N(0, I_r), the constrained field at sd 1 (the covariance R^+ on the
        constraints' space): per component, R's eigenvectors of positive eigenvalue, each over the root of
        its eigenvalue, so that every column lies in one component (:meth:`basis_components`). Without
        ``islands`` (bym2's phi), an island has no column. Not for ar1. Computed once (a county graph's
        eigendecomposition takes seconds)."""
        return self._basis(islands)[0]

    def basis_components(self, islands: bool = True) -> np.ndarray:
        """The component (an index into :attr:`components`) of each column of :meth:`field_basis`, (r,)."""
        return self._basis(islands)[1]

    def _basis(self, islands: bool) -> tuple[np.ndarray, np.ndarray]:
        cache = self.__dict__.setdefault("_bases", {})
        if islands not in cache:
            R = self.matrix().tocsr()
            columns, owners = [], []
            for c, comp in enumerate(self.components):
                if len(comp) == 1 and not islands:
                    continue
                values, vectors = np.linalg.eigh(R[comp][:, comp].toarray())
                keep = values > 1e-9 * max(values.max(), 1.0)
                block = np.zeros((self.n_levels, int(keep.sum())))
                block[comp] = vectors[:, keep] / np.sqrt(values[keep])
                columns.append(block)
                owners.append(np.full(block.shape[1], c))
            cache[islands] = (np.hstack(columns + [np.zeros((self.n_levels, 0))]),
                              np.concatenate(owners + [np.zeros(0, int)]).astype(int))
        return cache[islands]

    def to_json(self) -> dict:
        return {"kind": self.kind, "levels": [_plain(v) for v in self.levels],
                "edges": np.asarray(self.edges, int).tolist()}

    @classmethod
    def from_json(cls, data: dict, dtype=None) -> "Structure":
        levels = tuple(pd.Series(data["levels"]).astype(dtype)) if dtype is not None else tuple(data["levels"])
        return cls(data["kind"], levels, np.asarray(data["edges"], int).reshape(-1, 2))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _values(tables: list, col: str) -> pd.Index:
    """The distinct values of ``col`` over the tables (DataFrames, or dicts column -> values) that have it,
    sorted."""
    series = [pd.Series(t[col]) for t in tables if t is not None and col in t]
    return pd.Index(pd.unique(pd.concat(series, ignore_index=True))).sort_values()


def build_structures(formula, survey: pd.DataFrame, frame: pd.DataFrame | None = None, order: dict | None = None,
                     adjacency: Adjacency | None = None) -> tuple[dict, list[str]]:
    """The :class:`Structure` of each structured term of ``formula`` (by term name), and notes for the user.

    Parameters
    ----------
    survey, frame : DataFrame
        The tables whose levels the terms take; the frame may be None, or a dict column -> its values
        (a streamed frame's :meth:`misterp.data.frame.FrameChunks.distinct`).
    order : dict
        Column -> its levels in order, as text (``--order age=18-29,30-39,...``); by default sorted.
    adjacency : Adjacency
        The neighbours of the spatial terms' areas.
    """
    order, out, notes = order or {}, {}, []
    for term in formula.groups:
        if not term.structured:
            continue
        col = term.columns[0]
        values = _values([survey, frame], col)
        if term.kind in ORDERED:
            structure = Structure(term.kind, tuple(_ordered(col, values, order.get(col))))
            if term.kind == "rw2" and not any(col in f.columns for f in formula.fixed):
                notes.append(f"{term.name} carries no linear trend across {col!r} (its effects sum to 0, and so do k "
                             f"times them): a fixed effect must carry it, such as the level's position 1, 2, ... as a "
                             "numeric column in the formula")
        else:
            structure, note = _spatial(term, col, values, frame, adjacency)
            notes += note
        if structure.n_levels < MIN_LEVELS[term.kind]:
            raise MisterpInputError(
                f"The term {term.name} needs at least {MIN_LEVELS[term.kind]} levels of {col!r}, but the survey and "
                f"frame have {structure.n_levels} ({[str(v) for v in structure.levels]}). Use (1|{col}) or a fixed "
                f"effect for a column with so few levels.")
        out[term.name] = structure
    unused = sorted(set(order) - {t.columns[0] for t in formula.groups if t.kind in ORDERED})
    if unused:
        raise MisterpInputError(
            f"--order names {unused}, which no rw1(), rw2() or ar1() term of the formula uses. Order the column "
            "of such a term, or drop the option.")
    return out, notes


def _ordered(col: str, values: pd.Index, given) -> list:
    """The levels of an ordered term: ``given`` (text) matched to the data's values, or the sorted values."""
    if given is None:
        return list(values)
    text = {str(v): v for v in values}
    given = [str(g).strip() for g in given]
    unknown = [g for g in given if g not in text]
    missing = [t for t in text if t not in given]
    repeated = sorted({g for g in given if given.count(g) > 1})
    if unknown or missing or repeated:
        problems = ([f"names {unknown}, which the survey and frame do not have"] if unknown else []) + \
                   ([f"leaves out {missing}"] if missing else []) + ([f"repeats {repeated}"] if repeated else [])
        raise MisterpInputError(
            f"--order for {col!r} {' and '.join(problems)}. List every level of {col!r} once, in order: "
            f"--order {col}={','.join(text)} (their sorted order).")
    return [text[g] for g in given]


def _spatial(term, col: str, values: pd.Index, frame, adjacency: Adjacency | None) -> tuple[Structure, list[str]]:
    """A spatial term's areas (the adjacency's, the survey's and the frame's) and edges, with notes."""
    if adjacency is None:
        raise MisterpInputError(
            f"The term {term.name} needs the areas' neighbours: give --adjacency FILE (columns area, neighbour; "
            f"one row per pair of neighbouring values of {col!r}), or --adjacency us-states for US postal codes.")
    text = {str(v): v for v in values}
    table_areas = adjacency.areas
    notes = []
    if frame is not None and col in frame:
        in_frame = {str(v) for v in pd.unique(frame[col])}
        absent = [a for a in table_areas if a not in in_frame]
        if absent and not adjacency.built_in:
            raise MisterpInputError(
                f"The adjacency table {adjacency.source!r} names areas that the frame's {col!r} lacks: "
                f"{absent[:10]}{' ...' if len(absent) > 10 else ''} ({len(absent)} in all). Check that the table and "
                f"the frame code {col!r} the same way (postal codes, FIPS with leading zeros), or remove those rows.")
        if absent:
            notes.append(f"{term.name}: the built-in {adjacency.source} table's areas {absent} are not in the frame "
                         "and are left out")
        table_areas = [a for a in table_areas if a in in_frame]
    names = sorted(set(text) | set(table_areas))
    position = {a: i for i, a in enumerate(names)}
    edges = np.array([(position[a], position[b]) for a, b in adjacency.pairs if a in position and b in position],
                     dtype=int).reshape(-1, 2)
    dtype = values.dtype if len(values) else object
    try:
        levels = tuple(text[a] if a in text else pd.Series([a]).astype(dtype).iloc[0] for a in names)
    except (TypeError, ValueError):
        raise MisterpInputError(
            f"The adjacency table {adjacency.source!r} names areas such as {[a for a in names if a not in text][:5]} "
            f"that are not values of {col!r} ({dtype} in the survey). Check that the table and the survey code "
            f"{col!r} the same way.") from None
    structure = Structure(term.kind, levels, edges)
    islands = [str(structure.levels[i]) for i in structure.islands]
    if islands:
        notes.append(f"{term.name}: {islands} have no neighbour in the adjacency table and get independent effects "
                     "(islands)")
    return structure, notes
