"""A PLACES-like county estimate: 400,000 respondents, a frame of about 10 million tract-level cells.

The simulation: 3,142 counties in 50 states, each county split into tracts (about 105,000 in all),
each tract into 96 demographic cells (8 ages x 2 sexes x 6 races) with populations that differ by
county (each county has its own race mix). The outcome's log-odds is additive in sex, a county-level
covariate, and county, state, age and race effects; respondents are drawn more from some counties
than others and more from older ages (so raw county means are biased and noisy, as BRFSS's are).
The truth is each county's population-weighted prevalence over the frame.

Stages, each timed with its peak memory so far (in a child process), then whole processes of the
plain command line under /usr/bin/time -v: ``misterp fit`` on the Parquet frame and on the same
frame as a 10-million-row CSV file, ``misterp fit --calibrate`` to the true state prevalences, and
``misterp report``, each streaming the frame; then lme4 on the same data (glmer on the survey's
collapsed cells, then predict and poststratify on the frame collapsed over tracts):

    .venv/bin/python bench/places.py [--dir /tmp/misterp_places] [--tracts 105000] [--repeat 3] [--no-lme4]

Files go to --dir (never into the repository; the CSV frame is about 600 MB). Targets: whole
process <= 10 min and <= 8 GiB, the report <= 2 GiB, every frame county returned, county intervals
cover >= 85%, county RMSE below the raw means'.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

FORMULA = "y ~ male + covariate + (1|county) + (1|state) + (1|age) + (1|race)"
COUNTIES, STATES, AGES, RACES = 3142, 50, 8, 6


def simulate(out: Path, tracts: int, respondents: int = 400_000, seed: int = 20261127) -> dict:
    """Write survey.parquet (one row per respondent), frame.parquet (tract cells), truth.csv (county
    prevalence) and the collapsed tables lme4 reads; returns sizes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    state_of = np.sort(np.concatenate([np.arange(STATES), rng.integers(0, STATES, COUNTIES - STATES)]))
    covariate = rng.normal(0, 1, COUNTIES)
    county_effect = rng.normal(0, 0.25, COUNTIES)
    state_effect = rng.normal(0, 0.3, STATES)
    age_effect = np.linspace(-0.8, 0.8, AGES)
    race_effect = rng.normal(0, 0.4, RACES)
    # demographic cells: age slowest, then male, then race
    age = np.repeat(np.arange(AGES), 2 * RACES)
    male = np.tile(np.repeat([0, 1], RACES), AGES)
    race = np.tile(np.arange(RACES), 2 * AGES)
    eta = (-1.0 + 0.2 * male[None, :] + 0.6 * covariate[:, None] + county_effect[:, None]
           + state_effect[state_of][:, None] + age_effect[age][None, :] + race_effect[race][None, :])
    p_true = 1 / (1 + np.exp(-eta))  # (counties, 96)

    # tracts: every county has one, the rest spread by a skewed county size
    size = rng.lognormal(0, 1.0, COUNTIES)
    n_tracts = 1 + rng.multinomial(tracts - COUNTIES, size / size.sum())
    tract_county = np.repeat(np.arange(COUNTIES), n_tracts)
    race_mix = rng.dirichlet(np.full(RACES, 0.8), COUNTIES)  # each county's race shares
    age_mix = np.full(AGES, 1 / AGES)
    share = age_mix[age][None, :] * 0.5 * race_mix[:, race]  # (counties, 96)
    tract_pop = rng.gamma(8, 500, len(tract_county))  # about 4,000 people a tract
    counts = rng.poisson(tract_pop[:, None] * share[tract_county]).astype(np.int32)  # (tracts, 96)
    n_rows = counts.size
    cell_pop = np.zeros((COUNTIES, 2 * AGES * RACES))
    np.add.at(cell_pop, tract_county, counts)
    truth = (cell_pop * p_true).sum(axis=1) / cell_pop.sum(axis=1)

    county_names = np.array([f"c{c:04d}" for c in range(COUNTIES)])
    state_names = np.array([f"s{s:02d}" for s in range(STATES)])
    age_names, race_names = np.array([f"age{a}" for a in range(AGES)]), np.array([f"race{r}" for r in range(RACES)])

    def strings(codes, names):  # a plain string column, made in Arrow (no 10 million Python strings)
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(names)).cast(pa.string())

    row_county = np.repeat(tract_county, counts.shape[1])
    cell = np.tile(np.arange(counts.shape[1]), len(tract_county))
    frame = pa.table({
        "county": strings(row_county, county_names), "state": strings(state_of[row_county], state_names),
        "tract": pa.array(np.repeat(np.arange(len(tract_county)), counts.shape[1]).astype(np.int32)),
        "age": strings(age[cell], age_names), "male": pa.array(male[cell].astype(np.int8)),
        "race": strings(race[cell], race_names), "covariate": pa.array(covariate[row_county]),
        "n": pa.array(counts.ravel())})
    pq.write_table(frame, out / "frame.parquet", row_group_size=1_000_000)
    import pyarrow.csv as pc

    pc.write_csv(frame, out / "frame.csv")
    del frame, row_county, cell

    # respondents: counties oversampled at random, older people more willing to answer
    reach = cell_pop.sum(axis=1) * rng.lognormal(0, 1.5, COUNTIES)
    where = rng.choice(COUNTIES, respondents, p=reach / reach.sum())
    willing = cell_pop * np.exp(0.25 * age)[None, :]
    cdf = np.cumsum(willing / willing.sum(axis=1, keepdims=True), axis=1)
    which = (cdf[where] < rng.random(respondents)[:, None]).sum(axis=1).clip(max=cdf.shape[1] - 1)
    y = (rng.random(respondents) < p_true[where, which]).astype(np.int8)
    survey = pd.DataFrame({"y": y, "county": county_names[where], "state": state_names[state_of[where]],
                           "age": age_names[age[which]], "male": male[which].astype(np.int8),
                           "race": race_names[race[which]], "covariate": covariate[where]})
    survey.to_parquet(out / "survey.parquet", index=False)
    keys = ["county", "state", "age", "male", "race", "covariate"]
    survey.groupby(keys, as_index=False).agg(y=("y", "sum"), n=("y", "size")).to_csv(out / "survey_cells.csv",
                                                                                      index=False)
    collapsed = pd.DataFrame({"county": np.repeat(county_names, cell_pop.shape[1]),
                              "state": np.repeat(state_names[state_of], cell_pop.shape[1]),
                              "age": np.tile(age_names[age], COUNTIES), "male": np.tile(male, COUNTIES),
                              "race": np.tile(race_names[race], COUNTIES),
                              "covariate": np.repeat(covariate, cell_pop.shape[1]), "N": cell_pop.ravel()})
    collapsed.to_csv(out / "frame_cells.csv", index=False)
    pd.DataFrame({"county": county_names, "truth": truth}).to_csv(out / "truth.csv", index=False)
    state_pop = np.bincount(state_of, weights=cell_pop.sum(axis=1), minlength=STATES)
    state_truth = np.bincount(state_of, weights=truth * cell_pop.sum(axis=1), minlength=STATES) / state_pop
    pd.DataFrame({"state": state_names, "target": state_truth}).to_csv(out / "truth_state.csv", index=False)
    return {"frame_rows": int(n_rows), "tracts": int(len(tract_county)), "respondents": respondents,
            "counties_with_respondents": int(len(np.unique(where))), "frame_cells_collapsed": len(collapsed)}


