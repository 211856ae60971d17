"""How often each engine's default 95% interval covers the truth, on known populations.

    .venv/bin/python bench/coverage.py --design article --engine laplace --reps 500
    .venv/bin/python bench/coverage.py --summary          # the table in docs/coverage.md

Each replication draws a survey from a known population (the four designs below),
fits it, poststratifies overall and by the design's group column, and records
whether each interval holds the true value. A replication is cached as one JSON
file under ``bench/.coverage_cache/<design>/<engine>/`` the moment it finishes, so
an interrupted study resumes where it stopped and a longer one reuses the shorter.

Designs (the truth is the population's own value, never the model's):
- ``article``: the article's university, 1,000 respondents drawn by its
  non-response probabilities; truth overall and by class.
- ``states``: the rstanarm vignette's 6,300-cell population (fixed, seed 1) and
  biased samples of 1,200; truth by state from the cells' true probabilities.
- ``sparse``: 300 groups with 1-5 respondents each, group effects drawn anew for
  every replication from N(0, 0.8^2) (so coverage is averaged over the model's
  own distribution of groups, the frequency a multilevel interval claims).
- ``cces``: the 59,810 CCES respondents are the population (the frame is their
  cells, with the state-level predictors), 4,000-row samples drawn without
  replacement, favouring white and college-educated respondents and the old;
  truth: the full data's state means.

Engines: glm (delta method; the article's cell-bounds interval is scored beside
it), laplace (normal approximation, 1,000 draws, +/- 2 sd), bootstrap (bootMer
use.u = TRUE, nsim 200, +/- 2 sd), bayes (4 chains x 500 warmup + 500 draws,
central 95%) and inla (4,000 draws from its mixture; central 95% and +/- 2 sd both scored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from misterp import Frame, GlmEngine, LaplaceEngine, MisterpWarning, Survey, bootstrap, prepare
from misterp.results.draws import cell_draws
from misterp.results.poststratify import poststratify
from misterp.sim import simulate

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".coverage_cache"
CCES = HERE.parent.parent / "shared" / "data" / "cces"
ENGINES = ("glm", "laplace", "bootstrap", "bayes", "inla")


@dataclass(frozen=True)
class Population:
    """One replication's population: the frame, the truth by ``by`` (indexed by group) and overall."""

    frame: Frame
    by: str
    truth_by: pd.Series
    truth_overall: float


@dataclass(frozen=True)
class Design:
    """A known population and how to sample it; ``formula`` for the multilevel engines,
    ``glm_formula`` for the GLM (no random effects)."""

    name: str
    formula: str
    glm_formula: str
    outcome: str
    draw: callable  # (rng) -> (Population, survey DataFrame)


def _truth(frame: pd.DataFrame, by: str, p: np.ndarray, counts: str) -> tuple[pd.Series, float]:
    n = frame[counts].to_numpy(float)
    by_group = pd.Series(p * n).groupby(frame[by].to_numpy()).sum() / pd.Series(n).groupby(frame[by].to_numpy()).sum()
    return by_group, float(np.sum(p * n) / n.sum())


# --- the article ------------------------------------------------------------------------------

def _article(rng: np.random.Generator):
    frame = pd.DataFrame({"class": simulate.CLASSES, "N": simulate.POPULATION})
    truth_by, overall = _truth(frame, "class", simulate.P_SUPPORT, "N")
    people = rng.choice(simulate.CLASSES, 1000, p=simulate.P_RESPONSE / simulate.P_RESPONSE.sum())
    survey = pd.DataFrame({"response": rng.binomial(1, simulate.P_SUPPORT[people - 1]), "class": people})
    return Population(Frame(frame, "N"), "class", truth_by, overall), survey


# --- the vignette's states --------------------------------------------------------------------

@cache
def _vignette():
    return simulate.vignette_population(np.random.default_rng(1))


def _states(rng: np.random.Generator):
    population = _vignette()
    cells = population.frame.data
    truth_by, overall = _truth(cells, "state", cells["truth"].to_numpy(), "N")
    survey = simulate.vignette_sample(population, 1200, rng).drop(columns="weight")
    return Population(population.frame, "state", truth_by, overall), survey


