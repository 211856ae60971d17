"""Bayesian engine: time, leapfrog steps, divergences and ESS per second, beside rstanarm.

rstanarm's times are NOTES.md's (R 4.2.2, rstanarm 2.21.3, this machine kind, whole process):
58 s on the article model, 1,192 s on the seven-term CCES model on a 5,000-row sample
(9 divergences, smallest n_eff 938).

    .venv/bin/python bench/bayes.py [--cces-draws 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from misterp import Frame, Survey, prepare
from misterp.engines.bayes import BayesEngine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SEVEN = ("abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) "
         "+ (1|male:eth)")


def run(label, cells, r_seconds, **settings):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = BayesEngine(progress=False, seed=1, **settings).fit(cells)
    seconds = time.perf_counter() - start
    diag = fit.diagnostics()
    ess = min(diag["ess_bulk"].min(), diag["ess_tail"].min())
    r = f"{r_seconds:8.0f}" if r_seconds else "     n/a"
    print(f"{label:<44} {seconds:8.1f} {r} {fit.mean_steps:7.1f} {fit.divergences:5d} {ess:8.0f} "
          f"{ess / seconds:8.1f} {diag['rhat'].max():7.3f}")
    return fit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cces-warmup", type=int, default=1000)
    parser.add_argument("--cces-draws", type=int, default=1000)
    args = parser.parse_args()
    print(f"{'model':<44} {'seconds':>8} {'rstanarm':>8} {'steps':>7} {'div':>5} {'min ESS':>8} "
          f"{'ESS/s':>8} {'max R^':>7}")
    article = pd.read_csv(SHARED / "reference/seed_survey.csv")
    frame = Frame(pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000] * 4 + [7000]}), "N")
    cells, _ = prepare(Survey(article, "response"), frame, "response ~ (1|class)")
    run("article, in process (compile cache warm)", cells, 58)

    cli = [str(Path(sys.executable).parent / "misterp"), "fit", "--engine", "bayes", "--seed", "1",
           "--no-progress", "--count", "N", "--formula", "response ~ (1|class)"]
    survey_csv, frame_csv = Path("/tmp/misterp_bench_article.csv"), Path("/tmp/misterp_bench_frame.csv")
    article.to_csv(survey_csv, index=False)
    frame.data.to_csv(frame_csv, index=False)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(cli + ["--survey", str(survey_csv), "--frame", str(frame_csv)], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(f"{'article, whole process (median of 3)':<44} {sorted(times)[1]:8.1f}       58   target <= 6 s")

    cces = pd.read_csv(SHARED / "data/cces/cces_all_clean.csv")
    rows = pd.read_csv(ROOT / "tests/fixtures/cces_sample5000_rows.csv")["row"].to_numpy() - 1
    cces_frame = Frame(SHARED / "data/cces/poststrat_df.csv", "n")
    cells, _ = prepare(Survey(cces.iloc[rows], "abortion"), cces_frame, SEVEN)
    fit = run(f"seven-term CCES, 5,000 rows, {args.cces_warmup}+{args.cces_draws}", cells, 1192,
              warmup=args.cces_warmup, draws=args.cces_draws)

    import tracemalloc

    from misterp import poststratify

    draws = fit.cell_draws(cces_frame)
    tracemalloc.start()
    start = time.perf_counter()
    for by in (None, "state", ["state", "eth"]):
        poststratify(draws, cces_frame, by=by, interval="quantile")
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    full = draws.draws.n_draws * len(cces_frame.data) * 8
    print(f"poststratify {draws.draws.n_draws} draws x {len(cces_frame.data):,} cells overall, by state, by "
          f"state x eth: {seconds:.1f} s, peak {peak / 2**20:.0f} MiB (draws x cells x 8 bytes = {full / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
