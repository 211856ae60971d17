"""misterp batch throughput: jobs per minute against the number of workers.

20 laplace models of the CCES data: the 59,810 respondents split at random (seeded) into four pseudo
waves of about 15,000, times five formulas (two to seven grouping terms, and the case study's state-level
predictors), each poststratified by state to the 12,000-cell frame. Each row is one
run of the whole spec into a fresh results folder: in this process (serial), then on a Dask
LocalCluster of each --workers count (started before the clock, its start shown apart), and in local
processes (the fallback without Dask, whose pool starts inside each run). The first run is cold (each
worker imports misterp and reads the files at its first job); the warm runs that follow (other seeds,
so other keys) reuse the workers and their cached tables.

    .venv/bin/python bench/batch.py [--workers 1 2 4 8] [--warm 3] [--scheduler ADDRESS]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from misterp.apps.batch import load_spec, local_cluster, read_results, run

CCES = Path(__file__).resolve().parents[2] / "shared" / "data" / "cces"
FORMULAS = [
    "~ male + (1|state) + (1|eth)",
    "~ male + (1|state) + (1|eth) + (1|educ) + (1|age)",
    "~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) + (1|male:eth)",
    "~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) + repvote "
    "+ factor(region)",
    "~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age)",
]


def write_specs(folder: Path, seeds) -> list[Path]:
    """The CCES survey with a seeded 'wave' column, and the 4 x 5 spec over it once per seed (new keys)."""
    survey = pd.read_csv(CCES / "cces_all_clean.csv")
    survey["wave"] = np.random.default_rng(2018).integers(2015, 2019, len(survey))
    survey.to_csv(folder / "cces_waves.csv", index=False)
    paths = []
    for seed in seeds:
        spec = {"survey": "cces_waves.csv", "waves": {"column": "wave", "values": [2015, 2016, 2017, 2018]},
                "frame": str(CCES / "poststrat_df.csv"), "count": "n",
                "join": [str(CCES / "statelevel_predictors.csv")], "outcomes": ["abortion"], "formulas": FORMULAS,
                "engine": "laplace", "options": {"by": ["state"]}, "seed": seed, "out": f"results{seed}"}
        paths.append(folder / f"spec{seed}.yaml")
        paths[-1].write_text(yaml.safe_dump(spec, sort_keys=False))
    return paths


def timed(specs, out: Path, **how) -> tuple[float, float, float, pd.DataFrame]:
    """Run the first spec (cold: the workers' first jobs read the files) then the others (warm, on the
    same workers); returns the cold wall time, the median warm one, the median job time and the
    first run's results."""
    walls = []
    for spec in specs:
        start = time.perf_counter()
        summary = run(spec, out=out / Path(spec).stem, progress=False, quiet=True, **how)
        walls.append(time.perf_counter() - start)
        assert summary.scheduled == 20 and not summary.failed, summary.failed
    first = read_results(out / Path(specs[0]).stem)
    return walls[0], statistics.median(walls[1:]), first.drop_duplicates("key")["seconds"].median(), first


def show(label, n, startup, cold, warm, job):
    print(f"{label:<22} {n:>7} {startup:>9.1f} {cold:>7.1f} {20 / cold * 60:>8.0f} {warm:>7.1f} "
          f"{20 / warm * 60:>8.0f} {job:>12.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warm", type=int, default=3, help="warm runs after the first (median shown)")
    parser.add_argument("--scheduler", help="also run on this Dask scheduler (its workers, as they are)")
    args = parser.parse_args()
    import distributed

    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"dask {distributed.__version__}, {time.strftime('%Y-%m-%d')}, load average "
          f"{os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        specs = write_specs(folder, range(1, args.warm + 2))
        print(f"{len(load_spec(specs[0]).jobs)} laplace jobs per run (4 waves of ~15,000 CCES respondents x 5 "
              "formulas, by state); cold: the first run, warm: the median of the next runs (other seeds, "
              "same workers)\n")
        print(f"{'backend':<22} {'workers':>7} {'startup s':>9} {'cold s':>7} {'jobs/min':>8} {'warm s':>7} "
              f"{'jobs/min':>8} {'median job s':>12}")
        *times, reference = timed(specs, folder / "serial", backend="serial")
        show("serial (this process)", 1, 0.0, *times)
        for n in args.workers:
            start = time.perf_counter()
            with local_cluster(n, dashboard=":0") as cluster, distributed.Client(cluster) as client:
                startup = time.perf_counter() - start
                *times, table = timed(specs, folder / f"dask{n}", client=client)
            show("dask LocalCluster", n, startup, *times)
            keep = [c for c in table.columns if c not in ("worker", "seconds")]
            assert table[keep].equals(reference[keep]), f"{n} Dask workers gave other results than the serial run"
        for n in args.workers:  # the fallback starts its processes inside each run: no warm workers
            *times, _ = timed(specs, folder / f"processes{n}", workers=n, backend="processes")
            show("local processes", n, 0.0, *times)
        if args.scheduler:
            with distributed.Client(args.scheduler) as client:
                *times, _ = timed(specs, folder / "remote", client=client)
                show("dask --scheduler", len(client.scheduler_info()["workers"]), 0.0, *times)


if __name__ == "__main__":
    main()
