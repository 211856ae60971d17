"""Large random-effect terms: the sparse path's data sets, fixtures and timings.

Two simulated surveys, seeded, written to tests/fixtures/ for lme4 (tests/fixtures/r/make_sparse.R):

- county: a binomial survey of 3,000 counties in 50 states (respondents by county, state, sex,
  age and ethnicity), as cells: ``y`` answers yes of ``n``. Counties' sample sizes are skewed, as
  real ones are (many with one or two respondents).
- crossed: a gaussian outcome of 70,000 students crossed in 3,000 schools and 1,000 home
  neighbourhoods; a school draws mostly from nearby neighbourhoods, so the two factors are crossed
  but not at random (as in real data; lme4's CHOLMOD, and ours, exploit it).
- slopes: 45,000 respondents in 3,000 counties of 50 states with a numeric x, for a correlated
  county slope (1 + x | county), binomial (y) and gaussian (score).
- rating: a gaussian rating design without locality (73,000 ratings, 3,000 raters x 1,100 rated
  assigned at random, each rated in one of 14 units, a binary x per rating, so that unit:x has 28
  levels); the survey's own rows are its frame (n = 1), estimated by unit.

    .venv/bin/python bench/sparse.py --write-fixtures   # the CSVs
    .venv/bin/python bench/sparse.py [--repeats 3]      # timings: dense against sparse, per evaluation and fit
    .venv/bin/python bench/sparse.py --whole rating [--src DIR] [--with-r]
        # whole `misterp fit` processes (of the checkout whose src/ is DIR), and lme4's in one R process
    .venv/bin/python bench/sparse.py --whole slopes [--with-r]   # the county slope model's fits
    .venv/bin/python bench/sparse.py --whole county-boot [--src DIR] [--with-r]   # 200 bootstrap refits
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from run import median_time  # bench/run.py's median of repeated timings

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
COUNTY_FORMULA = "cbind(y, n - y) ~ male + (1|county) + (1|state) + (1|age) + (1|eth)"
CROSSED_FORMULA = "score ~ x + male + (1|school) + (1|hood)"
RATING_FORMULA = "y ~ x + (1|rater) + (1|rated) + (1|unit:x)"
SLOPES_GLMER = "y ~ x + (1 + x|county) + (1|state)"
SLOPES_LMER = "score ~ x + (1 + x|county) + (1|state)"


def county_survey(seed: int = 20261128, counties: int = 3000, states: int = 50, respondents: int = 60000):
    """Cells of a binomial survey by county, state, male, age and eth; columns y (yes) and n."""
    rng = np.random.default_rng(seed)
    state_of = np.sort(rng.integers(0, states, counties))
    weight = rng.lognormal(0.0, 1.2, counties)
    county = rng.choice(counties, respondents, p=weight / weight.sum())
    county = np.concatenate([np.arange(counties), county[counties:]])  # every county seen
    male = rng.integers(0, 2, respondents)
    age = rng.choice(4, respondents, p=[0.2, 0.3, 0.3, 0.2])
    eth = rng.choice(4, respondents, p=[0.6, 0.15, 0.15, 0.1])
    eta = (-0.3 + 0.25 * male + rng.normal(0, 0.3, counties)[county] + rng.normal(0, 0.4, states)[state_of[county]]
           + np.array([-0.3, -0.1, 0.1, 0.3])[age] + np.array([0.0, 0.5, -0.4, 0.2])[eth])
    y = rng.random(respondents) < 1 / (1 + np.exp(-eta))
    rows = pd.DataFrame({"county": [f"c{c:04d}" for c in county], "state": [f"s{s:02d}" for s in state_of[county]],
                         "male": male, "age": [f"a{a}" for a in age], "eth": [f"e{e}" for e in eth], "y": y.astype(int)})
    cells = rows.groupby(["county", "state", "male", "age", "eth"], as_index=False).agg(y=("y", "sum"), n=("y", "size"))
    return cells


def crossed_survey(seed: int = 20261129, schools: int = 3000, hoods: int = 1000, students: int = 70000):
    """Rows of a gaussian survey crossed in school and hood; columns score, x, male."""
    rng = np.random.default_rng(seed)
    school = np.concatenate([np.arange(schools), rng.integers(0, schools, students - schools)])
    # a school's students live near it: hood around the school's position on the same line
    hood = np.rint(school * hoods / schools + rng.normal(0, 3, students)).astype(int) % hoods
    cover = schools + np.arange(hoods)  # every hood seen, from a school near it
    school[cover], hood[cover] = np.arange(hoods) * schools // hoods, np.arange(hoods)
    x = np.round(rng.normal(0, 1, students), 2)
    male = rng.integers(0, 2, students)
    score = (1.0 + 0.5 * x - 0.2 * male + rng.normal(0, 0.6, schools)[school] + rng.normal(0, 0.4, hoods)[hood]
             + rng.normal(0, 1.0, students))
    return pd.DataFrame({"school": [f"k{s:04d}" for s in school], "hood": [f"h{h:04d}" for h in hood],
                         "x": x, "male": male, "score": np.round(score, 4)})


def rating_survey(seed: int = 20261201, raters: int = 3000, rated: int = 1100, units: int = 14,
                  ratings: int = 73000) -> pd.DataFrame:
    """Rows of a crossed rating design without locality; columns rater, rated, unit, x, y (each
    (rater, rated) pair once, so the rows are distinct cells and serve as their own frame).

    Each rating's rater and rated are drawn at random over the whole data (rated ones with
    skewed popularity), so the rated block of H fills in whatever the elimination order; y is a
    1-5 rating (a rounded latent score), x a binary attribute of the rating.
    """
    rng = np.random.default_rng(seed)
    popularity = rng.lognormal(0.0, 0.8, rated)
    extra = ratings + ratings // 10  # a rater rates a rated one at most once: draw more, drop repeats
    who = np.concatenate([np.arange(raters), rng.integers(0, raters, extra - raters)])
    what = rng.choice(rated, extra, p=popularity / popularity.sum())
    what[:rated] = rng.permutation(rated)  # every rated one seen
    first = np.sort(np.unique(who * rated + what, return_index=True)[1])[:ratings]
    who, what = who[first], what[first]
    unit_of = rng.integers(0, units, rated)
    x = (rng.random(ratings) < 0.4).astype(int)
    unit = unit_of[what]
    latent = (3.2 - 0.1 * x + rng.normal(0, 0.3, raters)[who] + rng.normal(0, 0.5, rated)[what]
              + rng.normal(0, 0.15, (units, 2))[unit, x] + rng.normal(0, 1.1, ratings))
    y = np.clip(np.rint(latent), 1, 5).astype(int)
    return pd.DataFrame({"rater": [f"r{i:04d}" for i in who], "rated": [f"d{i:04d}" for i in what],
                         "unit": [f"u{i:02d}" for i in unit], "x": x, "y": y})


def slopes_survey(seed: int = 20261202, counties: int = 3000, states: int = 50, respondents: int = 45000):
    """Rows of a survey with a correlated county slope on a numeric x: columns county, state, x (one
    decimal), y (0/1, logit) and score (gaussian), each with its own county intercepts and slopes
    (sds 0.4 and 0.25, correlation 0.3 for y; 0.5 and 0.3, -0.4 for score) and state effects."""
    rng = np.random.default_rng(seed)
    state_of = np.sort(rng.integers(0, states, counties))
    weight = rng.lognormal(0.0, 1.0, counties)
    county = np.concatenate([np.arange(counties), rng.choice(counties, respondents - counties,
                                                              p=weight / weight.sum())])
    x = np.round(rng.normal(0.0, 1.0, respondents), 1)

    def effects(sd_int, sd_slope, cor):
        cov = [[sd_int ** 2, cor * sd_int * sd_slope], [cor * sd_int * sd_slope, sd_slope ** 2]]
        return rng.multivariate_normal([0.0, 0.0], cov, counties)

    b = effects(0.4, 0.25, 0.3)
    eta = -0.2 + 0.5 * x + b[county, 0] + b[county, 1] * x + rng.normal(0, 0.3, states)[state_of[county]]
    y = (rng.random(respondents) < 1 / (1 + np.exp(-eta))).astype(int)
    b = effects(0.5, 0.3, -0.4)
    score = (1.0 + 0.5 * x + b[county, 0] + b[county, 1] * x + rng.normal(0, 0.3, states)[state_of[county]]
             + rng.normal(0, 1.0, respondents))
    return pd.DataFrame({"county": [f"c{c:04d}" for c in county], "state": [f"s{s:02d}" for s in state_of[county]],
                         "x": x, "y": y, "score": np.round(score, 3)})


def write_fixtures():
    county_survey().to_csv(FIXTURES / "sparse_county.csv", index=False)
    crossed_survey().to_csv(FIXTURES / "sparse_crossed.csv", index=False)
    rating_survey().to_csv(FIXTURES / "sparse_rating.csv", index=False)
    slopes_survey().to_csv(FIXTURES / "sparse_slopes.csv", index=False)


def whole_rating(repeats: int, src: str | None, with_r: bool) -> None:
    """Wall seconds of whole `misterp fit` processes on the rating design, the survey's rows as the
    frame (n = 1), estimates by unit; then lme4's lmer, predictions and estimates in one R process."""
    with tempfile.TemporaryDirectory() as tmp:
        survey = FIXTURES / "sparse_rating.csv"
        pd.read_csv(survey).drop(columns="y").assign(n=1).to_csv(Path(tmp) / "frame.csv", index=False)
        command = [str(Path(sys.executable).parent / "misterp"), "fit", "--survey", str(survey), "--frame",
                   str(Path(tmp) / "frame.csv"), "--count", "n", "--formula", RATING_FORMULA, "--family", "gaussian",
                   "--engine", "laplace", "--by", "unit", "--out", str(Path(tmp) / "est.csv"), "--quiet"]
        times = _timed_runs(command, src, repeats)
        print(f"misterp fit, whole process ({src or 'this checkout'}): median {statistics.median(times):.2f} s "
              f"of {', '.join(f'{t:.2f}' for t in times)}")
    if with_r:
        start = time.perf_counter()
        out = subprocess.run(["Rscript", str(ROOT / "bench" / "r_sparse_rating.R")], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        print(f"lme4, whole R process: {time.perf_counter() - start:.2f} s; {out.strip()}")


def _timed_runs(command: list, src: str | None, repeats: int) -> list:
    env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def whole_county_bootstrap(repeats: int, src: str | None, with_r: bool, nsim: int = 200) -> None:
    """Wall seconds of whole `misterp fit --bootstrap 200` processes on the county model (use.u =
    TRUE, as bootMer's), the survey's cells as the frame; then lme4's glmer and a few bootMer refits."""
    with tempfile.TemporaryDirectory() as tmp:
        survey = FIXTURES / "sparse_county.csv"
        pd.read_csv(survey).drop(columns="y").to_csv(Path(tmp) / "frame.csv", index=False)
        command = [str(Path(sys.executable).parent / "misterp"), "fit", "--survey", str(survey), "--trials", "n",
                   "--frame", str(Path(tmp) / "frame.csv"), "--count", "n", "--formula",
                   COUNTY_FORMULA.replace("cbind(y, n - y)", "y"), "--engine", "laplace", "--bootstrap", str(nsim),
                   "--by", "state", "--out", str(Path(tmp) / "est.csv"), "--quiet"]
        times = _timed_runs(command, src, repeats)
    print(f"misterp fit --bootstrap {nsim}, whole process ({src or 'this checkout'}): median "
          f"{statistics.median(times):.2f} s of {', '.join(f'{t:.2f}' for t in times)}")
    if with_r:
        out = subprocess.run(["Rscript", str(ROOT / "bench" / "r_sparse_boot.R"), "5"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        print(f"lme4: {out.strip()}")


def whole_slopes(repeats: int, with_r: bool) -> None:
    """Seconds of prepare + fit in this process for the county slope model (glmer and lmer), medians;
    then lme4's fits in one R process."""
    from misterp import Survey, prepare
    from misterp.engines.laplace import LaplaceEngine
    from misterp.model.family import GAUSSIAN

    data = pd.read_csv(FIXTURES / "sparse_slopes.csv")
    for label, formula, family in [("glmer", SLOPES_GLMER, None), ("lmer", SLOPES_LMER, GAUSSIAN)]:
        kwargs = {"family": family} if family else {}

        def fit():
            cells, _ = prepare(Survey(data, formula.split("~")[0].strip()), None, formula, **kwargs)
            return LaplaceEngine().fit(cells)

        found = fit()
        print(f"{label}: q = {found.design.n_random}, prepare + fit median {median_time(fit, repeats):.2f} s "
              f"({found.info['evaluations']} evaluations)")
    if with_r:
        out = subprocess.run(["Rscript", str(ROOT / "bench" / "r_sparse_slopes.R")], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        print(f"lme4: {out.strip()}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write-fixtures", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole", choices=["rating", "slopes", "county-boot"],
                        help="time whole processes (rating, county-boot) or whole fits (slopes) instead")
    parser.add_argument("--src", help="the src/ folder of the checkout to time (PYTHONPATH)")
    parser.add_argument("--with-r", action="store_true", help="and lme4's, in one R process")
    args = parser.parse_args()
    if args.write_fixtures:
        write_fixtures()
        return
    if args.whole == "rating":
        whole_rating(args.repeats, args.src, args.with_r)
        return
    if args.whole == "slopes":
        whole_slopes(args.repeats, args.with_r)
        return
    if args.whole == "county-boot":
        whole_county_bootstrap(args.repeats, args.src, args.with_r)
        return
    from misterp import Survey, prepare
    from misterp.engines import deviance, lmm
    from misterp.engines.laplace import LaplaceEngine
    from misterp.engines.optimize import start_values
    from misterp.model.family import FAMILIES

    print(f"machine: {platform.machine()}, python {platform.python_version()}; medians of {args.repeats}; seconds")
    county = pd.read_csv(FIXTURES / "sparse_county.csv")
    crossed = pd.read_csv(FIXTURES / "sparse_crossed.csv")
    for label, data, formula, outcome, family, sizes in [
            ("county", county, COUNTY_FORMULA, "y", None, [100, 300, 1000, 3000]),
            ("crossed", crossed, CROSSED_FORMULA, "score", "gaussian", [300, 1000, 3000])]:
        for size in sizes:
            key = "county" if label == "county" else "school"
            keep = sorted(data[key].unique())[:size]
            sub = data[data[key].isin(keep)].reset_index(drop=True)
            if family:
                cells, _ = prepare(Survey(sub, outcome), None, formula, family=FAMILIES[family])
            else:
                cells, _ = prepare(Survey(sub, outcome, trials="n"), None, formula.replace("cbind(y, n - y)", "y"))
            q = cells.design.n_random
            for sparse in (False, True):
                if not sparse and q > 1500:
                    print(f"{label:8} q={q:5d} dense: skipped (q^2 memory)")
                    continue
                old = deviance.SPARSE_Q, lmm.SPARSE_Q
                deviance.SPARSE_Q = lmm.SPARSE_Q = (0 if sparse else 10 ** 9)
                try:
                    if family:
                        dev = lmm.ProfiledDeviance(cells, True)
                        theta = dev.structure.start() * 0.5
                        one = median_time(lambda: dev.value_and_gradient(theta), args.repeats)
                    else:
                        prob = deviance.Problem(cells)
                        start, u0 = start_values(cells, prob)
                        st = deviance.pirls(prob, start[None], u0[None])
                        one = median_time(lambda: deviance.gradient(prob, deviance.pirls(prob, start[None], st.u)),
                                          args.repeats)
                    whole = median_time(lambda: LaplaceEngine().fit(cells), 1)
                finally:
                    deviance.SPARSE_Q, lmm.SPARSE_Q = old
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"{label:8} q={q:5d} cells={cells.n_cells:6d} {'sparse' if sparse else 'dense '} "
                      f"evaluation {one:8.4f}  fit {whole:7.3f}  peak RSS so far {rss:6.0f} MiB")


if __name__ == "__main__":
    main()
