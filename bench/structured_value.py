"""The value of structured terms: rw1(age) and bym2(state) against exchangeable (1|g) intercepts.

Two simulated designs, binary outcomes, the laplace engine (for a structured model the hyperparameters'
posterior mode under the bayes engine's priors with normal-approximation draws; for the exchangeable
model lme4's glmer fit). Each replication r is seeded with r; both models are fitted to the same survey.

1. age: 12 ordered age groups a = 0..11 with the smooth true effect f(a) = -0.6 + 1.2 * 4 (a/11 - 0.5)^2
   (a U, 0.6 at the ends, -0.6 in the middle), the 50 states (statelevel_predictors.csv) with true effects
   N(0, 0.3^2) drawn per replication, male (+-0.5) with effect 0.3. Frame: every state x age x male cell
   with N = 1000 (a uniform frame). Survey: 2,000 respondents, state and sex uniform, the age groups
   1-3 and 10-12 (1-based) at a tenth of the others' rate, so the ends of the U are sparse.
   Models `y ~ male + (1|state) + rw1(age)` and `y ~ male + (1|state) + (1|age)`; the state x age
   estimates (poststratified by state and age) against the true state x age means (inv_logit of the true
   linear predictor averaged over sex by N): MSE over the 600 cells, the count of replications where
   rw1's MSE is the lower (the target: at least 80 of 100), median MSEs and the median ratio rw1/iid, the
   RMSE of the 12 age estimates, and the coverage of the estimate -/+ 2 sd intervals of the 600 cells.
2. spatial: true state effects spatially smooth: 0.4 sin(lon/15) + 0.3 cos(lat/10) of each state's
   approximate centroid (hard-coded below), standardised over the 50 states to mean 0, sd 0.4 (the same
   field in every replication), plus iid N(0, 0.1^2) noise per replication; 6 age groups (poststrat_df's)
   with effects N(0, 0.2^2) per replication; male effect 0.3; intercept 0. Frame: poststrat_df.csv's
   cells summed over eth and educ to state x age x male, with their counts n. Survey: 2,000 respondents
   drawn from the frame's cells in proportion to n, so small states are sparse (some have none).
   Models `y ~ male + bym2(state) + (1|age)` (the built-in us-states adjacency: AK and HI islands) and
   `y ~ male + (1|state) + (1|age)`; the 50 poststratified state estimates against the true state
   means: MSE, the count where bym2's is the lower, median MSEs and ratio, coverage of -/+ 2 sd intervals.

Warnings from the fits (and preparation, draws, poststratification) are recorded, not shown, and counted
by model and message; a fit that raises is recorded with its seed and error, and that replication is
left out of the comparisons (it is counted in the table's `errors` column).

    .venv/bin/python bench/structured_value.py [--reps 100] [--design {age,spatial,both}] [--engine {laplace,inla}]

With --engine inla both models are fitted the same way (the exchangeable one under the same exponential(1)
prior on its sd, integrated over), so the comparison is of the structure alone.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from misterp import Frame, InlaEngine, LaplaceEngine, MisterpWarning, Survey, cell_draws, poststratify
from misterp.data.adjacency import read_adjacency
from misterp.model.cells import prepare

ROOT = Path(__file__).resolve().parents[1]
CCES = ROOT.parent / "shared" / "data" / "cces"
N_RESPONDENTS = 2000
MALE_EFFECT = 0.3

AGE_MODELS = {"rw1": "y ~ male + (1|state) + rw1(age)", "iid": "y ~ male + (1|state) + (1|age)"}
SPATIAL_MODELS = {"bym2": "y ~ male + bym2(state) + (1|age)", "iid": "y ~ male + (1|state) + (1|age)"}

# approximate geographic centres (latitude, longitude) of the 50 states
CENTROIDS = {
    "AL": (32.8, -86.8), "AK": (64.7, -152.0), "AZ": (34.3, -111.7), "AR": (34.9, -92.4), "CA": (37.2, -119.5),
    "CO": (39.0, -105.5), "CT": (41.6, -72.7), "DE": (39.0, -75.5), "FL": (28.6, -82.4), "GA": (32.7, -83.4),
    "HI": (20.3, -156.4), "ID": (44.4, -114.6), "IL": (40.0, -89.2), "IN": (39.9, -86.3), "IA": (42.1, -93.5),
    "KS": (38.5, -98.4), "KY": (37.5, -85.3), "LA": (31.1, -92.0), "ME": (45.4, -69.2), "MD": (39.0, -76.8),
    "MA": (42.3, -71.8), "MI": (44.3, -85.4), "MN": (46.3, -94.3), "MS": (32.7, -89.7), "MO": (38.4, -92.5),
    "MT": (47.0, -109.6), "NE": (41.5, -99.8), "NV": (39.3, -116.6), "NH": (43.7, -71.6), "NJ": (40.2, -74.7),
    "NM": (34.4, -106.1), "NY": (42.9, -75.5), "NC": (35.6, -79.4), "ND": (47.5, -100.5), "OH": (40.3, -82.8),
    "OK": (35.6, -97.5), "OR": (43.9, -120.6), "PA": (40.9, -77.8), "RI": (41.7, -71.6), "SC": (33.9, -80.9),
    "SD": (44.4, -100.2), "TN": (35.9, -86.4), "TX": (31.5, -99.3), "UT": (39.3, -111.7), "VT": (44.1, -72.7),
    "VA": (37.5, -78.9), "WA": (47.4, -120.5), "WV": (38.6, -80.6), "WI": (44.6, -89.9), "WY": (43.0, -107.6),
}


def inv_logit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


class Log:
    """Warnings and errors of every fit, by model."""

    def __init__(self):
        self.warnings = collections.defaultdict(collections.Counter)  # model -> message -> count
        self.warned_reps = collections.Counter()  # model -> replications with a warning
        self.errors = []  # (design, model, seed, text)

    def run(self, design: str, model: str, seed: int, task):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = task()
            except Exception as error:  # recorded and reported, never hidden
                self.errors.append((design, model, seed, f"{type(error).__name__}: {error}"))
                result = None
        if caught:
            self.warned_reps[(design, model)] += 1
        for w in caught:
            kind = "MisterpWarning" if issubclass(w.category, MisterpWarning) else w.category.__name__
            self.warnings[(design, model)][f"{kind}: {str(w.message).splitlines()[0][:160]}"] += 1
        return result


ENGINES = {"laplace": LaplaceEngine, "inla": InlaEngine}
ENGINE = "laplace"  # --engine: inla fits both models the same way (both integrate over the sds under the priors)


def estimate(formula: str, survey: pd.DataFrame, frame: Frame, by, seed: int, adjacency=None) -> list[pd.DataFrame]:
    cells, _ = prepare(Survey(survey, "y"), frame, formula, adjacency=adjacency)
    fit = ENGINES[ENGINE]().fit(cells)
    draws = cell_draws(fit, frame, seed=seed)
    return [poststratify(draws, frame, by=b, interval="draws").table for b in by]


def scores(table: pd.DataFrame, truth: pd.DataFrame, keys: list[str]) -> tuple[float, float]:
    """MSE and the coverage of estimate -/+ 2 sd against the truth's column ``true``."""
    merged = table.merge(truth, on=keys, how="inner", validate="one_to_one")
    assert len(merged) == len(truth), "estimates and truth do not line up"
    err = merged["estimate"] - merged["true"]
    covered = (merged["true"] >= merged["estimate"] - 2 * merged["sd"]) & (
        merged["true"] <= merged["estimate"] + 2 * merged["sd"])
    return float(np.mean(err ** 2)), float(covered.mean())