# --- sparse groups ----------------------------------------------------------------------------

SPARSE_GROUPS = 300


def _sparse(rng: np.random.Generator):
    groups = np.arange(1, SPARSE_GROUPS + 1)
    effect = rng.normal(0.0, 0.8, SPARSE_GROUPS)
    frame = pd.DataFrame({"g": np.repeat(groups, 2), "x": np.tile([0, 1], SPARSE_GROUPS),
                          "N": rng.integers(500, 5000, 2 * SPARSE_GROUPS)})
    p_cell = 1 / (1 + np.exp(-(-0.3 + 0.5 * frame["x"].to_numpy() + effect[frame["g"].to_numpy() - 1])))
    truth_by, overall = _truth(frame, "g", p_cell, "N")
    size = rng.integers(1, 6, SPARSE_GROUPS)           # 1-5 respondents per group
    g = np.repeat(groups, size)
    x = rng.binomial(1, 0.3, len(g))                     # the sample under-represents x = 1
    p = 1 / (1 + np.exp(-(-0.3 + 0.5 * x + effect[g - 1])))
    survey = pd.DataFrame({"y": rng.binomial(1, p), "x": x, "g": g})
    return Population(Frame(frame, "N"), "g", truth_by, overall), survey


# --- CCES as its own population ---------------------------------------------------------------

CCES_CELLS = ["state", "eth", "male", "age", "educ"]


@cache
def _cces_population():
    data = pd.read_csv(CCES / "cces_all_clean.csv")
    states = pd.read_csv(CCES / "statelevel_predictors.csv")
    frame = data.groupby(CCES_CELLS, as_index=False).size().rename(columns={"size": "n"}).merge(states, on="state")
    truth_by = data.groupby("state")["abortion"].mean()
    # selection favours white and college-educated respondents and the old (a 4-6x spread)
    weight = (np.where(data["eth"] == "White", 1.5, 1.0) * np.where(data["educ"].isin(["4-Year College", "Post-grad"]), 2.0, 1.0)
              * np.where(data["age"].isin(["60-69", "70+"]), 1.5, 1.0))
    return data.merge(states, on="state", how="left"), Frame(frame, "n"), truth_by, float(data["abortion"].mean()), weight


def _cces(rng: np.random.Generator):
    data, frame, truth_by, overall, weight = _cces_population()
    rows = rng.choice(len(data), 4000, replace=False, p=weight / weight.sum())
    return Population(frame, "state", truth_by, overall), data.iloc[np.sort(rows)].reset_index(drop=True)


def _cces_other(rng: np.random.Generator):
    """Another biased selection of the same population, the other way round: favouring the young
    (x2 for 18-29), women (x1.5), non-white (x1.5) and non-college (x1.5) respondents."""
    data, frame, truth_by, overall, _ = _cces_population()
    weight = (np.where(data["age"] == "18-29", 2.0, 1.0) * np.where(data["male"] == 0, 1.5, 1.0)
              * np.where(data["eth"] != "White", 1.5, 1.0)
              * np.where(data["educ"].isin(["4-Year College", "Post-grad"]), 1.0, 1.5))
    rows = rng.choice(len(data), 4000, replace=False, p=weight / weight.sum())
    return Population(frame, "state", truth_by, overall), data.iloc[np.sort(rows)].reset_index(drop=True)


CASE_STUDY = ("abortion ~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) "
               "+ repvote + factor(region)")
DESIGNS = {
    "article": Design("article", "response ~ (1|class)", "response ~ factor(class)", "response", _article),
    "states": Design("states", simulate.VIGNETTE_FORMULA,
                     "pref ~ factor(male) + factor(age) + factor(eth) + factor(income)", "pref", _states),
    "sparse": Design("sparse", "y ~ x + (1|g)", "y ~ x", "y", _sparse),
    "cces": Design("cces", CASE_STUDY, "abortion ~ factor(eth) + factor(educ) + male + factor(age) + repvote "
                   "+ factor(region)", "abortion", _cces),
    "cces_other": Design("cces_other", CASE_STUDY, "abortion ~ factor(eth) + factor(educ) + male + factor(age) "
                         "+ repvote + factor(region)", "abortion", _cces_other),
}


