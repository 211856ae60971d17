"""Model checks: the survey's observed group means against means replicated from the fit.

Replicated data are drawn from the fit's family at the fitted cell means: at each posterior
draw's means for a Bayesian fit (a posterior predictive check), at the point estimate for the
others (a parametric-bootstrap check). For each group of the survey's cells (the ``by`` columns,
or each cell), the check reports the observed mean, the replicated means' mean and central 95%
interval, and a two-sided p-value: twice the smaller share of replicates on either side of the
observed mean. Small p-values flag groups the model does not reproduce.

Example
-------
>>> import pandas as pd
>>> from misterp import LaplaceEngine, Survey, prepare
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5})
>>> fit = LaplaceEngine().fit(prepare(Survey(data, "y"), None, "y ~ (1|g)")[0])
>>> check = predictive_check(fit, by="g", n_rep=200, seed=1)
>>> check.columns.tolist()
['g', 'respondents', 'observed', 'replicated', 'lower', 'upper', 'p_value']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.frame import Frame
from ..engines.fit import Fit
from .draws import cell_draws


def predictive_check(fit: Fit, by=None, n_rep: int = 500, seed=None) -> pd.DataFrame:
    """Observed against replicated group means, one row per group of the survey's cells.

    Parameters
    ----------
    fit : Fit
        Any engine's fit; a Bayesian one replicates from its posterior draws.
    by : str or list of str, optional
        Survey columns that define the groups; by default every cell is a group.
    n_rep : int
        Replicated data sets (a posterior fit uses its first ``n_rep`` draws).
    seed : int, optional

    Returns
    -------
    DataFrame with the group columns, ``respondents``, ``observed``, ``replicated`` (the
    replicates' mean), ``lower`` and ``upper`` (their central 95%) and ``p_value``.
    """
    cells, family = fit.cells, fit.family
    by = [by] if isinstance(by, str) else list(by or cells.design.formula.predictors)
    table = cells.table
    codes, keys = pd.MultiIndex.from_frame(table[by]).factorize(sort=True) if by else (np.zeros(len(table), int),
                                                                                      None)
    n_groups = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    survey_cells = Frame(table.assign(_respondents=family.count(cells.stats)), "_respondents")
    # a posterior's draws are needed; the other fits replicate at their point, so they draw none
    draws = cell_draws(fit, survey_cells, n_draws=n_rep if fit.point == "mean" else 0, seed=rng)
    if fit.point == "mean":  # a posterior: each replicate at its own draw's means
        means = np.vstack(list(draws.draws.chunks(256)))[:n_rep]
    else:  # at the point estimate
        means = np.broadcast_to(draws.point, (n_rep,) + draws.point.shape)
    replicated = family.simulate(cells.stats, means, rng, dispersion=fit.dispersion_draws(n_rep)[:len(means)])
    observed = family.observed_mean(family.sum_cells(cells.stats, codes, n_groups))  # (n_groups[, K])
    rep = family.observed_mean(family.sum_cells(replicated, codes, n_groups))       # (n_rep, n_groups[, K])
    above, below = (rep >= observed).mean(axis=0), (rep <= observed).mean(axis=0)
    out = keys.to_frame(index=False) if keys is not None else pd.DataFrame(index=range(1))
    if keys is not None:
        out.columns = by
    respondents = np.bincount(codes, weights=family.count(cells.stats), minlength=n_groups)
    columns = {"observed": observed, "replicated": rep.mean(axis=0), "lower": np.quantile(rep, 0.025, axis=0),
               "upper": np.quantile(rep, 0.975, axis=0), "p_value": np.minimum(1.0, 2 * np.minimum(above, below))}
    if family.categories is not None:  # a row per group and category
        K = len(family.categories)
        out = out.loc[np.repeat(out.index, K)].reset_index(drop=True).assign(
            category=np.tile(family.categories, n_groups))
        respondents = np.repeat(respondents, K)
        columns = {name: np.asarray(values).ravel() for name, values in columns.items()}
    return out.assign(respondents=respondents, **columns)
