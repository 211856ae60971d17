"""The bayes engine on a continuous covariate: where every respondent is its own cell.

A gaussian slope model like High School and Beyond's, ``y ~ ses + sx + (1 + ses | school)``:
7,185 respondents in 160 schools, a continuous socio-economic score, and a frame that gives the
score on a coarser grid (school x sx x ses rounded to 0.5). Two data sets: ``hsb_sim``,
simulated here (seeded; tests/fixtures/hsb_sim_*.csv), and ``hsb82``, the real one (mlmRev's
Hsb82, which R writes: ``Rscript -e 'library(mlmRev); write.csv(Hsb82, "hsb82.csv", row.names=FALSE)'``).

    .venv/bin/python bench/bayes_continuous.py --write tests/fixtures [--hsb82 hsb82.csv --dir DIR]
    Rscript bench/r_stan_hsb.R tests/fixtures/hsb_sim [DIR/hsb82]              # rstanarm
    .venv/bin/python bench/bayes_continuous.py [--dir DIR] [--repeats 3] [--before]

The last prints, per data set: the profile (cells, effects, the cost of one gradient cell by cell
and on the sufficient statistics, leapfrog steps and tree depth, each stage's time in one Python
process), the whole ``misterp fit --engine bayes`` process (median of ``--repeats``, JAX's
compilation cache warm, and once with an empty cache), rstanarm's time from
bench/r_stan_hsb_times.csv, and the posterior's agreement with rstanarm's
(tests/fixtures/<name>_stan_*.csv): per school, the gap between the posterior means of the
frame-weighted mean outcome in units of rstanarm's posterior sd, and the scalars.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from run import median_time  # bench/run.py's median of repeated timings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FORMULA = "y ~ ses + sx + (1 + ses | school)"


def simulate_hsb(seed: int = 1) -> pd.DataFrame:
    """7,185 students in 160 schools of 14-66 (scaled to the total), a school-level mean score, a
    correlated intercept and slope, a sex effect and a residual sd of 6.1."""
    rng = np.random.default_rng(seed)
    J = 160
    n = rng.integers(14, 67, J)
    n = (n * 7185 / n.sum()).round().astype(int)
    n[-1] += 7185 - n.sum()
    school = np.repeat([f"s{j:04d}" for j in range(J)], n)
    sector = np.repeat(rng.choice(["Public", "Catholic"], J), n)
    mses = rng.normal(0, 0.4, J)
    ses = np.round(np.repeat(mses, n) + rng.normal(0, 0.65, n.sum()), 3)
    u0, u1 = rng.normal(0, 2.0, J), rng.normal(0, 0.6, J)
    sx = rng.choice(["Male", "Female"], n.sum())
    y = (12.6 + 2.4 * ses + np.repeat(u0, n) + np.repeat(u1, n) * ses + 1.2 * (sx == "Male")
         + rng.normal(0, 6.1, n.sum()))
    return pd.DataFrame({"school": school, "sector": sector, "sx": sx, "ses": ses, "y": y.round(3)})


def coarse_frame(survey: pd.DataFrame) -> pd.DataFrame:
    """school x sector x sx x ses on a 0.5 grid, ten population members per respondent."""
    binned = survey.assign(ses=(survey["ses"] * 2).round() / 2)
    frame = binned.groupby(["school", "sector", "sx", "ses"]).size().rename("N").reset_index()
    return frame.assign(N=frame["N"] * 10)


def write(folder: Path, hsb82: str | None, real_folder: Path) -> None:
    """hsb_sim's survey and frame into ``folder``; Hsb82's (from R's CSV) into ``real_folder``."""
    sets = {folder / "hsb_sim": simulate_hsb()}
    if hsb82:
        real = pd.read_csv(hsb82).rename(columns={"mAch": "y"})
        sets[real_folder / "hsb82"] = real.assign(school=real["school"].astype(str))[
            ["school", "sector", "sx", "ses", "y"]]
    for prefix, survey in sets.items():
        prefix.parent.mkdir(parents=True, exist_ok=True)
        survey.to_csv(f"{prefix}_survey.csv", index=False)
        coarse_frame(survey).to_csv(f"{prefix}_frame.csv", index=False)
        print(f"{prefix}: {len(survey)} respondents, {survey['school'].nunique()} schools, "
              f"{len(coarse_frame(survey))} frame cells")


def gradient_microseconds(cells, likelihood: str) -> float:
    """One gradient of the log density, inside a compiled loop of 1,000 (no dispatch), median of 3."""
    import jax
    from numpyro.infer.util import initialize_model

    from misterp.engines.bayes import Priors, model_data
    from misterp.engines.bayes.model import model

    data = {**model_data(cells, Priors(), likelihood), "prior_only": False}
    info = initialize_model(jax.random.PRNGKey(0), model, model_kwargs=data)
    grad = jax.grad(info.potential_fn)

    def loop(z):
        return jax.lax.fori_loop(0, 1000, lambda i, z: jax.tree.map(lambda a, g: a - 1e-12 * g, z, grad(z)), z)

    run = jax.jit(loop)
    jax.block_until_ready(run(info.param_info.z))
    return median_time(lambda: jax.block_until_ready(run(info.param_info.z)), 3) * 1e3


def profile(prefix: Path, cells_too: bool):
    """Each stage in this process, the gradient's cost both ways, the sampler's steps; returns the fit and frame."""
    from misterp import Frame, MisterpWarning, Survey, cell_draws, poststratify, prepare
    from misterp.engines.bayes import BayesEngine, Priors, model_data
    from misterp.engines.jax_config import ensure_jax
    from misterp.model.family import GAUSSIAN

    ensure_jax(True, 4)
    start = time.perf_counter()
    survey, frame = pd.read_csv(f"{prefix}_survey.csv"), Frame(pd.read_csv(f"{prefix}_frame.csv"), "N")
    cells, _ = prepare(Survey(survey, "y"), frame, FORMULA, family=GAUSSIAN)
    print(f"  read + prepare            {time.perf_counter() - start:8.2f} s   {len(survey)} respondents -> "
          f"{cells.n_cells} cells, {len(cells.design.fixed_names)} fixed + {cells.design.n_random} group effects")
    start = time.perf_counter()
    moments = model_data(cells, Priors())["moments"]
    print(f"  sufficient statistics     {time.perf_counter() - start:8.3f} s   {moments.cost} multiply-adds per "
          f"evaluation against {cells.n_cells} cells x {len(cells.design.fixed_names) + 2} nonzeros")
    for likelihood in ("cells", "moments"):
        print(f"  one gradient, {likelihood:<9}   {gradient_microseconds(cells, likelihood):8.1f} us")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        engines = [("moments (auto)", BayesEngine(seed=1, progress=False))]
        if cells_too:
            engines.append(("cells (before)", BayesEngine(seed=1, progress=False, likelihood="cells")))
        for label, engine in engines:
            start = time.perf_counter()
            fit = engine.fit(cells)
            seconds = time.perf_counter() - start
            depth = np.bincount(fit.sample_stats["tree_depth"].ravel())
            print(f"  fit, {label:<16}    {seconds:8.2f} s   {fit.mean_steps:.1f} leapfrog steps an iteration, "
                  f"tree depths {dict((d, int(c)) for d, c in enumerate(depth) if c)}, {fit.divergences} "
                  f"divergences, min bulk ESS {fit.diagnostics()['ess_bulk'].min():.0f}")
    start = time.perf_counter()
    poststratify(cell_draws(fit, frame), frame, by="sector")
    print(f"  cell_draws + poststratify {time.perf_counter() - start:8.2f} s")
    return fit, frame


def whole_process(prefix: Path, repeats: int) -> tuple[float, float]:
    """``misterp fit --engine bayes`` as a whole process: median with JAX's cache warm, and once empty."""
    command = [str(Path(sys.executable).parent / "misterp"), "fit", "--survey", f"{prefix}_survey.csv",
               "--frame", f"{prefix}_frame.csv", "--count", "N", "--family", "gaussian",
               "--engine", "bayes", "--formula", FORMULA, "--by", "sector", "--quiet"]
    with tempfile.TemporaryDirectory() as empty:
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "MISTERP_JAX_CACHE": empty})
        cold = time.perf_counter() - start
    subprocess.run(command, check=True, capture_output=True)  # fills the cache
    return median_time(lambda: subprocess.run(command, check=True, capture_output=True), repeats), cold


