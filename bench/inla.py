"""The inla engine beside laplace and bayes: whole `misterp fit` processes, and agreement with bayes.

Each model runs as a whole process (`misterp fit ... --by state`: imports, reading, fit, 4,000 draws of
12,000 frame cells, poststratification, notes) for each engine, in the same run on the same machine;
the table prints the medians of `--repeats` runs (bayes once: it takes half a minute and more) and the
ratios the inla engine is held to: at least 10x faster than bayes, at most 3x laplace's time. Then the
state estimates of inla and bayes (in process) are compared: the gap of the means in posterior sds
and the ratio of the sds, median and worst state, and the group sds' posterior means.

Models: the CCES seven-term formula on a 4,000-row biased sample (tests/fixtures/cces_biased4000_rows.csv,
the first replication of bench/coverage.py's cces design) and on all 59,810 rows; the case-study formula
with the state-level predictors on the same sample.

    .venv/bin/python bench/inla.py [--repeats 3] [--no-bayes]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from misterp import MisterpWarning, cell_draws, poststratify, prepare, read_frame, read_survey
from misterp.engines.bayes import BayesEngine
from misterp.engines.inla import InlaEngine

ROOT = Path(__file__).resolve().parents[1]
CCES = ROOT.parent / "shared" / "data" / "cces"
SEVEN = ("abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) "
         "+ (1|male:eth)")
CASE_STUDY = ("abortion ~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) "
              "+ repvote + factor(region)")
MISTERP = str(Path(sys.executable).parent / "misterp")


def whole_process(survey: Path, formula: str, engine: str, join: bool) -> float:
    command = [MISTERP, "fit", "--survey", str(survey), "--frame", str(CCES / "poststrat_df.csv"), "--count", "n",
               "--formula", formula, "--engine", engine, "--by", "state", "--quiet", "--no-progress",
               "--out", os.devnull]
    if join:
        command += ["--join", str(CCES / "statelevel_predictors.csv")]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def timings(label: str, survey: Path, formula: str, join: bool, repeats: int, bayes: bool) -> None:
    times = {e: [whole_process(survey, formula, e, join) for _ in range(repeats)] for e in ("inla", "laplace")}
    if bayes:
        times["bayes"] = [whole_process(survey, formula, "bayes", join)]
    med = {e: statistics.median(t) for e, t in times.items()}
    runs = "; ".join(f"{e} " + ", ".join(f"{v:.2f}" for v in t) for e, t in times.items())
    bayes_text = f"{med['bayes']:8.1f} {med['bayes'] / med['inla']:7.1f}x" if bayes else f"{'-':>8} {'-':>8}"
    print(f"{label:<36} {med['inla']:7.2f} {med['laplace']:8.2f} {med['inla'] / med['laplace']:6.2f}x {bayes_text}")
    print(f"  runs (s): {runs}")


def agreement(label: str, survey: pd.DataFrame, formula: str, join: bool) -> None:
    states = pd.read_csv(CCES / "statelevel_predictors.csv") if join else None
    frame = read_frame(CCES / "poststrat_df.csv", "n", join=states)
    cells, _ = prepare(read_survey(survey, "abortion", join=states), frame, formula)
    start = time.perf_counter()
    fit = InlaEngine().fit(cells)
    inla_seconds = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        start = time.perf_counter()
        post = BayesEngine(seed=1, progress=False).fit(cells)
        bayes_seconds = time.perf_counter() - start
    ours = poststratify(cell_draws(fit, frame), frame, by="state").table
    theirs = poststratify(cell_draws(post, frame), frame, by="state").table
    gap = np.abs(ours["estimate"] - theirs["estimate"]) / theirs["sd"]
    ratio = np.abs(ours["sd"] / theirs["sd"] - 1)
    sigma = post._sigma()
    hyper = np.abs(fit.weights @ fit.reported[:, :sigma.shape[1]] - sigma.mean(axis=0)) / sigma.std(axis=0)
    print(f"{label}: fit in process {inla_seconds:.2f} s (bayes {bayes_seconds:.1f} s, {post.divergences} divergences); "
          f"{len(fit.weights)} points")
    print(f"  state means, |inla - bayes| / bayes sd: median {np.median(gap):.3f}, worst {gap.max():.3f} "
          f"(limits 0.1, 0.35)")
    print(f"  state sds, |inla / bayes - 1|: median {np.median(ratio):.3f}, worst {ratio.max():.3f} (limits 0.1, 0.3)")
    print("  group sds' posterior means, |inla - bayes| / bayes sd: " +
          ", ".join(f"{n} {v:.3f}" for n, v in zip(fit.design.group_names, hyper)) + " (limit 0.25)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bayes", action="store_true", help="skip the bayes engine (its time and agreement)")
    args = parser.parse_args()
    data = pd.read_csv(CCES / "cces_all_clean.csv")
    sample = data.iloc[pd.read_csv(ROOT / "tests/fixtures/cces_biased4000_rows.csv")["row"].to_numpy() - 1]
    folder = Path(tempfile.mkdtemp(prefix="misterp_inla_bench_"))
    sample.to_csv(folder / "sample.csv", index=False)
    print(f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; whole processes, medians of "
          f"{args.repeats} (bayes: one run)")
    print(f"{'model':<36} {'inla s':>7} {'laplace':>8} {'ratio':>7} {'bayes s':>8} {'speedup':>8}")
    timings("seven-term, 4,000 biased rows", folder / "sample.csv", SEVEN, False, args.repeats, not args.no_bayes)
    timings("seven-term, all 59,810 rows", CCES / "cces_all_clean.csv", SEVEN, False, args.repeats, False)
    timings("case study, 4,000 biased rows", folder / "sample.csv", CASE_STUDY, True, args.repeats, not args.no_bayes)
    if not args.no_bayes:
        agreement("seven-term, 4,000 biased rows", sample, SEVEN, False)
        agreement("case study, 4,000 biased rows", sample, CASE_STUDY, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
