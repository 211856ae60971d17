"""A bayes fit as ArviZ InferenceData, and the pointwise log-likelihood and PSIS-LOO it shares
with cross-validation (:func:`misterp.results.crossval.loo_losses`).

Groups, named as ArviZ names them (``arviz.from_numpyro``):

- ``posterior``: every sampled and derived site, (chain, draw, ...);
- ``sample_stats``: the sampler's statistics per iteration: ``diverging``, ``n_steps`` (leapfrog
  steps), ``tree_depth`` (log2(n_steps) + 1, rounded down, as ArviZ computes it), ``energy`` (the
  Hamiltonian), ``step_size``, ``acceptance_rate`` and ``lp`` (the log density on the sampler's
  unconstrained scale, minus NumPyro's potential energy);
- ``observed_data``: the cells' statistics, each (cell,) (successes and trials; counts, exposures
  and respondents; respondents, sums and within-cell squares);
- ``log_likelihood``: ``y``, each cell's log-likelihood at each draw, (chain, draw, cell): the
  family's own (:meth:`Family.loglik` with its constant), that is, the joint density of a gaussian
  cell's respondents, or the binomial probability of a cell's successes. Where every respondent is
  its own cell (a continuous covariate) it is per respondent. A count family's row constant
  (sum of y log e - log y!) is not in any cell and not in this group.

Example
-------
>>> import numpy as np
>>> from misterp.model.family import GAUSSIAN
>>> stats = {"n": np.array([1.0, 2.0]), "total": np.array([1.0, 3.0]), "within": np.array([0.0, 0.5])}
>>> pointwise_loglik(GAUSSIAN, stats, np.zeros((3, 2)), np.ones((3, 1))).shape  # draws x cells
(3, 2)
"""

from __future__ import annotations

import numpy as np

# ArviZ's names of NumPyro's per-iteration fields (arviz.data.io_numpyro)
SAMPLER_FIELDS = {"diverging": "diverging", "num_steps": "n_steps", "energy": "energy",
                  "adapt_state.step_size": "step_size", "accept_prob": "acceptance_rate", "potential_energy": "lp"}
CELL_BLOCK = 1024  # cells whose log-likelihood draws are computed at once


def sample_stats(extra: dict) -> dict:
    """ArviZ's ``sample_stats`` from NumPyro's extra fields, each (chains, draws)."""
    stats = {}
    for field, name in SAMPLER_FIELDS.items():
        if field in extra:
            value = np.asarray(extra[field])
            stats[name] = -value.astype(np.float64) if field == "potential_energy" else value
    if "n_steps" in stats:
        stats["tree_depth"] = np.log2(stats["n_steps"]).astype(np.int64) + 1
    return stats


def pointwise_loglik(family, stats: dict, eta: np.ndarray, dispersion, constant=0.0) -> np.ndarray:
    """Each unit's log-likelihood at each draw, (n_draws, n_units).

    Parameters
    ----------
    family : Family
    stats : dict of (n_units,) arrays
        The family's statistics of each unit (a cell, or a respondent as a cell of one).
    eta : (n_draws, n_units) array
        The linear predictor at each draw.
    dispersion : (n_draws, 1) array or float
    constant : (n_units,) array or float
        What each unit's log-likelihood holds beyond its statistics (a count's row constant).
    """
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return family.loglik(stats, eta, constant=True, dispersion=dispersion) + constant


def cell_loglik(fit) -> np.ndarray:
    """Each cell's log-likelihood at each posterior draw, (chains, draws, n_cells)."""
    cells = fit.cells
    chains, per_chain = next(iter(fit.samples.values())).shape[:2]
    coef, b = fit.coef_draws(), fit.b_draws()
    Z = cells.design.random_matrix(cells.table).tocsr()
    dispersion = fit.dispersion_draws(fit.n_draws)
    out = np.empty((fit.n_draws, cells.n_cells))
    for start in range(0, cells.n_cells, CELL_BLOCK):
        part = slice(start, start + CELL_BLOCK)
        eta = coef @ cells.X[part].T + np.asarray((Z[part] @ b.T).T) + cells.offset[part]
        out[:, part] = pointwise_loglik(cells.family, {k: v[part] for k, v in cells.stats.items()}, eta,
                                        dispersion)
    return out.reshape(chains, per_chain, cells.n_cells)


def inference_data(fit, log_likelihood: bool = True):
    """ArviZ InferenceData of a bayes fit (see the module's docstring for its groups); imports ArviZ."""
    import arviz as az

    n_cells = fit.cells.n_cells
    observed = {k: np.asarray(v) for k, v in fit.cells.stats.items()}
    groups = {"posterior": dict(fit.samples), "observed_data": observed}
    if fit.sample_stats:
        groups["sample_stats"] = dict(fit.sample_stats)
    dims = {name: ["cell"] for name in observed}
    if log_likelihood and not fit.engine.prior_only:
        groups["log_likelihood"] = {"y": cell_loglik(fit)}
        dims["y"] = ["cell"]
    return az.from_dict(**groups, dims=dims, coords={"cell": np.arange(n_cells)})


def relative_efficiency(fit) -> float:
    """The posterior's mean ESS over its draws (the ``reff`` that ``arviz.loo`` computes); 1 for one chain."""
    import arviz as az

    chains = next(iter(fit.samples.values())).shape[0]
    if chains == 1:
        return 1.0
    ess = az.ess(az.from_dict(posterior=dict(fit.samples)).posterior, method="mean")
    return float(np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / fit.n_draws)


def psis_loo(loglik: np.ndarray, reff: float) -> tuple[np.ndarray, np.ndarray]:
    """PSIS-LOO through ArviZ: each unit's leave-one-out log predictive density and Pareto k, (n_units,)
    each, from its log-likelihood draws (chains, draws, n_units)."""
    import warnings

    import arviz as az

    with warnings.catch_warnings():  # high Pareto k are the caller's to count and report
        warnings.simplefilter("ignore")
        result = az.loo(az.from_dict(log_likelihood={"y": loglik}), pointwise=True, reff=reff)
    return result.loo_i.values, result.pareto_k.values