# --- one replication --------------------------------------------------------------------------

def _seed(design: str, rep: int) -> int:
    return zlib.crc32(f"{design}:{rep}".encode())


def _intervals(engine: str, cells, frame: Frame, seed: int) -> dict:
    """Fit and poststratify: interval name -> (fit, draws) pairs to score, the default first."""
    if engine == "glm":
        fit = GlmEngine().fit(cells)
        return {"delta": (cell_draws(fit, frame), "delta"), "cell-bounds": (cell_draws(fit, frame), "cell-bounds")}
    if engine == "bayes":
        from misterp.engines.bayes import BayesEngine

        fit = BayesEngine(warmup=500, draws=500, seed=seed, progress=False, remedy=False).fit(cells)
        draws = cell_draws(fit, frame)
        return {"central95": (draws, "quantile"), "pm2sd": (draws, "draws")}
    if engine == "inla":
        from misterp.engines.inla import InlaEngine

        draws = cell_draws(InlaEngine(seed=seed % 2**31).fit(cells), frame)
        return {"central95": (draws, "quantile"), "pm2sd": (draws, "draws")}
    fit = LaplaceEngine().fit(cells)
    if engine == "bootstrap":
        fit = bootstrap(fit, nsim=200, use_u=True, seed=seed, progress=False)
        return {"pm2sd": (cell_draws(fit, frame), "draws")}
    draws = cell_draws(fit, frame, seed=seed)
    return {"pm2sd": (draws, "draws"), "central95": (draws, "quantile")}


