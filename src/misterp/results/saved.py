"""Saved fits: arrays plus metadata, loaded without running code.

A saved fit is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) that
:func:`load_fit` reads with pickling disabled, so a file can never run code.
It holds:

- ``meta``: one JSON text with the format name and version, the fit's kind
  (glm, laplace, bootstrap, bayes, inla), the formula, the family, the cell
  table's column names and types, the structured terms' levels and edges
  (:mod:`misterp.model.terms`), and the fit's own metadata;
- ``cells.table.<i>``: each column of the cells' predictor table;
- ``cells.stats.<name>``: the family's cell statistics;
- ``fit.<name>``: the fit's arrays (estimates, covariances, refits, draws).

The design is learned again from the cell table, as when the fit was made,
so a module can move or be renamed without breaking a user's files. Saving,
loading and poststratifying again gives the same numbers, bit for bit.

Example
-------
>>> import os, tempfile, pandas as pd
>>> from misterp import GlmEngine, Survey, collapse
>>> fit = GlmEngine().fit(collapse(Survey(pd.DataFrame({"y": [1, 0, 1], "x": [0.0, 1.0, 2.0]}), "y"), "y ~ x"))
>>> path = os.path.join(tempfile.mkdtemp(), "model.fit")
>>> save_fit(fit, path)
>>> loaded = load_fit(path)
>>> loaded.kind, bool((loaded.beta == fit.beta).all())
('glm', True)
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..engines.bayes import BayesFit
from ..engines.bootstrap import BootstrapFit
from ..engines.fit import Fit
from ..engines.glm import GlmFit
from ..engines.inla import InlaFit
from ..engines.laplace import MixedFit
from ..engines.bayes.stacked import StackedBayesFit
from ..engines.stacked import StackedBootstrapFit, StackedFit
from ..errors import MisterpInputError
from ..model.cells import Cells
from ..model.family import family_named
from ..model.formula import parse_formula
from ..model.terms import Structure

FORMAT = "misterp-fit"
VERSION = 2
KINDS = {cls.kind: cls for cls in (GlmFit, MixedFit, BootstrapFit, BayesFit, InlaFit, StackedFit, StackedBayesFit,
                                          StackedBootstrapFit)}
OLD_MAGIC = b"misterp-fit\n"  # version 1: a pickle behind this header


def save_fit(fit: Fit, path) -> None:
    """Write ``fit`` (any engine's) to ``path`` (see the module's example)."""
    cells = fit.cells
    columns, arrays = _table_arrays(cells.table)
    fit_meta, fit_arrays = fit.saved_state()
    meta = {"format": FORMAT, "version": VERSION, "kind": fit.kind, "formula": cells.design.formula.text,
            "family": cells.family.name, "family_state": cells.family.state(), "row_constant": cells.row_constant, "columns": columns,
            "stats": list(cells.stats), "fit": fit_meta,
            "structures": {name: st.to_json() for name, st in cells.design.structures.items()}}
    arrays.update({f"cells.stats.{k}": np.asarray(v) for k, v in cells.stats.items()})
    arrays.update({f"fit.{k}": np.asarray(v) for k, v in fit_arrays.items()})
    try:
        with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to a path
            np.savez(f, meta=np.array(json.dumps(meta, default=_plain)), **arrays)
    except OSError as e:
        raise MisterpInputError(f"Cannot write the fit file {str(path)!r}: {e.strerror}. Check that its folder "
                                "exists and is writable.") from None


def load_fit(path) -> Fit:
    """Read a fit written by :func:`save_fit`; never runs code from the file.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "not-a-fit.csv")
    >>> _ = open(path, "w").write("a,b")
    >>> load_fit(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    misterp.errors.MisterpInputError: '...not-a-fit.csv' is not a misterp fit file (save one with --save-fit).
    """
    path = Path(path)
    if not path.is_file():
        raise MisterpInputError(f"The fit file {str(path)!r} does not exist. Save one with --save-fit.")
    with open(path, "rb") as f:
        head = f.read(len(OLD_MAGIC))
    if head == OLD_MAGIC:
        raise MisterpInputError(
            f"{str(path)!r} is a misterp fit file of format version 1, a pickle, which this misterp does "
            f"not load because loading a pickle can run any code. Fit the model again and save it "
            f"(format version {VERSION}).")
    if not zipfile.is_zipfile(path):
        raise MisterpInputError(f"{str(path)!r} is not a misterp fit file (save one with --save-fit).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            arrays = {name: archive[name] for name in archive.files if name != "meta"}
    except Exception:
        raise MisterpInputError(f"{str(path)!r} is not a misterp fit file (save one with --save-fit).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MisterpInputError(f"{str(path)!r} is not a misterp fit file (save one with --save-fit).")
    if meta.get("version") != VERSION or meta.get("kind") not in KINDS:
        raise MisterpInputError(
            f"The fit file {str(path)!r} has format version {meta.get('version')} and kind "
            f"{meta.get('kind')!r}; this misterp reads version {VERSION} fits of kinds {sorted(KINDS)}. "
            "Fit the model again with this version.")
    try:
        family = family_named(meta["family"], meta.get("family_state"))
        table = _table_from_arrays(meta["columns"], arrays)
        stats = {k: arrays[f"cells.stats.{k}"] for k in meta["stats"]}
        formula = parse_formula(meta["formula"])
        columns = {g.name: g.columns[0] for g in formula.groups if g.structured}
        structures = {name: Structure.from_json(st, table[columns[name]].dtype)
                      for name, st in meta.get("structures", {}).items()} if columns else None
        cells = Cells.build(formula, table, stats, family, meta["row_constant"], structures)
        fit_arrays = {k[len("fit."):]: v for k, v in arrays.items() if k.startswith("fit.")}
        fit = KINDS[meta["kind"]].from_saved_state(cells, meta["fit"], fit_arrays)
        _check_shapes(fit)
        return fit
    except (KeyError, TypeError, ValueError, IndexError, np.linalg.LinAlgError) as e:
        raise MisterpInputError(f"The fit file {str(path)!r} is damaged ({type(e).__name__}: {e}); "
                                "fit the model again.") from None


def _check_shapes(fit: Fit) -> None:
    """Raise ValueError unless the fit's arrays fit its design (a damaged file can hold any shapes)."""
    design, m = fit.design, fit.family.n_predictors
    k = (len(design.fixed_names) + design.n_random) * m  # one block per linear predictor
    draws = fit.parameter_draws(2, np.random.default_rng(0))
    cov = fit.coef_cov()
    # a family with categories keeps each predictor's list of term factors
    scales = [draws.scale] if draws is None or fit.family.categories is None else draws.scale
    shapes = [fit.point_coef().shape == (k,), cov is None or cov.shape == (k, k),
              draws is None or (draws.coef.shape[1:] == (k,) and all(
                  [f.shape[1:] for f in scale] == [(K, K) for K in design.n_effects] for scale in scales))]
    if not all(shapes):
        raise ValueError(f"its arrays do not match the model's {k} coefficients")


def _table_arrays(table: pd.DataFrame) -> tuple[list[dict], dict]:
    """The cell table as plain arrays: (column specs, {"cells.table.<i>": array})."""
    specs, arrays = [], {}
    for i, name in enumerate(table.columns):
        column = table[name]
        key = f"cells.table.{i}"
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = pd.Series(column.cat.categories)
            specs.append({"name": name, "kind": "category", "ordered": bool(column.cat.ordered)})
            arrays[key] = column.cat.codes.to_numpy()
            arrays[f"{key}.categories"] = _plain_array(name, categories)
        elif pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            specs.append({"name": name, "kind": "array"})
            arrays[key] = column.to_numpy()
        else:
            specs.append({"name": name, "kind": "text", "dtype": str(column.dtype)})
            arrays[key] = _plain_array(name, column)
    return specs, arrays


def _plain_array(name, values: pd.Series) -> np.ndarray:
    """Numbers as they are, text as text; anything else cannot be stored without pickling."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.to_numpy()
    if all(isinstance(v, str) for v in values):
        return values.to_numpy().astype(str)
    kinds = sorted({type(v).__name__ for v in values})
    raise MisterpInputError(
        f"Column {name!r} holds values of type {', '.join(kinds)}, which a saved fit stores only as numbers "
        f"or text. Convert it before fitting (for example data[{name!r}].astype(str)).")


def _table_from_arrays(specs: list[dict], arrays: dict) -> pd.DataFrame:
    columns = {}
    for i, spec in enumerate(specs):
        values = arrays[f"cells.table.{i}"]
        if spec["kind"] == "category":
            categories = arrays[f"cells.table.{i}.categories"]
            categories = categories.astype(object) if categories.dtype.kind == "U" else categories
            columns[spec["name"]] = pd.Categorical.from_codes(values, categories, ordered=spec["ordered"])
        elif spec["kind"] == "text":
            columns[spec["name"]] = pd.Series(values, dtype=object).astype(spec["dtype"])
        else:
            columns[spec["name"]] = values
    table = pd.DataFrame(columns)
    return table if specs else pd.DataFrame(index=[0])


def _plain(value):
    """JSON for numpy scalars in metadata."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
