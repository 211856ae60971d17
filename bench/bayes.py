"""Bayesian engine: time, leapfrog steps, divergences, ESS and ESS per second, beside rstanarm.

rstanarm's times come from `bench/r_stan_glmer_times.csv` when `bench/r_stan_glmer_times.R` has
been run on this machine (it needs R with rstanarm), and otherwise from NOTES.md (R 4.2.2,
rstanarm 2.21.3, this machine kind, whole process): 58 s on the article model, 1,192 s on the
seven-term CCES model on a 5,000-row sample (9 divergences, smallest n_eff 938) and 1,743 s on the
case-study formula on that sample with adapt_delta 0.99. `--rstanarm` runs the R script first.

    .venv/bin/python bench/bayes.py [--all-rows] [--case-study] [--noncentred] [--rstanarm] [--article-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from misterp import (Frame, LaplaceEngine, MisterpWarning, Survey, cell_draws, poststratify, prepare, read_frame,
                     read_survey)
from misterp.engines.bayes import BayesEngine, Priors

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CCES = SHARED / "data/cces"
SEVEN = ("abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) "
         "+ (1|male:eth)")
CASE_STUDY = ("abortion ~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) "
              "+ repvote + factor(region)")
NOTES_SECONDS = {"article": 58, "seven_5000": 1192, "case_5000": 1743}


def rstanarm_seconds(task):
    path = ROOT / "bench" / "r_stan_glmer_times.csv"
    if path.exists():
        table = pd.read_csv(path)
        match = table[table["task"] == task]
        if len(match):
            return float(match["seconds"].iloc[-1])
    return NOTES_SECONDS.get(task)


def header():
    print(f"{'model':<46} {'seconds':>8} {'rstanarm':>8} {'ratio':>6} {'steps':>6} {'div':>4} {'bulk ESS':>8} "
          f"{'tail ESS':>8} {'ESS/s':>7} {'R-hat':>6}")


def run(label, cells, task=None, **settings):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = BayesEngine(progress=False, seed=1, **settings).fit(cells)
    seconds = time.perf_counter() - start
    diag = fit.diagnostics()
    r = rstanarm_seconds(task) if task else None
    r_text, ratio = (f"{r:8.0f}", f"{r / seconds:5.1f}x") if r else ("     n/a", "   n/a")
    bulk, tail = diag["ess_bulk"].min(), diag["ess_tail"].min()
    print(f"{label:<46} {seconds:8.1f} {r_text} {ratio} {fit.mean_steps:6.1f} {fit.divergences:4d} {bulk:8.0f} "
          f"{tail:8.0f} {min(bulk, tail) / seconds:7.1f} {diag['rhat'].max():6.3f}")
    if fit.remedy_note:
        print(f"  remedy: {fit.remedy_note}")
    return fit


def agreement_with_laplace(fit, cells, frame):
    """Largest difference between the engines' state estimates."""
    ours = poststratify(cell_draws(fit, frame), frame, by="state", interval="quantile").table["estimate"]
    laplace = LaplaceEngine().fit(cells)
    theirs = poststratify(cell_draws(laplace, frame, seed=1), frame, by="state").table["estimate"]
    return float(np.abs(ours.to_numpy() - theirs.to_numpy()).max())


