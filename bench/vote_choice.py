"""Categorical and ordinal outcomes' speed beside brms: whole `misterp fit` processes.

1. carData's Chile plebiscite survey (tests/fixtures/chile_survey.csv, 2,521 respondents, four answers),
   `vote ~ sex + education + (1|region) + (1|age_group)` with `--family categorical --by region`:
   laplace (median of `--repeats`) and bayes (4 chains x 2,000 iterations, compilation included, once),
   as whole processes (imports, reading, the fit, the draws, poststratification). brms's time is the
   one tests/fixtures/r/make_categorical.R recorded for `categorical()` with its default priors on the
   same data on this machine kind (tests/fixtures/categorical_brms_scalars.csv: compilation and sampling,
   one core). Targets: bayes <= 120 s (10x faster than brms's about 1,200 s), laplace < 5 s.
2. carData's World Values Survey (tests/fixtures/wvs_survey.csv, 5,381 respondents, three ordered levels),
   `poverty ~ religion + degree + gender + (1|country) + (1|age_group)` with `--family ordinal`, likewise
   beside brms's `cumulative()` (tests/fixtures/ordinal_brms_scalars.csv).

    .venv/bin/python bench/vote_choice.py [--repeats 3] [--no-bayes]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MISTERP = str(Path(sys.executable).parent / "misterp")
MODELS = {
    "categorical": ("chile", "vote ~ sex + education + (1|region) + (1|age_group)", "region", []),
    "ordinal": ("wvs", "poverty ~ religion + degree + gender + (1|country) + (1|age_group)", "country",
                ["--levels", "Too Little,About Right,Too Much"]),
}


def whole_process(family: str, engine: str) -> float:
    name, formula, by, extra = MODELS[family]
    command = [MISTERP, "fit", "--survey", str(FIXTURES / f"{name}_survey.csv"), "--frame",
               str(FIXTURES / f"{name}_frame.csv"), "--count", "n", "--family", family, "--formula", formula,
               "--engine", engine, "--by", by, "--quiet", "--no-progress", "--out", os.devnull, *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def brms_seconds(family: str) -> str:
    path = FIXTURES / f"{family}_brms_scalars.csv"
    if not path.exists():
        return "not recorded"
    scalars = pd.read_csv(path).set_index("name")["value"]
    return f"{float(scalars['wall_seconds']):.0f} s wall ({float(scalars['sampling_seconds']):.0f} s sampling)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bayes", action="store_true")
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    for family in MODELS:
        laplace = [whole_process(family, "laplace") for _ in range(args.repeats)]
        print(f"{family}: laplace {statistics.median(laplace):.2f} s as a whole process "
              f"(median of {', '.join(f'{t:.2f}' for t in laplace)})")
        if not args.no_bayes:
            print(f"{family}: bayes {whole_process(family, 'bayes'):.1f} s as a whole process, compilation included")
        print(f"{family}: brms {brms_seconds(family)}")


if __name__ == "__main__":
    main()