def age_design(reps: int, log: Log) -> dict:
    states = pd.read_csv(CCES / "statelevel_predictors.csv")["state"].tolist()
    ages = np.arange(1, 13)  # 1-based labels of a = 0..11
    f_age = -0.6 + 1.2 * (((ages - 1) / 11 - 0.5) ** 2) * 4
    frame_df = pd.DataFrame([(s, a, m) for s in states for a in ages for m in (-0.5, 0.5)],
                            columns=["state", "age", "male"])
    frame_df["N"] = 1000
    frame = Frame(frame_df, "N")
    rate = np.where((ages <= 3) | (ages >= 10), 0.1, 1.0)
    p_age = rate / rate.sum()
    rows = []
    for r in range(reps):
        rng = np.random.default_rng(r)
        state_effect = dict(zip(states, rng.normal(0.0, 0.3, len(states))))
        survey = pd.DataFrame({"state": rng.choice(states, N_RESPONDENTS),
                               "age": rng.choice(ages, N_RESPONDENTS, p=p_age),
                               "male": rng.choice([-0.5, 0.5], N_RESPONDENTS)})

        def eta(d):
            return f_age[d["age"].to_numpy() - 1] + d["state"].map(state_effect).to_numpy() + MALE_EFFECT * d["male"].to_numpy()

        survey["y"] = (rng.random(N_RESPONDENTS) < inv_logit(eta(survey))).astype(int)
        pop = frame_df.assign(p=inv_logit(eta(frame_df)), w=lambda d: d["N"] * d["p"])
        cell_truth = pop.groupby(["state", "age"], as_index=False)[["w", "N"]].sum()
        cell_truth["true"] = cell_truth["w"] / cell_truth["N"]
        age_truth = pop.groupby("age", as_index=False)[["w", "N"]].sum()
        age_truth["true"] = age_truth["w"] / age_truth["N"]
        row = {"seed": r, "sparse_n": int(np.isin(survey["age"], [1, 2, 3, 10, 11, 12]).sum())}
        for model, formula in AGE_MODELS.items():
            start = time.perf_counter()
            tables = log.run("age", model, r, lambda: estimate(formula, survey, frame, [["state", "age"], ["age"]], r))
            row[f"{model}_seconds"] = time.perf_counter() - start
            if tables is None:
                row[f"{model}_mse"] = row[f"{model}_cover"] = row[f"{model}_age_rmse"] = np.nan
                continue
            row[f"{model}_mse"], row[f"{model}_cover"] = scores(tables[0], cell_truth[["state", "age", "true"]],
                                                                ["state", "age"])
            age_mse, row[f"{model}_age_cover"] = scores(tables[1], age_truth[["age", "true"]], ["age"])
            row[f"{model}_age_rmse"] = float(np.sqrt(age_mse))
        rows.append(row)
    return summarise("age", pd.DataFrame(rows), "rw1", "iid", log)


