"""``misterp demo``: the article, step by step, our numbers beside the article's."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings

import numpy as np

from ..data.survey import Survey
from ..engines.bootstrap import bootstrap
from ..engines.glm import GlmEngine
from ..engines.inla import InlaEngine
from ..engines.laplace import LaplaceEngine
from ..errors import MisterpWarning
from ..model.cells import cell_proportions, prepare
from ..results.draws import CellDraws, cell_draws
from ..results.interval_notes import CELL_BOUNDS
from ..results.poststratify import poststratify
from ..sim.simulate import article_simulation

ARTICLE_SEEDS = (10, 20, 30)
# What the article prints (rounded as printed there), for display beside ours.
ARTICLE = {
    "truth": "0.426087",
    "representative_sample_table": "188 172 185 156 299",
    "representative_sample_mean": "0.432",
    "nonresponse_sample_table": "341 326 148 95 90",
    "raw_mean": "0.552",
    "cell_proportions": "0.6539589 0.6717791 0.3581081 0.3684211 0.2444444",
    "simple_poststrat": "0.4313122",
    "glm_fit": "0.6539589 0.6717791 0.3581081 0.3684211 0.2444444",
    "glm_poststrat": "0.4313122",
    "glm_poststrat_bounds_2se": "0.3548098 0.5078145",
    "pooled_predict": "0.552 0.552 0.552 0.552 0.552",
    "glmer_coef_class": "0.6167566 0.6930053 -0.5605574 -0.5082169 -1.0284200",
    "glmer_predict": "0.6494805 0.6666351 0.3634185 0.3756116 0.2633905",
    "glmer_poststrat": "0.437579",
    "bootstrap_interval": "0.3983542 0.4768037",
    "bayes_colmeans": "0.6494100 0.6682584 0.3630604 0.3741806 0.2601629",
    "bayes_poststrat": "0.4365555",
    "bayes_interval": "0.3985078 0.4746033",
}


def run_article(seeds=ARTICLE_SEEDS, nsim: int = 999, seed: int = 1, progress: bool = True,
                bayes: bool = True) -> dict:
    """Every number of the article's walk-through, as lists (scalars as one-element lists).

    ``bayes`` adds the stan_glmer section (rstanarm's defaults, 4 x 1,000 draws).
    """
    sim = article_simulation(seeds)
    frame, N = sim.frame, sim.frame.counts
    survey = Survey(sim.survey, "response")
    overall = lambda draws, **kw: poststratify(draws, frame, **kw).table.iloc[0]

    cells, _ = prepare(survey, frame, "response ~ factor(class)")
    props = cell_proportions(cells, frame)
    glm = GlmEngine().fit(cells)
    glm_cells = cell_draws(glm, frame)
    bounds = overall(glm_cells, interval="cell-bounds")
    delta = overall(glm_cells, interval="delta")
    pooled = GlmEngine().fit(prepare(survey, frame, "response ~ 1")[0])

    mixed = LaplaceEngine().fit(prepare(survey, frame, "response ~ (1|class)")[0])
    predict = mixed.predict(frame.data)
    boot = bootstrap(mixed, nsim=nsim, use_u=True, seed=seed, progress=progress)
    boot_row = overall(cell_draws(boot, frame))
    approx_row = overall(cell_draws(mixed, frame, seed=seed))
    inla = InlaEngine(seed=seed).fit(prepare(survey, frame, "response ~ (1|class)")[0])
    inla_row = overall(cell_draws(inla, frame))
    result = {
        "population_N": N.astype(int).tolist(),
        "truth": [sim.truth],
        "representative_sample_table": sim.representative_table.tolist(),
        "representative_sample_mean": [sim.representative_mean],
        "nonresponse_sample_table": sim.nonresponse_table.tolist(),
        "raw_mean": [float(sim.survey["response"].mean())],
        "cell_proportions": props.tolist(),
        "simple_poststrat": [float(np.sum(props * N) / N.sum())],
        "glm_fit": glm_cells.point.tolist(),
        "glm_se_fit": glm_cells.se.tolist(),
        "glm_coef": glm.coef.tolist(),
        "glm_poststrat": [float(bounds["estimate"])],
        "glm_poststrat_bounds_2se": [float(bounds["lower"]), float(bounds["upper"])],
        "glm_poststrat_delta_sd": [float(delta["sd"])],
        "glmer_coef_class": mixed.coef()["class"]["(Intercept)"].tolist(),
        "glmer_fixef": mixed.beta.tolist(),
        "glmer_ranef": mixed.ranef()["class"].tolist(),
        "glmer_sd_class": mixed.theta.tolist(),
        "glmer_theta": mixed.theta.tolist(),
        "glmer_loglik": [mixed.loglik],
        "glmer_deviance_laplace": [mixed.deviance],
        "glmer_predict": predict.tolist(),
        "glmer_poststrat": [float(np.sum(predict * N) / N.sum())],
        "pooled_predict": cell_draws(pooled, frame).point.tolist(),
        "bootstrap_sd": float(boot_row["sd"]),
        "bootstrap_interval": [float(boot_row["lower"]), float(boot_row["upper"])],
        "bootstrap_failed": boot.failed,
        "normal_approx_sd": float(approx_row["sd"]),
        "inla_poststrat": [float(inla_row["estimate"])],
        "inla_interval": [float(inla_row["lower"]), float(inla_row["upper"])],
        "inla_sd_class": [float(inla.weights @ inla.reported[:, 0])],
    }
    if bayes:
        result.update(_bayes_section(survey, frame, seed, progress))
    return result


def _bayes_section(survey, frame, seed: int, progress: bool) -> dict:
    """stan_glmer(response ~ (1|class)), posterior_epred, and the poststratified draws."""
    from ..engines.bayes import BayesEngine

    cells, _ = prepare(survey, frame, "response ~ (1|class)")
    fit = BayesEngine(seed=seed, progress=progress).fit(cells)
    draws = cell_draws(fit, frame, seed=seed)
    row = poststratify(draws, frame, interval="draws").table.iloc[0]  # the article's ±2 sd
    return {"bayes_colmeans": draws.point.tolist(), "bayes_poststrat": float(row["estimate"]),
            "bayes_interval": [float(row["lower"]), float(row["upper"])], "bayes_sd": float(row["sd"]),
            "bayes_divergences": fit.divergences, "bayes_min_ess": float(fit.diagnostics()["ess_bulk"].min()),
            "bayes_max_rhat": float(fit.diagnostics()["rhat"].max())}


def _fmt(values) -> str:
    values = values if isinstance(values, list) else [values]
    return " ".join(str(v) if isinstance(v, (int, np.integer)) else f"{v:.7g}" for v in values)


def print_walkthrough(r: dict, seeds) -> None:
    article = seeds == ARTICLE_SEEDS
    width = 34
    vwidth = 52

    def row(label, key, ours=None):
        ours = _fmt(r[key] if ours is None else ours)
        theirs = ARTICLE.get(key, "") if article else ""
        print(f"  {label:<{width}} {ours:<{vwidth}} {theirs}")

    def section(title):
        print(f"\n{title}\n  {'':<{width}} {'misterp':<{vwidth}} {'article' if article else ''}")

    print(f"MRP walk-through (article: 'Getting Started with MRP'), seeds {','.join(map(str, seeds))}")
    section("1. The population and the samples")
    row("truth: sum(p*N)/sum(N)", "truth")
    row("representative sample, by class", "representative_sample_table")
    row("representative sample mean", "representative_sample_mean")
    row("non-response sample, by class", "nonresponse_sample_table")
    row("raw mean of the survey", "raw_mean")
    section("2. Simple poststratification")
    row("proportion yes, by class", "cell_proportions")
    row("poststratified estimate", "simple_poststrat")
    section("3. Regression and poststratification (glm)")
    row("predicted, by class", "glm_fit")
    row("poststratified estimate", "glm_poststrat")
    row("interval: poststratified ±2 SE", "glm_poststrat_bounds_2se")
    d = r["glm_poststrat_delta_sd"][0]
    e = r["glm_poststrat"][0]
    print(f"  {'interval: delta method ±2 sd':<{width}} {_fmt([e - 2 * d, e + 2 * d]):<{vwidth}} (sd {d:.5f})")
    print(textwrap.fill(f"note: {CELL_BOUNDS}", 100, initial_indent="  ", subsequent_indent="        "))
    section("4. Complete, no and partial pooling")
    row("complete pooling (glm ~ 1)", "pooled_predict")
    row("no pooling (glm ~ class)", "glm_fit")
    row("partial pooling (glmer)", "glmer_predict")
    section("5. Multilevel regression (glmer-equivalent Laplace fit)")
    row("coef(m2)$class", "glmer_coef_class")
    row("fixef / sd(class)", "glmer_fixef", r["glmer_fixef"] + r["glmer_sd_class"])
    row("logLik", "glmer_loglik")
    row("poststratified estimate", "glmer_poststrat")
    print(f"  {'inla, sd(class) integrated out':<{width}} {_fmt(r['inla_poststrat']):<{vwidth}} "
          f"(posterior mean sd(class) {r['inla_sd_class'][0]:.4f}; ±2 sd {_fmt(r['inla_interval'])})")
    section("6. Parametric bootstrap (bootMer, use.u = TRUE)")
    row("estimate ±2 sd(bootstrap)", "bootstrap_interval")
    print(f"  {'sd of the bootstrap estimates':<{width}} {r['bootstrap_sd']:<{vwidth}.4f} R's run: 0.0192")
    print(f"  {'sd, normal approximation':<{width}} {r['normal_approx_sd']:<{vwidth}.4f} (no refits)")
    if r["bootstrap_failed"]:
        print(f"  {r['bootstrap_failed']} refits failed and were left out")
    if "bayes_colmeans" in r:
        section("7. Bayesian multilevel regression (stan_glmer defaults, posterior_epred)")
        row("colMeans(posterior_epred)", "bayes_colmeans")
        row("poststratified estimate", "bayes_poststrat")
        row("estimate ±2 sd(draws)", "bayes_interval")
        print(f"  {'diagnostics':<{width}} max R-hat {r['bayes_max_rhat']:.3f}, min bulk ESS "
              f"{r['bayes_min_ess']:.0f}, {r['bayes_divergences']} divergences")


def article_report(seeds=ARTICLE_SEEDS, seed: int = 1) -> str:
    """The article's multilevel fit as an HTML report: estimates by class beside the raw and raked
    ones, the draws, the sample against the population, and the pooling."""
    from ..report.html import html_report
    from ..results.compare import add_comparisons

    sim = article_simulation(seeds)
    survey = Survey(sim.survey, "response")
    cells, _ = prepare(survey, sim.frame, "response ~ (1|class)")
    fit = LaplaceEngine().fit(cells)
    estimate = poststratify(cell_draws(fit, sim.frame, seed=seed), sim.frame, by="class")
    estimate, notes = add_comparisons(estimate, survey, sim.frame, cells.design, family=cells.family)
    inputs = {"survey": "the article's simulated non-response sample (1,000 students)",
              "frame": "five classes, 23,000 students", "formula": "response ~ (1|class)",
              "truth": f"{sim.truth:.6f}"}
    return html_report(estimate, fit, survey, sim.frame, title="misterp: the article's MRP example",
                       inputs=inputs, notes=notes)


def main(seeds=ARTICLE_SEEDS, as_json: bool = False, nsim: int = 999, seed: int = 1, example: str = "article",
         progress: bool = True, html: str | None = None, quiet: bool = False) -> int:
    if html:
        from ..errors import MisterpInputError

        try:
            with open(html, "w", encoding="utf-8") as f:
                f.write(article_report(tuple(seeds), seed))
        except OSError as e:
            raise MisterpInputError(f"Cannot write {html!r}: {e.strerror}. Check that its folder exists.") from None
        if not quiet:
            print(f"misterp: wrote the article's report to {html}", file=sys.stderr)
        return 0
    if example == "states":
        print_states_example(seed)
        return 0
    if example == "trend":
        print_trend_example(seed)
        return 0
    result = run_article(tuple(seeds), nsim=nsim, seed=seed, progress=progress)
    if as_json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print_walkthrough(result, tuple(seeds))
    return 0


def run_states_example(seed: int = 1, n: int = 1200) -> dict:
    """MRP against the raw, weighted and raked state estimates on the vignette design.

    Returns the per-state table (truth and each estimate) and each method's
    RMSE against the truth over the states that have respondents.
    """
    from ..results.compare import add_comparisons
    from ..sim.simulate import VIGNETTE_FORMULA, vignette_simulation

    sim = vignette_simulation(seed, n)
    survey = Survey(sim.survey, "pref", weights="weight")
    cells, _ = prepare(survey, sim.frame, VIGNETTE_FORMULA)
    with warnings.catch_warnings():  # the fit's problems are printed with the table
        warnings.simplefilter("ignore", MisterpWarning)
        fit = LaplaceEngine().fit(cells)
    estimate = poststratify(CellDraws(point=fit.predict(sim.frame.data)), sim.frame, by="state")
    estimate, _ = add_comparisons(estimate, survey, sim.frame, cells.design, family=cells.family)
    table = estimate.table
    data = sim.frame.data
    table["truth"] = (data["truth"] * data["N"]).groupby(data["state"]).sum().to_numpy() / table["population"]
    covered = table["raw_n"] > 0
    rmse = {name: float(np.sqrt(np.mean((table.loc[covered, col] - table.loc[covered, "truth"]) ** 2)))
            for name, col in (("mrp", "estimate"), ("raw", "raw_mean"), ("weighted", "weighted_mean"),
                              ("raked", "raked_mean"))}
    return {"table": table, "rmse": rmse, "states_with_respondents": int(covered.sum()), "problems": fit.problems()}


def print_states_example(seed: int) -> None:
    result = run_states_example(seed)
    table = result["table"]
    print(f"MRP on the rstanarm vignette's design (6,300 cells, 1,200 respondents), seed {seed}")
    for problem in result["problems"]:
        print(f"(the Laplace fit: {problem})")
    print("State estimates against the known truth:\n")
    cols = ["state", "raw_n", "truth", "estimate", "raw_mean", "weighted_mean", "raked_mean"]
    print(table[cols].rename(columns={"estimate": "mrp"}).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nRMSE over the {result['states_with_respondents']} states with respondents:")
    for name, value in sorted(result["rmse"].items(), key=lambda kv: kv[1]):
        print(f"  {name:<9} {value:.4f}")


TREND_MODELS = {"rw1(wave)": "support ~ male + (1|state) + rw1(wave)", "(1|wave)": "support ~ male + (1|state) + (1|wave)"}


def run_trend_example(seed: int = 1) -> dict:
    """A tracking poll with a known trend (:func:`misterp.sim.simulate.panel_simulation`), estimated by wave
    with a random walk over the waves and with exchangeable waves; each model's RMSE against the true trend,
    over every wave and over the waves the poll missed."""
    from ..sim.simulate import panel_simulation

    sim = panel_simulation(seed)
    survey = Survey(sim.survey, "support")
    table = sim.trend.copy()
    for name, formula in TREND_MODELS.items():
        cells, _ = prepare(survey, sim.frame, formula)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MisterpWarning)
            fit = InlaEngine(seed=seed).fit(cells)
        estimate = poststratify(cell_draws(fit, sim.frame), sim.frame, by="wave").table
        table[name] = estimate["estimate"].to_numpy()
        table[f"{name} sd"] = estimate["sd"].to_numpy()
    table["respondents"] = sim.survey["wave"].value_counts().reindex(table["wave"], fill_value=0).to_numpy()
    missed = table["wave"].isin(sim.skipped)
    rmse = {name: {"all": float(np.sqrt(np.mean((table[name] - table["truth"]) ** 2))),
                   "missed": float(np.sqrt(np.mean((table.loc[missed, name] - table.loc[missed, "truth"]) ** 2)))}
            for name in TREND_MODELS}
    return {"table": table, "rmse": rmse, "skipped": sim.skipped}


def print_trend_example(seed: int) -> None:
    result = run_trend_example(seed)
    print(f"A tracking poll: 24 waves of 120 respondents, waves {list(result['skipped'])} missed; seed {seed}.")
    print("Support by wave against the known trend (inla engine):\n")
    print(result["table"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nRMSE against the true trend:  all waves   missed waves")
    for name, value in result["rmse"].items():
        print(f"  {name:<11}                 {value['all']:.4f}       {value['missed']:.4f}")