STAGES = """
import json, resource, sys, time
t0 = time.perf_counter()
from misterp.data.frame import FrameChunks
from misterp.data.survey import read_survey
from misterp.engines.laplace import LaplaceEngine
from misterp.model.cells import prepare
from misterp.results.compare import add_comparisons, frame_margins
from misterp.results.stream import poststratify_stream, scan_frame
folder, formula = sys.argv[1], sys.argv[2]
stages, last = [], time.perf_counter()
def stage(name):
    global last
    now = time.perf_counter()
    stages.append({"stage": name, "seconds": now - last,
                   "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2})
    last = now
stage("import")
survey = read_survey(folder + "/survey.parquet", "y")
stage("read survey")
cells, _ = prepare(survey, None, formula)
stage("collapse survey (%d cells)" % cells.n_cells)
chunks = FrameChunks(folder + "/frame.parquet", "n")
margins = frame_margins(cells.design)
cover = scan_frame(cells, chunks, margins)
stage("scan frame: checks, coverage, margins (%d cells)" % cover["frame_cells"])
fit = LaplaceEngine().fit(cells)
stage("fit (laplace, sparse path)")
estimate = poststratify_stream(fit, chunks, by=[["county"]], seed=1)[0]
stage("poststratify 1,000 draws by county (streamed)")
estimate, _ = add_comparisons(estimate, survey, margins, cells.design)
stage("raw, weighted and raked comparisons")
print(json.dumps(stages))
"""

