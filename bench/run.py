"""Benchmarks against R: misterp's times beside lme4's, with ratios.

R's times come from bench/r_glmer_times.csv and bench/r_bootstrap_times.csv,
written by tests/fixtures/r/make_cces_lme4.R and bench/r_bootstrap_times.R on
the same kind of machine (2 cores; the date and R version are in the files).
The machine is noisy: we report the median of several runs.

    .venv/bin/python bench/run.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from misterp import Frame, LaplaceEngine, MisterpWarning, Survey, prepare, read_frame
from misterp import bootstrap

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SEVEN = ("abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) "
         "+ (1|male:eth)")


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def r_time(file, **match):
    path = ROOT / "bench" / file
    if not path.exists():
        return None
    table = pd.read_csv(path)
    for key, value in match.items():
        table = table[table[key] == value]
    return float(table["seconds"].iloc[0]) if len(table) else None


def row(task, ours, r_seconds, note=""):
    ratio = f"{r_seconds / ours:8.0f}x" if r_seconds else "      n/a"
    r_text = f"{r_seconds:9.2f}" if r_seconds else "      n/a"
    print(f"{task:<52} {ours:9.3f} {r_text} {ratio}  {note}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", MisterpWarning)  # the seven-term model's singular terms are known
    cces = pd.read_csv(SHARED / "data/cces/cces_all_clean.csv")
    frame = read_frame(SHARED / "data/cces/poststrat_df.csv", "n")
    rows = pd.read_csv(ROOT / "tests/fixtures/cces_sample5000_rows.csv")["row"].to_numpy() - 1
    sample = cces.iloc[rows].reset_index(drop=True)
    article = pd.read_csv(SHARED / "reference/seed_survey.csv")
    article_frame = Frame(pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000] * 4 + [7000]}), "N")

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}; "
          f"medians of {args.repeats} runs; seconds")
    print(f"{'task':<52} {'misterp':>9} {'R':>9} {'ratio':>9}")

    def fit(data, formula):
        cells, _ = prepare(Survey(data, "abortion"), frame, formula)
        return LaplaceEngine().fit(cells)

    row("glmer fit, seven-term CCES, all 59,810 rows", median_time(lambda: fit(cces, SEVEN), args.repeats),
        r_time("r_glmer_times.csv", data="all", model="seven"))
    row("glmer fit, seven-term CCES, 5,000-row sample", median_time(lambda: fit(sample, SEVEN), args.repeats),
        r_time("r_glmer_times.csv", data="sample5000", model="seven"))

    cells, _ = prepare(Survey(article, "response"), article_frame, "response ~ (1|class)")
    article_fit = LaplaceEngine().fit(cells)
    row("bootMer 999 refits, article model", median_time(
        lambda: bootstrap(article_fit, nsim=999, seed=1, progress=False), args.repeats),
        r_time("r_bootstrap_times.csv", task="bootMer_article_999"))
    seven_fit = fit(sample, SEVEN)
    per_refit = r_time("r_bootstrap_times.csv", task="bootMer_cces5000_per_refit")
    # 999 refits take minutes here (see the note in bench/RESULTS.md): time 32 and scale both sides
    boot_time = median_time(lambda: bootstrap(seven_fit, nsim=32, seed=1, progress=False), 1) * 999 / 32
    row("bootMer 999 refits, seven-term CCES 5,000 rows", boot_time, per_refit * 999 if per_refit else None,
        "both extrapolated from per-refit times (32 ours, 20 R's)")

    cli = [str(Path(sys.executable).parent / "misterp"), "fit"]
    article_csv = Path("/tmp/misterp_bench_article.csv")
    frame_csv = Path("/tmp/misterp_bench_frame.csv")
    article.to_csv(article_csv, index=False)
    article_frame.data.to_csv(frame_csv, index=False)
    whole = [cli + ["--survey", str(article_csv), "--frame", str(frame_csv), "--count", "N", "--formula",
                    "response ~ (1|class)", "--bootstrap", "999", "--seed", "1", "--no-progress"],
             cli + ["--survey", str(SHARED / "data/cces/cces_all_clean.csv"), "--frame",
                    str(SHARED / "data/cces/poststrat_df.csv"), "--count", "n", "--formula", SEVEN, "--by", "state"]]
    for label, command, target in [("process: misterp fit --bootstrap 999, article", whole[0], 3.0),
                                   ("process: misterp fit seven-term all rows --by state", whole[1], 4.0)]:
        seconds = median_time(lambda: subprocess.run(command, check=True, capture_output=True), args.repeats)
        row(label, seconds, None, f"target <= {target:.0f} s")


if __name__ == "__main__":
    main()