def agreement(fit, frame, name: str) -> None:
    """Per school, |ours - rstanarm's| posterior mean over rstanarm's posterior sd; the scalars beside R's."""
    from misterp import cell_draws, poststratify

    path = FIXTURES / f"{name}_stan_groups.csv"
    if not path.exists():
        print("  (no rstanarm posterior: run bench/r_stan_hsb.R)")
        return
    theirs = pd.read_csv(path, dtype={"school": str}).set_index("school")
    ours = poststratify(cell_draws(fit, frame), frame, by="school").table.set_index("school")
    ours.index = ours.index.astype(str)
    gap = (ours["estimate"] - theirs["mean"]).abs() / theirs["sd"]
    ratio = ours["sd"] / theirs["sd"]
    print(f"  school means: gap / rstanarm's sd, median {gap.median():.3f}, max {gap.max():.3f}; "
          f"posterior sd ratio median {ratio.median():.3f}")
    r = pd.read_csv(FIXTURES / f"{name}_stan_scalars.csv").set_index("name")
    F = fit.term_factors()[0]
    cov = F @ np.swapaxes(F, 1, 2)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    draws = {"intercept": fit.coef_draws()[:, 0], "ses": fit.coef_draws()[:, 1], "sxMale": fit.coef_draws()[:, 2],
             "sigma": fit._flat("aux"), "sd0": sd[:, 0], "sd1": sd[:, 1], "cor": cov[:, 1, 0] / (sd[:, 0] * sd[:, 1])}
    for key, value in draws.items():
        print(f"    {key:<10} median {np.median(value):8.4f} (rstanarm {r.loc[key, 'median']:8.4f}), "
              f"sd {value.std(ddof=1):7.4f} ({r.loc[key, 'sd']:7.4f})")


