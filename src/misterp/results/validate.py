"""Validation against a known truth: how far the estimates are from the true values, group by group.

For the MRP estimate and each comparison column (raw, design-weighted, raked), over the groups
with a truth and an estimate: the mean absolute error, the root mean squared error, the bias
(mean of estimate - truth), the correlation, and for MRP the share of groups whose interval
covers the truth.

Example
-------
>>> import pandas as pd
>>> from misterp.results.estimate import Estimate
>>> est = Estimate(pd.DataFrame({"g": ["a", "b"], "estimate": [0.4, 0.6], "lower": [0.3, 0.55],
...                              "upper": [0.5, 0.65], "raw_mean": [0.2, 0.9]}), ["g"])
>>> table = validate(est, pd.DataFrame({"g": ["a", "b"], "truth": [0.45, 0.7]}))
>>> table.loc["mrp", ["mae", "coverage"]].round(3).tolist()
[0.075, 0.5]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MisterpInputError
from .estimate import Estimate

METHODS = {"mrp": "estimate", "raw": "raw_mean", "weighted": "weighted_mean", "raked": "raked_mean"}


def validate(estimate: Estimate, truth: pd.DataFrame) -> pd.DataFrame:
    """One row per method (mrp, raw, weighted, raked, as the estimate's table has them): groups, MAE,
    RMSE, bias, correlation and interval coverage (MRP's only).

    ``truth`` holds the estimate's ``by`` columns and ``truth``; its groups and the estimate's must
    be the same.
    """
    by = estimate.by
    if "truth" not in truth or any(c not in truth for c in by):
        raise MisterpInputError(f"The truth table needs the columns {by + ['truth']}; it has {list(truth.columns)}.")
    key = lambda d: d[by].astype(str).agg(":".join, axis=1) if by else pd.Series(["overall"] * len(d))  # noqa: E731
    ours, theirs = key(estimate.table), key(truth)
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing or extra:
        raise MisterpInputError(
            f"The truth table and the estimates must have the same groups on {by}: the truth lacks "
            f"{missing[:10] or 'none'} and has {extra[:10] or 'none'} that the estimates do not. Fix the truth table.")
    true = pd.to_numeric(truth["truth"].to_numpy()[pd.Index(theirs).get_indexer(ours)], errors="coerce")
    rows = {}
    for name, column in METHODS.items():
        if column not in estimate.table:
            continue
        values = estimate.table[column].to_numpy(float)
        ok = np.isfinite(values) & np.isfinite(true)
        error = values[ok] - true[ok]
        row = {"groups": int(ok.sum()), "mae": np.mean(np.abs(error)), "rmse": np.sqrt(np.mean(error ** 2)),
               "bias": np.mean(error),
               "correlation": np.corrcoef(values[ok], true[ok])[0, 1] if ok.sum() > 1 else np.nan,
               "coverage": np.nan}
        if name == "mrp" and {"lower", "upper"} <= set(estimate.table):
            lower, upper = estimate.table["lower"].to_numpy(float)[ok], estimate.table["upper"].to_numpy(float)[ok]
            row["coverage"] = float(np.mean((lower <= true[ok]) & (true[ok] <= upper)))
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
