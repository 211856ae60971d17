"""Convergence diagnostics Stan users expect: rank-normalised split R-hat, bulk and tail ESS.

Following Vehtari, Gelman, Simpson, Carpenter and Buerkner (2021): draws are
split in half per chain and rank-normalised; R-hat is the larger of the bulk
and folded values; tail ESS is the smaller ESS of the 5% and 95% quantile
indicators. The autocorrelation-based ESS is NumPyro's (Stan's estimator).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtri  # scipy.stats would add a third of a second to every CLI run


def _split(x: np.ndarray) -> np.ndarray:
    """(chains, draws) -> (2 chains, draws // 2)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _average_ranks(v: np.ndarray) -> np.ndarray:
    """1-based ranks of a flat array, ties sharing their average rank."""
    order = np.argsort(v, kind="stable")
    ordered = v[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(v)])
    ranks = np.empty(len(v))
    ranks[order] = (first + (counts + 1) / 2)[np.cumsum(starts) - 1]
    return ranks


def _rank_normal(x: np.ndarray) -> np.ndarray:
    ranks = _average_ranks(x.ravel()).reshape(x.shape)
    return ndtri((ranks - 0.375) / (x.size + 0.25))


def _rhat(x: np.ndarray) -> float:
    """Split-chain R-hat of (chains, draws) already split."""
    m, n = x.shape
    means = x.mean(axis=1)
    within = x.var(axis=1, ddof=1).mean()
    between = n * means.var(ddof=1)
    if within <= 0:
        return np.nan
    return float(np.sqrt(((n - 1) / n * within + between / n) / within))


def _ess(x: np.ndarray) -> float:
    from numpyro.diagnostics import effective_sample_size

    if np.all(x == x.flat[0]):
        return np.nan
    return float(effective_sample_size(x))


def rhat(x: np.ndarray) -> float:
    """Rank-normalised split R-hat of one scalar's draws (chains, draws)."""
    split = _split(x)
    folded = np.abs(split - np.median(split))
    return max(_rhat(_rank_normal(split)), _rhat(_rank_normal(folded)))


def ess_bulk(x: np.ndarray) -> float:
    return _ess(_rank_normal(_split(x)))


def ess_tail(x: np.ndarray) -> float:
    split = _split(x)
    low, high = np.quantile(split, [0.05, 0.95])
    return min(_ess((split <= low).astype(float)), _ess((split >= high).astype(float)))


def summarize(samples: dict) -> pd.DataFrame:
    """One row per scalar parameter: mean, sd, rhat, ess_bulk, ess_tail.

    ``samples`` maps names to arrays (chains, draws, ...); vector parameters
    get one row per element (``z[3]``).
    """
    rows = []
    for name, value in samples.items():
        value = np.asarray(value, dtype=float)
        flat = value.reshape(value.shape[0], value.shape[1], -1)
        for j in range(flat.shape[2]):
            x = flat[:, :, j]
            label = name if flat.shape[2] == 1 and value.ndim == 2 else f"{name}[{j}]"
            rows.append({"parameter": label, "mean": x.mean(), "sd": x.std(ddof=1), "rhat": rhat(x),
                         "ess_bulk": ess_bulk(x), "ess_tail": ess_tail(x)})
    return pd.DataFrame(rows)
