"""Saving a fit to poststratify it again later, against another frame or grouping.

A saved fit is a pickle of the fit object (its design, cells and estimates)
behind a short header naming misterp and the format version. Like any pickle,
load only files you trust.

Example
-------
>>> save_fit(fit, "model.fit"); fit = load_fit("model.fit")     # doctest: +SKIP
"""

from __future__ import annotations

import pickle
from pathlib import Path

from .errors import MisterpInputError

MAGIC = b"misterp-fit\n"
VERSION = 1


def save_fit(fit, path) -> None:
    """Write ``fit`` (a GlmFit or MixedFit) to ``path``."""
    with open(path, "wb") as f:
        f.write(MAGIC)
        pickle.dump({"version": VERSION, "fit": fit}, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_fit(path):
    """Read a fit written by :func:`save_fit`."""
    path = Path(path)
    if not path.is_file():
        raise MisterpInputError(f"The fit file {str(path)!r} does not exist. Save one with --save-fit.")
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise MisterpInputError(f"{str(path)!r} is not a misterp fit file (save one with --save-fit).")
        try:
            saved = pickle.load(f)
        except Exception as e:
            raise MisterpInputError(f"The fit file {str(path)!r} is damaged or from an incompatible "
                                    f"version ({e}); fit the model again.") from None
    if saved.get("version") != VERSION:
        raise MisterpInputError(f"The fit file {str(path)!r} has format version {saved.get('version')}, "
                                f"this misterp reads version {VERSION}; fit the model again.")
    return saved["fit"]