def article(cli_repeats=3):
    data = pd.read_csv(SHARED / "reference/seed_survey.csv")
    frame = Frame(pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000] * 4 + [7000]}), "N")
    cells, _ = prepare(Survey(data, "response"), frame, "response ~ (1|class)")
    run("article, in process", cells, "article")
    cli = [str(Path(sys.executable).parent / "misterp"), "fit", "--engine", "bayes", "--seed", "1",
           "--no-progress", "--count", "N", "--formula", "response ~ (1|class)"]
    survey_csv, frame_csv = Path("/tmp/misterp_bench_article.csv"), Path("/tmp/misterp_bench_frame.csv")
    data.to_csv(survey_csv, index=False)
    frame.data.to_csv(frame_csv, index=False)
    cold = Path(tempfile.mkdtemp(prefix="misterp_jax_cold_"))
    start = time.perf_counter()
    subprocess.run(cli + ["--survey", str(survey_csv), "--frame", str(frame_csv)], check=True, capture_output=True,
                   env={**os.environ, "MISTERP_JAX_CACHE": str(cold)})
    print(f"{'article, whole process, empty compilation cache':<46} {time.perf_counter() - start:8.1f}")
    shutil.rmtree(cold, ignore_errors=True)
    times = []
    for _ in range(cli_repeats):
        start = time.perf_counter()
        subprocess.run(cli + ["--survey", str(survey_csv), "--frame", str(frame_csv)], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(f"{'article, whole process (median of 3)':<46} {sorted(times)[len(times) // 2]:8.1f} "
          f"{rstanarm_seconds('article'):8.0f}   target <= 6 s with the compilation cache warm")


def cces(args):
    data = pd.read_csv(CCES / "cces_all_clean.csv")
    sample = data.iloc[pd.read_csv(ROOT / "tests/fixtures/cces_sample5000_rows.csv")["row"].to_numpy() - 1]
    frame = read_frame(CCES / "poststrat_df.csv", "n")
    cells, _ = prepare(Survey(sample, "abortion"), frame, SEVEN)
    fit = run("seven-term, 5,000 rows, defaults", cells, "seven_5000")
    gap = agreement_with_laplace(fit, cells, frame)
    print(f"  state estimates vs the Laplace engine: largest difference {gap:.4f}")
    memory(fit, frame)
    if args.noncentred:
        run("seven-term, 5,000 rows, rstanarm's non-centred", cells, "seven_5000", parameterization="noncentred")
    if args.all_rows:
        cells_all, _ = prepare(Survey(data, "abortion"), frame, SEVEN)
        fit = run("seven-term, all 59,810 rows, defaults", cells_all)
        print(f"  state estimates vs the Laplace engine: largest difference "
              f"{agreement_with_laplace(fit, cells_all, frame):.4f}")
    if args.case_study:
        states = pd.read_csv(CCES / "statelevel_predictors.csv")
        case_frame = read_frame(CCES / "poststrat_df.csv", "n", join=states)
        case = dict(priors=Priors(coef_scale=1.0, sd_scale=0.5), adapt_delta=0.99)
        cells_case, _ = prepare(read_survey(sample, "abortion", join=states), case_frame, CASE_STUDY)
        run("case study, 5,000 rows, adapt_delta 0.99", cells_case, "case_5000", **case)
        if args.all_rows:
            cells_case, _ = prepare(read_survey(data, "abortion", join=states), case_frame, CASE_STUDY)
            run("case study, all rows, adapt_delta 0.99", cells_case, **case)


def memory(fit, frame):
    draws = cell_draws(fit, frame)
    tracemalloc.start()
    start = time.perf_counter()
    for by in (None, "state", ["state", "eth"]):
        poststratify(draws, frame, by=by, interval="quantile")
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    full = draws.draws.n_draws * len(frame.data) * 8
    print(f"  poststratify {draws.draws.n_draws} draws x {len(frame.data):,} cells overall, by state, by state x eth: "
          f"{seconds:.1f} s, peak {peak / 2**20:.0f} MiB (draws x cells x 8 bytes = {full / 2**20:.0f} MiB)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--all-rows", action="store_true", help="also fit on all 59,810 CCES rows")
    parser.add_argument("--case-study", action="store_true", help="also the case-study formula at adapt_delta 0.99")
    parser.add_argument("--noncentred", action="store_true", help="also rstanarm's parameterization, for comparison")
    parser.add_argument("--rstanarm", action="store_true", help="time rstanarm first (needs R with rstanarm; long)")
    parser.add_argument("--article-only", action="store_true", help="only the article model")
    args = parser.parse_args()
    warnings.simplefilter("ignore", MisterpWarning)  # the Laplace comparisons' singular terms are known
    if args.rstanarm:
        if not shutil.which("Rscript"):
            sys.exit("--rstanarm needs Rscript on the PATH (apt-get install r-base-core r-cran-rstanarm)")
        subprocess.run(["Rscript", str(ROOT / "bench/r_stan_glmer_times.R")], check=True, cwd=ROOT)
    header()
    article()
    if not args.article_only:
        cces(args)


if __name__ == "__main__":
    main()
