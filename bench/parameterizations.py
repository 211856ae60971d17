"""Parameterizations tried for the seven-term CCES model before the whitened one (bench/RESULTS.md).

Each samples rstanarm's posterior (same priors) with NumPyro's NUTS, 4 chains side by side,
adapt_delta 0.95, and prints the time, leapfrog steps, divergences and ESS:

- ``noncentred``: rstanarm's b = sigma * z;
- ``rotated``: z = Q w + u 1 / sqrt(J) per term (Q an orthonormal basis of sum-to-zero vectors), with
  the terms' means sigma * u / sqrt(J) moved into the intercept (an exact shear: the intercept's
  prior is applied to alpha* - sum of the means);
- ``hybrid``: as ``rotated``, but the sum-to-zero part of each well-identified term centred,
  c ~ N(0, sigma^2); a term counts as well identified when its median level's data precision
  times the Laplace sd squared exceeds ``--cut``.

    .venv/bin/python bench/parameterizations.py noncentred|rotated|hybrid [--cut 1] [--warmup 1000 --draws 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.infer import MCMC, NUTS

from misterp import LaplaceEngine, Survey, prepare, read_frame
from misterp.engines.bayes import Priors, model_data
from misterp.engines.diagnostics import summarize

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)
ROOT = Path(__file__).resolve().parents[1]
CCES = ROOT.parent / "shared/data/cces"
SEVEN = ("abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) "
         "+ (1|male:eth)")


def sum_to_zero_basis(J: int) -> np.ndarray:
    """(J, J - 1) orthonormal columns orthogonal to the ones vector."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(J), np.eye(J)[:, :J - 1]]))
    return q[:, 1:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["noncentred", "rotated", "hybrid"])
    parser.add_argument("--cut", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()

    data = pd.read_csv(CCES / "cces_all_clean.csv")
    rows = pd.read_csv(ROOT / "tests/fixtures/cces_sample5000_rows.csv")["row"].to_numpy() - 1
    cells, _ = prepare(Survey(data.iloc[rows], "abortion"), read_frame(CCES / "poststrat_df.csv", "n"), SEVEN)
    d = model_data(cells, Priors())
    sizes = list(cells.design.n_levels)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    cols = d["cols"]

    laplace = LaplaceEngine().fit(cells)
    eta = d["offset"] + cells.X @ laplace.beta + laplace.b[cols].sum(0)
    p = 1 / (1 + np.exp(-eta))
    weight = d["stats"]["trials"] * p * (1 - p)
    information = [np.median(np.bincount(cols[k] - starts[k], weights=weight, minlength=J)) * laplace.theta[k] ** 2
                   for k, J in enumerate(sizes)]
    centred = [args.kind == "hybrid" and info > args.cut for info in information]
    print("terms", cells.design.group_names, "information", np.round(information, 2), "centred", centred)

    bases = [jnp.asarray(sum_to_zero_basis(J)) for J in sizes]
    Xc, offset = jnp.asarray(d["Xc"]), jnp.asarray(d["offset"])
    y, n, cols_j = jnp.asarray(d["stats"]["successes"]), jnp.asarray(d["stats"]["trials"]), jnp.asarray(cols)

    def model():
        beta = numpyro.sample("beta", dist.Normal(0.0, jnp.asarray(d["coef_scale"])))
        sigma = d["sd_scale"] * numpyro.sample("tau", dist.Gamma(jnp.ones(len(sizes)), 1.0))
        eta, shift = offset + Xc @ beta, 0.0
        for k, J in enumerate(sizes):
            if args.kind == "noncentred":
                b = sigma[k] * numpyro.sample(f"z{k}", dist.Normal(jnp.zeros(J), 1.0))
            else:
                u = numpyro.sample(f"u{k}", dist.Normal(0.0, 1.0))
                shift = shift + sigma[k] * u / np.sqrt(J)
                if centred[k]:
                    c = numpyro.sample(f"c{k}", dist.Normal(jnp.zeros(J - 1), sigma[k]))
                else:
                    c = sigma[k] * numpyro.sample(f"w{k}", dist.Normal(jnp.zeros(J - 1), 1.0))
                b = bases[k] @ c
            eta = eta + b[cols_j[k] - starts[k]]
        # with the means moved into the intercept, alpha* - shift carries the intercept's prior
        alpha = numpyro.sample("alpha", dist.Normal(shift, d["intercept_scale"]))
        numpyro.sample("y", dist.Binomial(total_count=n, logits=eta + alpha), obs=y)

    mcmc = MCMC(NUTS(model, target_accept_prob=0.95, max_tree_depth=15), num_warmup=args.warmup,
                num_samples=args.draws, num_chains=4, chain_method="parallel", progress_bar=False)
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(1), extra_fields=("diverging", "num_steps"))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    seconds = time.perf_counter() - start
    extra = mcmc.get_extra_fields(group_by_chain=True)
    table = summarize(samples)
    print(f"{args.kind}: {seconds:.1f} s, {np.asarray(extra['num_steps']).mean():.1f} steps an iteration, "
          f"{int(np.asarray(extra['diverging']).sum())} divergences, min bulk ESS {table['ess_bulk'].min():.0f}, "
          f"min tail ESS {table['ess_tail'].min():.0f}, max R-hat {table['rhat'].max():.3f}")


if __name__ == "__main__":
    main()
