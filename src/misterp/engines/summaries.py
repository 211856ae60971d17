"""Printed summaries that read like R's: lme4's ``summary(merMod)``, ``summary.glm`` and rstanarm's print.

Numbers are formatted as R formats a column (``format(x, digits = d)``): every
entry of a column gets the decimals that its least precise entry needs for
``d`` significant digits, without trailing zeros common to all.

Example
-------
>>> r_format([0.508993, 0.0123], 4)
['0.5090', '0.0123']
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

SIGNIF = ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, "."))


def r_format(values, digits: int) -> list[str]:
    """Strings of ``values`` with a common number of decimals, as R's format(x, digits)."""
    values = np.asarray(values, dtype=float)
    needed = 0
    for v in values[np.isfinite(values) & (values != 0)]:
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
        text = f"{v:.{decimals}f}".rstrip("0")
        needed = max(needed, len(text.split(".")[1]) if "." in text else 0)
    return [f"{v:.{needed}f}" if np.isfinite(v) else "NaN" for v in values]


def _p_value(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}" if p >= 2e-16 else "<2e-16"


def _table(header: list[str], rows: list[list[str]], names: list[str]) -> list[str]:
    """A right-aligned table under a left-aligned name column, as R prints a matrix."""
    width_name = max([len(n) for n in names] + [0])
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    lines = [" " * width_name + " " + " ".join(h.rjust(w) for h, w in zip(header, widths))]
    for name, row in zip(names, rows):
        lines.append(name.ljust(width_name) + " " + " ".join(c.rjust(w) for c, w in zip(row, widths)))
    return lines


def fixed_effects_table(names: list[str], estimate: np.ndarray, se: np.ndarray, z: bool = True) -> list[str]:
    """lme4's (and summary.glm's) fixed-effects table: Estimate, Std. Error, z value and Pr(>|z|)
    (t value, no p, for a linear mixed model)."""
    stat = estimate / se
    columns = [r_format(estimate, 5), r_format(se, 4), r_format(np.round(stat, 3), 4)]
    header = ["Estimate", "Std. Error", "z value" if z else "t value"]
    if z:
        p = 2.0 * ndtr(-np.abs(stat))
        columns.append([_p_value(v) for v in p])
        header.append("Pr(>|z|)")
        columns.append([next((mark for cut, mark in SIGNIF if v < cut), "") for v in p])
        header.append("")
    rows = [list(r) for r in zip(*columns)]
    return _table(header, rows, names)


def mixed_summary(fit) -> str:
    """lme4's printed summary of a MixedFit."""
    design, family = fit.design, fit.family
    N = fit.cells.n_respondents
    k = len(fit.theta) + len(fit.beta) + (1 if family.profiled else 0)
    if family.profiled:
        method = "REML" if fit.reml else "maximum likelihood"
        lines = [f"Linear mixed model fit by {method} [misterp]"]
    else:
        lines = ["Generalized linear mixed model fit by maximum likelihood (Laplace Approximation) [misterp]",
                 f" Family: {family.name}  ( {family.link} )"]
    lines += [f"Formula: {design.formula.text}", ""]
    if family.profiled and fit.reml:
        lines += [f"REML criterion at convergence: {r_format([fit.objective], 5)[0]}", ""]
    else:
        values = [-2 * fit.loglik + 2 * k, -2 * fit.loglik + k * math.log(N), fit.loglik, -2 * fit.loglik]
        cells = [f"{v:.1f}" for v in values] + [str(N - k)]
        header = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        widths = [max(8, len(c)) for c in cells]
        lines += [" ".join(h.rjust(w) for h, w in zip(header, widths)),
                  " ".join(c.rjust(w) for c, w in zip(cells, widths)), ""]
    lines += ["Random effects:"] + _random_effects(fit) + [
        f"Number of obs: {N}, groups:  " + "; ".join(
            f"{name}, {n}" for name, n in zip(design.group_names, design.n_levels)), "",
        "Fixed effects:"]
    se = np.sqrt(np.diag(fit.vcov(use_hessian=True).to_numpy()))
    lines += fixed_effects_table(design.fixed_names, fit.beta, se, z=not family.profiled)
    if not family.profiled:
        lines += ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    lines += [f"warning: {m}" for m in fit.problems()]
    return "\n".join(lines)


