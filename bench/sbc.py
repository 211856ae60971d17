"""Simulation-based calibration (Talts et al. 2018) of the bayes engine on the article's model.

    .venv/bin/python bench/sbc.py --sims 200       # resumable; then writes the figure and table

Each simulation draws the parameters of ``response ~ (1|class)`` from the engine's
priors (rstanarm's defaults: intercept ~ normal(0, 2.5), group sd ~ exponential(1),
effects ~ normal(0, sd^2)), simulates the article's 1,000-respondent survey from
them, fits it with 4 chains x (500 warmup + 500 draws), and ranks each true value
among 99 posterior draws thinned from the 2,000 (every 20th, across the chains):
the poststratified estimate over the article's five classes, the intercept and the
group sd. A calibrated sampler gives uniform ranks on 0..99. Each quantity's ranks
are binned into 20 bins and tested with a chi-square test, Bonferroni-corrected
over the three quantities. Simulations are cached under ``bench/.sbc_cache/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from misterp import Frame, MisterpWarning, Survey, prepare
from misterp.engines.bayes import BayesEngine
from misterp.results.draws import cell_draws
from misterp.results.poststratify import poststratify
from misterp.sim.simulate import CLASSES, P_RESPONSE, POPULATION

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".sbc_cache"
THIN, KEPT, BINS = 20, 99, 20
QUANTITIES = ("poststratified", "intercept", "group_sd")
FRAME = Frame(pd.DataFrame({"class": CLASSES, "N": POPULATION}), "N")


def simulate(sim: int) -> tuple[dict, pd.DataFrame]:
    """Parameters from the priors and a survey drawn from them."""
    rng = np.random.default_rng(10_000 + sim)
    intercept = rng.normal(0.0, 2.5)
    sd = rng.exponential(1.0)
    effects = rng.normal(0.0, sd, len(CLASSES))
    p = 1 / (1 + np.exp(-(intercept + effects)))
    people = rng.choice(CLASSES, 1000, p=P_RESPONSE / P_RESPONSE.sum())
    survey = pd.DataFrame({"response": rng.binomial(1, p[people - 1]), "class": people})
    truth = {"poststratified": float(np.sum(p * POPULATION) / POPULATION.sum()), "intercept": intercept,
             "group_sd": sd}
    return truth, survey


def one(sim: int) -> dict:
    """Fit one simulated survey and rank the true values among thinned posterior draws."""
    truth, survey = simulate(sim)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MisterpWarning)
        cells, _ = prepare(Survey(survey, "response"), FRAME, "response ~ (1|class)")
        fit = BayesEngine(warmup=500, draws=500, seed=sim, progress=False, remedy=False).fit(cells)
    draws = {"poststratified": poststratify(cell_draws(fit, FRAME), FRAME).draws[:, 0],
             "intercept": fit.coef_draws()[:, 0], "group_sd": fit.term_factors()[0][:, 0, 0]}
    kept = np.arange(KEPT) * THIN + THIN // 2  # 99 of the 2,000 draws, spread over the 4 chains
    return {"sim": sim, "truth": truth, "rank": {q: int(np.sum(draws[q][kept] < truth[q])) for q in QUANTITIES},
            "divergences": int(fit.divergences), "seconds": time.perf_counter() - start}


def run(sims: int) -> list[dict]:
    CACHE.mkdir(exist_ok=True)
    records = []
    for sim in range(sims):
        path = CACHE / f"{sim:04d}.json"
        if not path.exists():
            record = one(sim)
            path.with_suffix(".tmp").write_text(json.dumps(record))
            path.with_suffix(".tmp").replace(path)
            if sim % 10 == 9:
                print(f"  sbc: {sim + 1}/{sims} ({record['seconds']:.1f} s each)", file=sys.stderr)
        records.append(json.loads(path.read_text()))
    return records


def uniformity(records: list[dict]) -> pd.DataFrame:
    """Per quantity: the chi-square test of uniform ranks over 20 bins, Bonferroni-corrected."""
    rows = []
    for q in QUANTITIES:
        ranks = np.array([r["rank"][q] for r in records])
        counts = np.bincount(ranks * BINS // (KEPT + 1), minlength=BINS)
        chi2, p = stats.chisquare(counts)
        rows.append({"quantity": q, "sims": len(ranks), "chi2": chi2, "df": BINS - 1, "p_value": p,
                     "p_bonferroni": min(1.0, p * len(QUANTITIES)), "uniform": p * len(QUANTITIES) > 0.05})
    return pd.DataFrame(rows)


def histograms(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sims = len(records)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=True)
    expected = sims / BINS
    band = stats.binom.ppf([0.005, 0.995], sims, 1 / BINS)  # 99% band of one bin under uniformity
    for ax, q in zip(axes, QUANTITIES):
        ranks = np.array([r["rank"][q] for r in records])
        ax.axhspan(*band, color="0.88")
        ax.axhline(expected, color="0.5", lw=1)
        ax.hist(ranks, bins=np.linspace(0, KEPT + 1, BINS + 1), color="#3b6ea5", edgecolor="white")
        ax.set_title(q.replace("_", " "))
        ax.set_xlabel(f"rank among {KEPT} posterior draws")
    axes[0].set_ylabel(f"simulations (of {sims})")
    fig.suptitle("SBC of the bayes engine, article model: ranks of the true values (grey: 99% band per bin)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=200)
    args = parser.parse_args(argv)
    records = run(args.sims)
    table = uniformity(records)
    histograms(records, HERE / "sbc_ranks.png")
    text = (table.to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n"
            + f"divergent transitions: {sum(r['divergences'] for r in records)} in {len(records)} fits; "
              f"median {np.median([r['seconds'] for r in records]):.1f} s per fit\n")
    print(text, end="")
    # the record beside the figure: bench/sbc_results.txt
    (HERE / "sbc_results.txt").write_text(f"{__doc__.splitlines()[0]}\n{len(records)} simulations, "
                                          f"{BINS} bins, Bonferroni over {len(QUANTITIES)} quantities\n\n{text}")
    return 0 if table["uniform"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
