"""Structured terms' speed beside Stan: whole `misterp fit` processes on the CCES bym2 state model, and a
county-sized bym2 by the laplace engine.

1. `abortion ~ male + bym2(state) + (1|eth) + (1|educ) + rw1(age)` on the 4,000-row biased CCES sample
   (tests/fixtures/cces_biased4000_rows.csv), `--adjacency us-states --by state`, as whole processes
   (imports, reading, the fit, 4,000 draws of 12,000 frame cells, poststratification): laplace and
   inla (medians of `--repeats`), bayes once (4 chains x 2,000 iterations, compilation included; its
   divergences are read from a second, in-process fit with the same seed). Stan's time is the
   sampling time rstan recorded for the same model, data and priors
   (tests/fixtures/structured_bym2_scalars.csv, from tests/fixtures/r/make_structured_stan.R on this
   machine kind), printed beside it. Targets: bayes <= 72 s, laplace < 3 s.
2. A county-sized graph: 3,100 areas at random points, neighbours by Delaunay triangulation (edges
   shorter than 0.05 of the unit square; a few areas become islands), 20,000 binary answers with a
   smooth spatial effect, `y ~ male + rw1(age) + bym2(county)` by laplace as a whole process
   (target < 30 s), and inla's time on it for comparison.

    .venv/bin/python bench/structured.py [--repeats 3] [--no-bayes]
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

ROOT = Path(__file__).resolve().parents[1]
CCES = ROOT.parent / "shared" / "data" / "cces"
BYM2 = "abortion ~ male + bym2(state) + (1|eth) + (1|educ) + rw1(age)"
COUNTY = "y ~ male + rw1(age) + bym2(county)"
MISTERP = str(Path(sys.executable).parent / "misterp")


def whole_process(survey: Path, frame: Path, count: str, formula: str, engine: str, adjacency: str, by: str) -> float:
    command = [MISTERP, "fit", "--survey", str(survey), "--frame", str(frame), "--count", count, "--formula", formula,
               "--engine", engine, "--adjacency", adjacency, "--by", by, "--quiet", "--no-progress", "--out", os.devnull]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def county_files(folder: Path, n_areas: int = 3100, n: int = 20_000, seed: int = 1) -> tuple[Path, Path, Path]:
    """A simulated county survey, frame and adjacency table (see the module's docstring)."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    points = rng.random((n_areas, 2))
    edges = {tuple(sorted((s[i], s[(i + 1) % 3]))) for s in Delaunay(points).simplices for i in range(3)}
    edges = [(a, b) for a, b in edges if np.linalg.norm(points[a] - points[b]) < 0.05]
    names = np.array([f"c{k:04d}" for k in range(n_areas)])
    effect = 0.5 * np.sin(6 * points[:, 0]) * np.cos(4 * points[:, 1])
    area, male, age = rng.integers(0, n_areas, n), rng.integers(0, 2, n), rng.integers(0, 6, n)
    eta = -0.2 + effect[area] + 0.3 * (male - 0.5) + 0.1 * (age - 2.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    paths = folder / "county_survey.csv", folder / "county_frame.csv", folder / "county_adjacency.csv"
    pd.DataFrame({"y": y, "county": names[area], "male": male, "age": age}).to_csv(paths[0], index=False)
    grid = pd.MultiIndex.from_product([names, [0, 1], range(6)], names=["county", "male", "age"]).to_frame(index=False)
    grid.assign(N=100.0).to_csv(paths[1], index=False)
    pd.DataFrame({"area": names[[a for a, _ in edges]], "neighbour": names[[b for _, b in edges]]}).to_csv(paths[2],
                                                                                                         index=False)
    return paths


def stan_reference() -> dict:
    path = ROOT / "tests/fixtures/structured_bym2_scalars.csv"
    if not path.exists():
        return {}
    table = pd.read_csv(path)
    return dict(zip(table["name"], table["value"]))


def bayes_divergences(survey: pd.DataFrame) -> int:
    from misterp import Frame, MisterpWarning, Survey
    from misterp.data.adjacency import read_adjacency
    from misterp.engines.bayes import BayesEngine
    from misterp.model.cells import prepare

    frame = Frame(pd.read_csv(CCES / "poststrat_df.csv"), "n")
    cells, _ = prepare(Survey(survey, "abortion"), frame, BYM2, adjacency=read_adjacency("us-states"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        return BayesEngine(seed=1, progress=False).fit(cells).divergences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bayes", action="store_true", help="skip the bayes engine")
    args = parser.parse_args()
    data = pd.read_csv(CCES / "cces_all_clean.csv")
    sample = data.iloc[pd.read_csv(ROOT / "tests/fixtures/cces_biased4000_rows.csv")["row"].to_numpy() - 1]
    folder = Path(tempfile.mkdtemp(prefix="misterp_structured_bench_"))
    sample.to_csv(folder / "sample.csv", index=False)
    print(f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; whole processes, medians of "
          f"{args.repeats} (bayes: one run)")
    frame = CCES / "poststrat_df.csv"
    times = {e: [whole_process(folder / "sample.csv", frame, "n", BYM2, e, "us-states", "state")
                 for _ in range(args.repeats)] for e in ("laplace", "inla")}
    if not args.no_bayes:
        times["bayes"] = [whole_process(folder / "sample.csv", frame, "n", BYM2, "bayes", "us-states", "state")]
    stan = stan_reference()
    print(f"\n{BYM2}, 4,000 rows, by state")
    for engine, runs in times.items():
        print(f"  {engine:<8} {statistics.median(runs):7.2f} s   (runs: {', '.join(f'{t:.2f}' for t in runs)})")
    if stan:
        print(f"  Stan     {float(stan['seconds']):7.1f} s   sampling alone, {int(float(stan['iter']))} iterations x 4 "
              f"chains at adapt_delta {stan['adapt_delta']}, {int(float(stan['divergences']))} divergences "
              "(tests/fixtures/structured_bym2_scalars.csv)")
        if "bayes" in times:
            print(f"  Stan / bayes: {float(stan['seconds']) / times['bayes'][0]:.1f}x")
    if not args.no_bayes:
        print(f"  bayes divergences (in process, seed 1): {bayes_divergences(sample)}")
    survey, county_frame, adjacency = county_files(folder)
    print(f"\n{COUNTY}, 3,100 simulated counties, 20,000 rows, by county")
    for engine in ("laplace", "inla"):
        runs = [whole_process(survey, county_frame, "N", COUNTY, engine, str(adjacency), "county")
                for _ in range(args.repeats if engine == "laplace" else 1)]
        print(f"  {engine:<8} {statistics.median(runs):7.2f} s   (runs: {', '.join(f'{t:.2f}' for t in runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