def _random_effects(fit) -> list[str]:
    """lme4's random-effects table: Groups, Name, Variance, Std.Dev. and Corr."""
    design = fit.design
    groups, names, variances, sds, cors = [], [], [], [], []
    for k, cov in enumerate(fit.term_covariances()):
        sd = np.sqrt(np.diag(cov))
        for i, effect in enumerate(design.effect_names(k)):
            groups.append(design.group_names[k] if i == 0 else "")
            names.append(effect)
            variances.append(cov[i, i])
            sds.append(sd[i])
            cors.append([f"{cov[i, j] / (sd[i] * sd[j]):.2f}" if sd[i] > 0 and sd[j] > 0 else "NaN"
                         for j in range(i)])
    if fit.family.profiled:
        groups.append("Residual")
        names.append("")
        variances.append(fit.sigma ** 2)
        sds.append(fit.sigma)
        cors.append([])
    header = ["Groups", "Name", "Variance", "Std.Dev."]
    columns = [groups, names, r_format(variances, 4), r_format(sds, 4)]
    if any(cors):
        header.append("Corr")
        columns.append([" ".join(c) for c in cors])
    widths = [max(len(h), *(len(c) for c in col)) for h, col in zip(header, columns)]
    lines = [" " + " ".join(h.ljust(w) for h, w in zip(header, widths))]
    for row in zip(*columns):
        lines.append(" " + " ".join(c.ljust(w) for c, w in zip(row, widths)))
    return [line.rstrip() for line in lines]


def glm_summary(fit) -> str:
    """summary.glm's coefficients, with the log-likelihood and AIC."""
    family, design = fit.family, fit.design
    k = len(fit.beta) + (1 if family.profiled else 0)
    lines = ["Generalized linear model [misterp]", f" Family: {family.name}  ( {family.link} )",
             f"Formula: {design.formula.text}", "", "Coefficients:"]
    lines += fixed_effects_table(design.fixed_names, fit.beta, np.sqrt(np.diag(fit.cov)), z=not family.profiled)
    lines += ["", f"logLik: {fit.loglik:.2f}   AIC: {-2 * fit.loglik + 2 * k:.2f}   "
              f"Number of obs: {fit.cells.n_respondents}"]
    lines += [f"warning: {m}" for m in fit.problems()]
    return "\n".join(lines)


def bayes_summary(fit) -> str:
    """rstanarm's print of a stanreg: medians and MAD_SDs, the error terms and the levels."""
    design, family = fit.design, fit.family
    lines = ["stan_glmer [misterp]", f" family:       {family.name} [{family.link}]",
             f" formula:      {design.formula.text}", f" observations: {fit.cells.n_respondents}", "------"]
    coef = fit.coef_draws()
    median = np.median(coef, axis=0)
    mad = 1.4826 * np.median(np.abs(coef - median), axis=0)
    rows = [[m, s] for m, s in zip(r_format(median, 2)[:len(median)], r_format(mad, 2))]
    lines += _table(["Median", "MAD_SD"], rows, design.fixed_names)
    if "aux" in fit.samples:
        aux = fit._flat("aux")
        lines += ["", "Auxiliary parameter(s):"] + _table(
            ["Median", "MAD_SD"], [r_format([np.median(aux), 1.4826 * np.median(np.abs(aux - np.median(aux)))], 3)],
            ["sigma"])
    vc = fit.varcorr()
    lines += ["", "Error terms:"]
    for _, row in vc.iterrows():
        if np.isnan(row["sd"]):
            lines.append(f"  {row['term']:<12} cor({row['effect']}, {row['other']}) {row['cor']:.2f}")
        else:
            lines.append(f"  {row['term']:<12} {row['effect'] or '':<18} {row['sd']:.2f}")
    lines.append("Num. levels: " + ", ".join(f"{n} {k}" for n, k in zip(design.group_names, design.n_levels)))
    lines += [f"warning: {m}" for m in fit.problems()]
    return "\n".join(lines)


def inla_summary(fit) -> str:
    """R-INLA's summary of a fit: the fixed effects and the hyperparameters (as sds, where R-INLA
    prints precisions), each with mean, sd and 2.5/50/97.5% quantiles, then the design's size."""
    design, family = fit.design, fit.family
    mode_only = fit.engine.design == "mode"  # the laplace engine's fit of structured terms
    lines = ["laplace [misterp]: the hyperparameters at their posterior mode" if mode_only else "inla [misterp]",
             f" family:       {family.name} [{family.link}]",
             f" formula:      {design.formula.text}", f" observations: {fit.cells.n_respondents}", "",
             "Fixed effects:"]

    def block(table) -> list[str]:
        rows = [r_format(row, 3) for row in table.to_numpy()]
        return _table(list(table.columns), rows, list(table.index))

    lines += block(fit.fixed_table())
    if len(fit.mode):
        lines += ["", "Model hyperparameters:"] + block(fit.hyper_table())
        lines += ["", "The hyperparameters' mean is their mode, their sd and quantiles the Gaussian at the mode's; "
                  "the effects are drawn at the mode alone (--engine inla integrates over them)."] if mode_only else \
            ["", f"Integration: {len(fit.weights)} points over {len(fit.mode)} hyperparameter(s) "
             f"({fit.engine.design} design{', skewness-corrected' if fit.engine.skew else ''})"]
    else:
        lines += ["", "No hyperparameters: one Laplace approximation of the posterior"]
    if design.group_terms:
        lines.append("Num. levels: " + ", ".join(f"{n} {k}" for n, k in zip(design.group_names, design.n_levels)))
    lines += [f"warning: {m}" for m in fit.problems()]
    return "\n".join(lines)
