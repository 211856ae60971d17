"""The nested-Laplace (bayes-laplace) prototype, measured against full NUTS; see bench/RESULTS.md.

NUTS over (log theta, beta) on -1/2 x lme4's Laplace deviance (the effects integrated out) plus
rstanarm's priors, the deviance and its exact gradient from engines/deviance.py through a JAX
callback; then the effects from their conditional normal at each draw. Prints its time per
deviance, steps, and its state estimates and sds beside the whitened full NUTS fit.

    .venv/bin/python bench/nested_laplace.py [warmup draws]   (default 1000 1000)
"""
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import MCMC, NUTS

from misterp import LaplaceEngine, Survey, cell_draws, poststratify, prepare, read_frame
from misterp.engines.bayes import BayesEngine, BayesFit, Priors, model_data
from misterp.engines.deviance import Problem, gradient, pirls

jax.config.update("jax_enable_x64", True)
ROOT = Path(__file__).resolve().parents[1]
CCES = ROOT.parent / "shared/data/cces"
SEVEN = ("abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) "
         "+ (1|male:eth)")
cces = pd.read_csv(CCES / "cces_all_clean.csv")
rows = pd.read_csv(ROOT / "tests/fixtures/cces_sample5000_rows.csv")["row"].to_numpy() - 1
frame = read_frame(CCES / "poststrat_df.csv", "n")
cells, _ = prepare(Survey(cces.iloc[rows], "abortion"), frame, SEVEN)
pri = Priors()
d = model_data(cells, pri)
prob = Problem(cells)
T, names = prob.n_terms, cells.design.fixed_names
i0 = names.index("(Intercept)")
rest = [i for i in range(len(names)) if i != i0]
lf = LaplaceEngine().fit(cells)
cache = {"u": lf.u[None, :].copy(), "calls": 0}  # PIRLS starts from the last modes


def value_and_grad(z):
    """Potential and gradient at z = (log theta, beta): Laplace deviance / 2 minus the log priors."""
    z = np.asarray(z)
    rho, beta = z[:T], z[T:]
    theta = np.exp(rho)
    params = np.concatenate([theta, beta])[None]
    try:
        st = pirls(prob, params, cache["u"])
    except FloatingPointError:  # a wild warmup trajectory: retry from the Laplace modes, else a divergence
        try:
            st = pirls(prob, params, lf.u[None, :].copy())
        except FloatingPointError:
            return np.inf, np.zeros_like(z)
    cache["u"] = st.u
    cache["calls"] += 1
    f, g = st.objective[0], gradient(prob, st)[0]
    alpha = beta[i0] + beta[rest] @ d["xbar"]
    cs = np.asarray(d["coef_scale"])
    U = (f / 2 + theta.sum() / pri.sd_scale - rho.sum() + 0.5 * (alpha / pri.intercept_scale) ** 2
         + 0.5 * np.sum((beta[rest] / cs) ** 2))
    grad = np.empty_like(z)
    grad[:T] = g[:T] / 2 * theta + theta / pri.sd_scale - 1
    gb = g[T:] / 2
    gb[i0] += alpha / pri.intercept_scale ** 2
    gb[rest] += alpha / pri.intercept_scale ** 2 * d["xbar"] + beta[rest] / cs ** 2
    grad[T:] = gb
    return U, grad


m = T + len(names)


@jax.custom_vjp
def potential(z):
    return jax.pure_callback(lambda z: np.float64(value_and_grad(z)[0]), jax.ShapeDtypeStruct((), jnp.float64), z)


def fwd(z):
    shapes = (jax.ShapeDtypeStruct((), jnp.float64), jax.ShapeDtypeStruct((m,), jnp.float64))
    return jax.pure_callback(lambda z: tuple(map(np.asarray, value_and_grad(z))), shapes, z)


def bwd(g, ct):
    return (ct * g,)


potential.defvjp(fwd, bwd)
z0 = np.concatenate([np.log(np.maximum(lf.theta, 1e-3)), lf.beta])
W, D = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (1000, 1000)
kernel = NUTS(potential_fn=potential, target_accept_prob=0.95, max_tree_depth=15)
mc = MCMC(kernel, num_warmup=W, num_samples=D, num_chains=4, chain_method="sequential", progress_bar=False)
start = time.perf_counter()
inits = np.tile(z0, (4, 1)) + 0.1 * np.random.default_rng(0).standard_normal((4, m))
mc.run(jax.random.PRNGKey(1), init_params=jnp.asarray(inits), extra_fields=("diverging", "num_steps"))
zs = np.asarray(mc.get_samples(group_by_chain=True))
t_nuts = time.perf_counter() - start
ex = mc.get_extra_fields(group_by_chain=True)
print(f"nested NUTS: {t_nuts:.1f} s, {cache['calls']} deviance calls, "
      f"{t_nuts / cache['calls'] * 1e3:.2f} ms a call, {np.asarray(ex['num_steps']).mean():.1f} steps an iteration, "
      f"{int(np.asarray(ex['diverging']).sum())} divergences")

# the effects from their conditional normal N(u~, H^-1) at each draw
start = time.perf_counter()
rng = np.random.default_rng(2)
C, N = zs.shape[:2]
flat = zs.reshape(-1, m)
theta, beta = np.exp(flat[:, :T]), flat[:, T:]
u, u0 = np.empty((len(flat), prob.q)), lf.u[None]
for k in range(len(flat)):
    st = pirls(prob, np.concatenate([theta[k], beta[k]])[None], u0)
    u0 = st.u
    u[k] = st.u[0] + np.linalg.solve(st.chol_lower[0].T, rng.standard_normal(prob.q))
t_u = time.perf_counter() - start
samples = {"alpha": (beta[:, i0] + beta[:, rest] @ d["xbar"]).reshape(C, N), "beta": beta[:, rest].reshape(C, N, -1),
           "tau": (theta / pri.sd_scale).reshape(C, N, T), "sigma": theta.reshape(C, N, T), "z": u.reshape(C, N, -1)}
nested = BayesFit(cells, samples, d["xbar"], 0, 0, 0.0, BayesEngine(seed=1))
diag = nested.diagnostics()
print(f"effects: {t_u:.1f} s; total {t_nuts + t_u:.1f} s; min ESS {diag[['ess_bulk', 'ess_tail']].min().min():.0f}, "
      f"max R-hat {diag['rhat'].max():.3f}")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    full = BayesEngine(seed=1, progress=False).fit(cells)
    print(f"full NUTS (whitened): {time.perf_counter() - start:.1f} s")
ours = poststratify(cell_draws(nested, frame), frame, by="state").table
exact = poststratify(cell_draws(full, frame), frame, by="state").table
off = (ours["sd"] / exact["sd"] - 1).abs()
print(f"states: largest estimate difference {np.abs(ours.estimate - exact.estimate).max():.4f} (bar 0.005); "
      f"sd ratio off by median {off.median():.3f}, largest {off.max():.3f} (bar 0.10)")
print("sd medians, nested:", np.round(np.median(theta, 0), 3), "full:", np.round(np.median(full._flat("sigma"), 0), 3))
