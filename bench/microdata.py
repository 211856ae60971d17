"""Microdata -> poststratification table: 10 million PUMS-layout rows, from Parquet and CSV.

Prints wall time and peak memory (the child process's max RSS) of
``frame_from_microdata`` for each format. Targets on the 2-core machine:
under 20 s and under 2 GiB.

    .venv/bin/python bench/microdata.py [--rows 10000000] [--dir /tmp/misterp_pums]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RULES = {
    "state": {"column": "ST", "map": {i: f"S{i:02d}" for i in range(1, 57)}},
    "male": {"column": "SEX", "map": {1: 0.5, 2: -0.5}},
    "age": {"column": "AGEP", "bins": [18, 30, 40, 50, 60, 70], "labels": ["18-29", "30-39", "40-49", "50-59",
                                                                             "60-69", "70+"]},
    "eth": {"sql": "CASE WHEN HISP > 1 THEN 'Hispanic' WHEN RAC1P = 1 THEN 'White' "
                   "WHEN RAC1P = 2 THEN 'Black' ELSE 'Other' END"},
    "educ": {"column": "SCHL", "bins": [1, 16, 18, 21, 22], "labels": ["No HS", "HS", "Some college",
                                                                       "4-Year College", "Post-grad"]},
}

CHILD = """
import json, resource, sys, time
from misterp.data.census import frame_from_microdata
rules = json.loads(sys.argv[2])
rules["state"]["map"] = {int(k): v for k, v in rules["state"]["map"].items()}
rules["male"]["map"] = {int(k): v for k, v in rules["male"]["map"].items()}
start = time.perf_counter()
frame = frame_from_microdata(sys.argv[1], rules, where="AGEP >= 18", memory_limit="1GB")
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
print(json.dumps({"seconds": seconds, "peak_gib": peak, "cells": len(frame.data)}))
"""


def make(path_dir: Path, rows: int) -> dict:
    path_dir.mkdir(parents=True, exist_ok=True)
    files = {"parquet": path_dir / f"pums_{rows}.parquet", "csv": path_dir / f"pums_{rows}.csv"}
    if not all(f.exists() for f in files.values()):
        rng = np.random.default_rng(2026)
        people = pd.DataFrame({
            "ST": rng.integers(1, 57, rows, dtype=np.int16), "AGEP": rng.integers(0, 96, rows, dtype=np.int16),
            "SEX": rng.integers(1, 3, rows, dtype=np.int8), "RAC1P": rng.integers(1, 10, rows, dtype=np.int8),
            "HISP": rng.choice(np.array([1, 1, 1, 2, 3], dtype=np.int8), rows),
            "SCHL": rng.integers(1, 25, rows, dtype=np.int8), "PWGTP": rng.integers(1, 300, rows, dtype=np.int16)})
        people.to_parquet(files["parquet"])
        people.to_csv(files["csv"], index=False)
    return files


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", default="/tmp/misterp_pums")
    args = parser.parse_args()
    files = make(Path(args.dir), args.rows)
    print(f"{args.rows:,} PUMS-layout rows -> cells (state x male x age x eth x educ); targets < 20 s, < 2 GiB")
    for fmt, path in files.items():
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(RULES)],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout)
        print(f"  {fmt:<8} {result['seconds']:6.2f} s   peak {result['peak_gib']:.2f} GiB   "
              f"{result['cells']:,} cells   ({path.stat().st_size / 1e6:,.0f} MB file)")


if __name__ == "__main__":
    main()