LME4 = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
cells <- read.csv(file.path(args[1], "survey_cells.csv"))
frame <- read.csv(file.path(args[1], "frame_cells.csv"))
t0 <- proc.time()[["elapsed"]]
fit <- glmer(cbind(y, n - y) ~ male + covariate + (1|county) + (1|state) + (1|age) + (1|race),
             data = cells, family = binomial)
t1 <- proc.time()[["elapsed"]]
p <- predict(fit, newdata = frame, type = "response", allow.new.levels = TRUE)
est <- tapply(frame$N * p, frame$county, sum) / tapply(frame$N, frame$county, sum)
t2 <- proc.time()[["elapsed"]]
write.csv(data.frame(county = names(est), lme4 = as.numeric(est)), file.path(args[1], "lme4_county.csv"),
          row.names = FALSE)
cat(sprintf('{"fit_s": %.2f, "poststratify_s": %.2f, "cells": %d, "frame_cells": %d, "logLik": %.4f}\n',
            t1 - t0, t2 - t1, nrow(cells), nrow(frame), as.numeric(logLik(fit))))
"""


def whole_process(folder: Path, frame: str = "frame.parquet", command: str = "fit", *extra) -> dict:
    """A misterp command with default options (seed 1) under /usr/bin/time -v: wall time and max RSS."""
    out = folder / f"county_{command}_{frame.replace('.', '_')}{'_calibrated' if extra else ''}.csv"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "misterp", command, "--survey", str(folder / "survey.parquet"),
           "--frame", str(folder / frame), "--count", "n", "--by", "county", "--formula", FORMULA, "--seed", "1",
           "--out", str(out), *extra]
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(run.stderr[-3000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    return {"seconds": wall, "peak_gib": rss / 1024 ** 2, "table": out,
            "notes": [line for line in run.stderr.splitlines() if line.startswith("misterp:")]}


WHOLE = {  # name: (frame file, command, extra options)
    "misterp fit, Parquet frame": ("frame.parquet", "fit"),
    "misterp fit, CSV frame (10,080,000 rows, 0.6 GB)": ("frame.csv", "fit"),
    "misterp fit --calibrate to the true state prevalences, Parquet frame": ("frame.parquet", "fit", "--calibrate",
                                                                            "{dir}/truth_state.csv"),
    "misterp report (HTML), Parquet frame": ("frame.parquet", "report", "--html", "{dir}/report.html"),
}


def score(table: pd.DataFrame, truth: pd.DataFrame) -> dict:
    t = truth.merge(table, on="county", how="left")
    covered = (t["lower"] <= t["truth"]) & (t["truth"] <= t["upper"])
    has_raw = t["raw_mean"].notna()

    def rmse(col, rows=slice(None)):
        return float(np.sqrt(((t.loc[rows, col] - t.loc[rows, "truth"]) ** 2).mean()))

    return {"counties": len(t), "returned": int(t["estimate"].notna().sum()), "coverage": float(covered.mean()),
            "rmse_mrp": rmse("estimate"), "rmse_mrp_with_raw": rmse("estimate", has_raw),
            "rmse_raw": rmse("raw_mean", has_raw), "rmse_raked": rmse("raked_mean", has_raw),
            "with_raw": int(has_raw.sum()), "median_width": float((t["upper"] - t["lower"]).median())}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/tmp/misterp_places")
    parser.add_argument("--tracts", type=int, default=105_000)
    parser.add_argument("--no-lme4", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each whole process (the median time is shown)")
    parser.add_argument("--simulate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    if args.simulate_only:
        print(json.dumps(simulate(folder, args.tracts)))
        return
    start = time.perf_counter()
    # in a child: a process forked from a large one starts with its high-water mark of memory
    sizes = json.loads(subprocess.run([sys.executable, __file__, "--simulate-only", "--dir", str(folder), "--tracts",
                                       str(args.tracts)], capture_output=True, text=True, check=True).stdout)
    print(f"{datetime.date.today()} on {platform.node()} ({platform.processor() or platform.machine()}); "
          f"simulated in {time.perf_counter() - start:.0f} s: {json.dumps(sizes)}")
    stages = json.loads(subprocess.run([sys.executable, "-c", STAGES, str(folder), FORMULA], capture_output=True,
                                       text=True, check=True).stdout)
    print("\n| stage (one process) | seconds | peak so far (GiB) |\n|---|---:|---:|")
    for s in stages:
        print(f"| {s['stage']} | {s['seconds']:.1f} | {s['peak_gib']:.2f} |")
    truth = pd.read_csv(folder / "truth.csv")
    print("\n| whole process (--by county, default options, seed 1) | seconds | peak (GiB) | coverage | RMSE |"
          "\n|---|---:|---:|---:|---:|")
    runs = {}
    for name, (frame, command, *extra) in WHOLE.items():
        repeats = [whole_process(folder, frame, command, *[e.format(dir=folder) for e in extra])
                   for _ in range(args.repeat)]
        runs[name] = run = repeats[0]
        scores = score(pd.read_csv(run["table"]), truth)
        seconds = [r["seconds"] for r in repeats]
        print(f"| {name} | {np.median(seconds):.0f}{f' ({min(seconds):.0f}-{max(seconds):.0f})' * (args.repeat > 1)} | "
              f"{max(r['peak_gib'] for r in repeats):.2f} | {scores['coverage']:.1%} | {scores['rmse_mrp']:.4f} |")
    whole = runs["misterp fit, Parquet frame"]
    columns = ["estimate", "sd", "lower", "upper"]
    csv = pd.read_csv(runs["misterp fit, CSV frame (10,080,000 rows, 0.6 GB)"]["table"]).set_index("county")[columns]
    gap = (csv - pd.read_csv(whole["table"]).set_index("county")[columns]).abs().to_numpy().max()
    print(f"CSV frame against Parquet frame: max |difference| of the county estimates, sds and intervals {gap:.1e}")
    for note in whole["notes"]:
        print("  " + note)
    scores = score(pd.read_csv(whole["table"]), truth)
    print(f"counties: {scores['returned']} of {scores['counties']} returned; interval coverage "
          f"{scores['coverage']:.1%} (median width {scores['median_width']:.3f}); RMSE: MRP "
          f"{scores['rmse_mrp']:.4f} (all), {scores['rmse_mrp_with_raw']:.4f} on the {scores['with_raw']} counties "
          f"with respondents, raw means {scores['rmse_raw']:.4f}, raked {scores['rmse_raked']:.4f}")
    if not args.no_lme4:
        run = subprocess.run(["Rscript", "-e", LME4, str(folder)], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(run.stderr[-3000:])
        anchor = json.loads(run.stdout.strip().splitlines()[-1])
        ours = pd.read_csv(whole["table"]).merge(pd.read_csv(folder / "lme4_county.csv"), on="county")
        gap = float((ours["estimate"] - ours["lme4"]).abs().max())
        both = truth.merge(ours, on="county")
        lme4_rmse = float(np.sqrt(((both["lme4"] - both["truth"]) ** 2).mean()))
        print(f"lme4 (R, one process): glmer on {anchor['cells']:,} survey cells {anchor['fit_s']:.1f} s; predict "
              f"and poststratify on {anchor['frame_cells']:,} collapsed frame cells {anchor['poststratify_s']:.1f} s; "
              f"county RMSE {lme4_rmse:.4f}; max |misterp - lme4| county estimate {gap:.2e}")


if __name__ == "__main__":
    main()