def spatial_truth_field(states: list[str]) -> np.ndarray:
    lat = np.array([CENTROIDS[s][0] for s in states])
    lon = np.array([CENTROIDS[s][1] for s in states])
    field = 0.4 * np.sin(lon / 15) + 0.3 * np.cos(lat / 10)
    return 0.4 * (field - field.mean()) / field.std()


def spatial_design(reps: int, log: Log) -> dict:
    post = pd.read_csv(CCES / "poststrat_df.csv")
    frame_df = post.groupby(["state", "age", "male"], as_index=False)["n"].sum()
    frame = Frame(frame_df, "n")
    states = sorted(frame_df["state"].unique())
    assert len(states) == 50 and set(states) == set(CENTROIDS)
    smooth = dict(zip(states, spatial_truth_field(states)))
    age_levels = sorted(frame_df["age"].unique())
    adjacency = read_adjacency("us-states")
    p_cell = frame_df["n"].to_numpy(float) / frame_df["n"].sum()
    rows = []
    for r in range(reps):
        rng = np.random.default_rng(r)
        state_effect = {s: smooth[s] + e for s, e in zip(states, rng.normal(0.0, 0.1, len(states)))}
        age_effect = dict(zip(age_levels, rng.normal(0.0, 0.2, len(age_levels))))
        survey = frame_df.iloc[rng.choice(len(frame_df), N_RESPONDENTS, p=p_cell)][["state", "age", "male"]]
        survey = survey.reset_index(drop=True)

        def eta(d):
            return (d["state"].map(state_effect).to_numpy() + d["age"].map(age_effect).to_numpy()
                    + MALE_EFFECT * d["male"].to_numpy())

        survey["y"] = (rng.random(N_RESPONDENTS) < inv_logit(eta(survey))).astype(int)
        pop = frame_df.assign(p=inv_logit(eta(frame_df)), w=lambda d: d["n"] * d["p"])
        truth = pop.groupby("state", as_index=False)[["w", "n"]].sum()
        truth["true"] = truth["w"] / truth["n"]
        row = {"seed": r, "unsampled_states": 50 - survey["state"].nunique()}
        for model, formula in SPATIAL_MODELS.items():
            adj = adjacency if model == "bym2" else None
            start = time.perf_counter()
            tables = log.run("spatial", model, r, lambda: estimate(formula, survey, frame, [["state"]], r, adj))
            row[f"{model}_seconds"] = time.perf_counter() - start
            if tables is None:
                row[f"{model}_mse"] = row[f"{model}_cover"] = np.nan
                continue
            row[f"{model}_mse"], row[f"{model}_cover"] = scores(tables[0], truth[["state", "true"]], ["state"])
        rows.append(row)
    return summarise("spatial", pd.DataFrame(rows), "bym2", "iid", log)