def replicate(design: Design, engine: str, rep: int) -> dict:
    """One replication's record: per interval, covered and width overall and by group."""
    seed = _seed(design.name, rep)
    population, survey = design.draw(np.random.default_rng(seed))
    formula = design.glm_formula if engine == "glm" else design.formula
    start = time.perf_counter()
    record = {"rep": rep, "seed": seed, "intervals": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        try:
            cells, _ = prepare(Survey(survey, design.outcome), population.frame, formula)
            intervals = _intervals(engine, cells, population.frame, seed)
        except Exception as e:  # a failed fit is counted in the summary, never dropped silently
            return {**record, "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - start}
        for name, (draws, kind) in intervals.items():
            overall = poststratify(draws, population.frame, interval=kind).table.iloc[0]
            by = poststratify(draws, population.frame, by=population.by, interval=kind).table
            truth = population.truth_by.reindex(by[population.by]).to_numpy()
            record["intervals"][name] = {
                "overall": [bool(overall["lower"] <= population.truth_overall <= overall["upper"]),
                            float(overall["upper"] - overall["lower"]), float(overall["estimate"] - population.truth_overall)],
                "covered": ((by["lower"] <= truth) & (truth <= by["upper"])).astype(int).tolist(),
                "width": (by["upper"] - by["lower"]).round(6).tolist(),
                "error": (by["estimate"] - truth).round(6).tolist(),
            }
        raw = survey.groupby(population.by)[design.outcome].mean().reindex(by[population.by])
        record["raw_error"] = (raw.to_numpy() - truth).round(6).tolist()  # NaN for a group without respondents
    record["seconds"] = time.perf_counter() - start
    return record


def run(design: str, engine: str, reps: int, progress: bool = True) -> None:
    """Run (or resume) ``reps`` replications, one cached file each."""
    folder = CACHE / design / engine
    folder.mkdir(parents=True, exist_ok=True)
    todo = [r for r in range(reps) if not (folder / f"{r:04d}.json").exists()]
    print(f"{design}/{engine}: {reps - len(todo)} cached, {len(todo)} to run", file=sys.stderr)
    for i, rep in enumerate(todo):
        record = replicate(DESIGNS[design], engine, rep)
        tmp = folder / f"{rep:04d}.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(folder / f"{rep:04d}.json")  # atomic: a killed run never leaves half a record
        if progress and (i % 50 == 49 or i == len(todo) - 1):
            print(f"  {design}/{engine}: {i + 1}/{len(todo)} ({record['seconds']:.2f} s each)", file=sys.stderr)


# --- the summary ------------------------------------------------------------------------------

def summarize() -> pd.DataFrame:
    """One row per design x engine x interval: coverage overall and by group with Monte Carlo errors."""
    rows = []
    for design in DESIGNS:
        for engine in ENGINES:
            files = sorted((CACHE / design / engine).glob("*.json"))
            if not files:
                continue
            records = [json.loads(f.read_text()) for f in files]
            failed = sum("error" in r for r in records)
            records = [r for r in records if "error" not in r]
            if not records:
                rows.append({"design": design, "engine": engine, "interval": "-", "reps": 0, "failed": failed})
                continue
            for name in records[0]["intervals"]:
                overall = np.array([r["intervals"][name]["overall"][0] for r in records], float)
                covered = np.array([r["intervals"][name]["covered"] for r in records], float)  # (reps, groups)
                width = np.array([r["intervals"][name]["width"] for r in records], float)
                per_rep = np.nanmean(covered, axis=1)
                per_group = covered.mean(axis=0)
                reps = len(records)
                rows.append({
                    "design": design, "engine": engine, "interval": name, "reps": reps, "failed": failed,
                    "overall": overall.mean(), "overall_mc": np.sqrt(overall.mean() * (1 - overall.mean()) / reps),
                    # groups within a replication are correlated: the error comes from the per-replication rates
                    "by_group": per_rep.mean(), "by_group_mc": per_rep.std(ddof=1) / np.sqrt(reps),
                    "worst_group": per_group.min(), "groups": covered.shape[1],
                    "width_by_group": float(np.nanmean(width)),
                    # root mean squared error by group, and the raw group means' (where recorded)
                    "rmse": _rmse([r["intervals"][name].get("error") for r in records]),
                    "raw_rmse": _rmse([r.get("raw_error") for r in records]),
                    "seconds": float(np.median([r["seconds"] for r in records])),
                })
    return pd.DataFrame(rows)


def _rmse(errors: list) -> float:
    """The root mean squared error over replications and groups (groups without a value left out), or NaN
    where replications were cached before errors were recorded."""
    if not errors or any(e is None for e in errors):
        return float("nan")
    values = np.array(errors, float)
    return float(np.sqrt(np.nanmean(values ** 2)))


def markdown(table: pd.DataFrame) -> str:
    lines = ["| design | engine | interval | reps (failed) | overall | by group | worst group | mean width | RMSE (raw) "
             "| s/rep |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table.itertuples():
        if not r.reps:
            lines.append(f"| {r.design} | {r.engine} | - | 0 ({r.failed}) | | | | | | |")
            continue
        lines.append(f"| {r.design} | {r.engine} | {r.interval} | {r.reps} ({r.failed}) | {r.overall:.1%} ± {r.overall_mc:.1%} "
                     f"| {r.by_group:.1%} ± {r.by_group_mc:.1%} | {r.worst_group:.0%} | {r.width_by_group:.3f} "
                     f"| {_rmse_text(r.rmse, r.raw_rmse)} | {r.seconds:.2f} |")
    return "\n".join(lines)


def _rmse_text(rmse: float, raw: float) -> str:
    return "" if np.isnan(rmse) else f"{rmse:.3f} ({raw:.3f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--design", choices=list(DESIGNS), action="append")
    parser.add_argument("--engine", choices=ENGINES, action="append")
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--summary", action="store_true", help="print the table of every cached study")
    args = parser.parse_args(argv)
    if not args.summary:
        for design in args.design or list(DESIGNS):
            for engine in args.engine or ENGINES:
                run(design, engine, args.reps)
    table = summarize()
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
