"""Poisson, gaussian and varying-slope models: misterp's times beside R's.

R's times were recorded by the fixture scripts on this machine kind (tests/fixtures/r/make_poisson.R,
make_gaussian.R, make_slopes.R, make_stan_slope.R; R 4.2.2, lme4 1.1-31, rstanarm 2.21.3, 4 chains
on 2 cores). Ours: the median of ``--repeats`` runs in this process (the Bayesian fits once each,
JAX's compilation cache warm), and whole processes for the CLI rows.

    .venv/bin/python bench/families.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from misterp import (Frame, LaplaceEngine, MisterpWarning, Survey, bootstrap, cell_draws, poststratify, prepare,
                     read_frame)
from misterp.engines.bayes import BayesEngine
from misterp.model.family import GAUSSIAN, POISSON
from run import median_time  # bench/run.py's median of repeated timings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CCES = ROOT.parent / "shared" / "data" / "cces"
SLOPE = "abortion ~ male + (1 + male | state) + (1 | eth) + (1 | educ) + (1 | age)"


def r_seconds(file: str, name: str, key: str = "name", column: str = "value") -> float:
    table = pd.read_csv(FIXTURES / file) if (FIXTURES / file).exists() else pd.read_csv(ROOT / "bench" / file)
    return float(table.set_index(key)[column][name])


def row(label: str, ours: float, theirs: float) -> None:
    print(f"{label:<58} {ours:8.2f} {theirs:8.1f} {theirs / ours:7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", MisterpWarning)
    print(f"{'task':<58} {'misterp':>8} {'R':>8} {'ratio':>8}   (seconds)")
    counts = pd.read_csv(FIXTURES / "poisson_survey.csv")
    count_frame = Frame(pd.read_csv(FIXTURES / "poisson_frame.csv"), "N")
    poisson = prepare(Survey(counts, "visits"), count_frame, "visits ~ male + (1|state) + (1|age) + offset(log(years))",
                      family=POISSON)[0]
    poisson_fit = LaplaceEngine().fit(poisson)
    row("bootMer 500 refits, poisson glmer (2,000 rows)",
        median_time(lambda: bootstrap(poisson_fit, nsim=500, seed=1, progress=False), args.repeats),
        r_seconds("poisson_bootmer.csv", "boot_seconds"))
    scores = pd.read_csv(FIXTURES / "gaussian_survey.csv")
    score_frame = Frame(pd.read_csv(FIXTURES / "gaussian_frame.csv"), "N")
    gaussian = prepare(Survey(scores, "score"), score_frame, "score ~ male + (1|state) + (1|age)", family=GAUSSIAN)[0]
    lmer = LaplaceEngine().fit(gaussian)
    row("bootMer 500 refits, lmer (1,500 rows)",
        median_time(lambda: bootstrap(lmer, nsim=500, seed=1, progress=False), args.repeats),
        r_seconds("gaussian_bootmer.csv", "boot_seconds"))
    for label, cells, frame, file in [("stan_glmer poisson, crossed intercepts (2,000 rows)", poisson, count_frame,
                                       "poisson_stan_scalars.csv"),
                                      ("stan_glmer gaussian, crossed intercepts (1,500 rows)", gaussian, score_frame,
                                       "gaussian_stan_scalars.csv")]:
        start = time.perf_counter()
        fit = BayesEngine(seed=1, progress=False).fit(cells)
        poststratify(cell_draws(fit, frame), frame, by="state")
        row(label, time.perf_counter() - start, r_seconds(file, "seconds"))
    slope = pd.read_csv(FIXTURES / "stanslope_survey.csv")
    slope_frame = Frame(pd.read_csv(FIXTURES / "stanslope_frame.csv"), "N")
    cells = prepare(Survey(slope, "y"), slope_frame, "y ~ x + female + (1 + x | g)", family=GAUSSIAN)[0]
    start = time.perf_counter()
    fit = BayesEngine(seed=1, progress=False).fit(cells)
    poststratify(cell_draws(fit, slope_frame), slope_frame, by="g")
    seconds = time.perf_counter() - start
    row("stan_glmer gaussian, (1 + x | g), 7,000 rows, 160 groups", seconds, r_seconds("stanslope_scalars.csv",
                                                                                         "seconds"))
    print(f"{'':<58} divergences {fit.divergences}, mean steps {fit.mean_steps:.1f}, "
          f"min bulk ESS {fit.diagnostics()['ess_bulk'].min():.0f}")
    cces = pd.read_csv(CCES / "cces_all_clean.csv")
    cces_frame = read_frame(CCES / "poststrat_df.csv", "n")
    row("glmer (1 + male | state) + 3 intercepts, all 59,810 rows",
        median_time(lambda: LaplaceEngine().fit(prepare(Survey(cces, "abortion"), cces_frame, SLOPE)[0]), args.repeats),
        r_seconds("r_slope_times.csv", "glmer_slope_all", key="task", column="seconds"))
    command = [str(Path(sys.executable).parent / "misterp"), "fit", "--survey", str(CCES / "cces_all_clean.csv"),
               "--frame", str(CCES / "poststrat_df.csv"), "--count", "n", "--formula", SLOPE, "--by", "state"]
    row("  whole process: misterp fit, the same model, --by state",
        median_time(lambda: subprocess.run(command, check=True, capture_output=True), args.repeats),
        r_seconds("r_slope_times.csv", "glmer_slope_all", key="task", column="seconds"))


if __name__ == "__main__":
    main()