def summarise(design: str, rows: pd.DataFrame, structured: str, iid: str, log: Log) -> dict:
    both = rows.dropna(subset=[f"{structured}_mse", f"{iid}_mse"])
    out = {"design": design, "structured": structured, "reps": len(rows), "compared": len(both),
           "errors": len(rows) - len(both),
           "wins": int((both[f"{structured}_mse"] < both[f"{iid}_mse"]).sum()),
           "ratio": float(np.median(both[f"{structured}_mse"] / both[f"{iid}_mse"])) if len(both) else np.nan,
           "rows": rows}
    for m in (structured, iid):
        out[m] = {"mse": float(np.nanmedian(rows[f"{m}_mse"])), "mean_mse": float(np.nanmean(rows[f"{m}_mse"])),
                  "cover": float(np.nanmean(rows[f"{m}_cover"])), "seconds": float(np.median(rows[f"{m}_seconds"])),
                  "warned": log.warned_reps[(design, m)]}
        if f"{m}_age_rmse" in rows:
            out[m]["age_rmse"] = float(np.nanmedian(rows[f"{m}_age_rmse"]))
            out[m]["age_cover"] = float(np.nanmean(rows[f"{m}_age_cover"]))
    return out


def report(result: dict) -> None:
    s, design, rows = result["structured"], result["design"], result["rows"]
    unit = "600 state x age cells" if design == "age" else "50 states"
    print(f"\n{design} design: {result['reps']} replications, {N_RESPONDENTS} respondents, MSE over the {unit}")
    print(f"  {s} MSE lower in {result['wins']} of {result['compared']} compared replications "
          f"({result['errors']} left out for a fit error); median MSE ratio {s}/iid {result['ratio']:.3f}")
    extra = design == "age"
    head = f"  {'model':<6} {'median MSE':>11} {'mean MSE':>10} {'cover ±2sd':>11}"
    head += f" {'age RMSE':>9} {'age cover':>10}" if extra else ""
    print(head + f" {'s/fit':>7} {'reps warned':>12}")
    for m in (s, "iid"):
        v = result[m]
        line = f"  {m:<6} {v['mse']:11.5f} {v['mean_mse']:10.5f} {v['cover']:11.3f}"
        line += f" {v['age_rmse']:9.4f} {v['age_cover']:10.3f}" if extra else ""
        print(line + f" {v['seconds']:7.2f} {v['warned']:12d}")
    if extra:
        print(f"  sparse-age respondents per replication (ages 1-3, 10-12): median {rows['sparse_n'].median():.0f}")
    else:
        print(f"  states without respondents: median {rows['unsampled_states'].median():.0f}, "
              f"max {rows['unsampled_states'].max()}, in {(rows['unsampled_states'] > 0).sum()} replications")
    d = rows[f"{s}_mse"] - rows["iid_mse"]
    print(f"  MSE {s} - iid: quartiles {np.nanpercentile(d, 25):+.5f} {np.nanmedian(d):+.5f} "
          f"{np.nanpercentile(d, 75):+.5f}, worst for {s} {np.nanmax(d):+.5f} (seed {int(rows.loc[d.idxmax(), 'seed'])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--design", choices=("age", "spatial", "both"), default="both")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="laplace")
    args = parser.parse_args()
    global ENGINE
    ENGINE = args.engine
    print(f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, {datetime.datetime.now():%Y-%m-%d %H:%M}; engine {ENGINE}")
    log = Log()
    start = time.perf_counter()
    results = []
    if args.design in ("age", "both"):
        results.append(age_design(args.reps, log))
    if args.design in ("spatial", "both"):
        results.append(spatial_design(args.reps, log))
    total = time.perf_counter() - start
    for result in results:
        report(result)
    print("\nwarnings (model: count message)" if any(log.warnings.values()) else "\nwarnings: none")
    for (design, model), messages in sorted(log.warnings.items()):
        for message, count in messages.most_common():
            print(f"  {design}/{model}: {count} x {message}")
    print("errors:" if log.errors else "errors: none")
    for design, model, seed, text in log.errors:
        print(f"  {design}/{model} seed {seed}: {text}")
    print(f"\nwhole run {total:.1f} s ({statistics.fmean([r['reps'] for r in results]):.0f} replications per design)")


if __name__ == "__main__":
    main()