def r_seconds(name: str) -> float | None:
    path = ROOT / "bench" / "r_stan_hsb_times.csv"
    if not path.exists():
        return None
    table = pd.read_csv(path).set_index("task")
    return float(table.loc[name, "seconds"]) if name in table.index else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", metavar="DIR", help="write hsb_sim's survey and frame there and stop")
    parser.add_argument("--hsb82", help="with --write: mlmRev's Hsb82 as CSV (R: write.csv(Hsb82, ...))")
    parser.add_argument("--dir", default="/tmp/misterp-bench-hsb", help="the folder of hsb82's survey and frame")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", action="store_true", help="also fit cell by cell, as before the moments")
    args = parser.parse_args()
    if args.write:
        write(Path(args.write), args.hsb82, Path(args.dir))
        return
    for prefix in (FIXTURES / "hsb_sim", Path(args.dir) / "hsb82"):
        if not Path(f"{prefix}_survey.csv").exists():
            continue
        print(f"{prefix.name}: {FORMULA}")
        fit, frame = profile(prefix, args.before)
        agreement(fit, frame, prefix.name)
        warm, cold = whole_process(prefix, args.repeats)
        theirs = r_seconds(prefix.name)
        print(f"  whole process misterp fit --engine bayes: {warm:.1f} s (median of {args.repeats}, cache warm), "
              f"{cold:.1f} s (cache empty)")
        if theirs:
            print(f"  rstanarm stan_glmer (4 chains, 2 at a time): {theirs:.1f} s: {theirs / warm:.1f}x "
                  f"(cache empty: {theirs / cold:.1f}x)")


if __name__ == "__main__":
    main()
