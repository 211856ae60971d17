"""The ``misterp`` command line: ``misterp demo``, ``fit``, ``validate``, ``compare``, ``report``,
``poststratify`` and ``batch``.

A user mistake (:class:`MisterpInputError`) prints one paragraph and exits
with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings

from ..errors import MisterpInputError, MisterpWarning


def _seeds(text: str) -> tuple[int, int, int]:
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes three integers like 10,20,30, not {text!r}") from None
    if len(seeds) != 3:
        raise argparse.ArgumentTypeError(f"--seeds takes exactly three integers like 10,20,30, not {text!r}")
    return seeds


def _columns(text: str) -> list[str]:
    """A comma-separated list of column names, each stripped: ``"state, eth"`` is state and eth."""
    return [c.strip() for c in text.split(",") if c.strip()]


def _order(text: str) -> tuple[str, list[str]]:
    """``COL=L1,L2,...``: a column and its levels in order."""
    column, sep, levels = text.partition("=")
    if not sep or not column.strip() or not _columns(levels):
        raise argparse.ArgumentTypeError(f"{text!r} is not COL=LEVEL1,LEVEL2,... (for example age=18-29,30-44,45-64,65+)")
    return column.strip(), _columns(levels)


def structure_options(args) -> dict:
    """``prepare``'s structured-term options from the parsed --order and --adjacency (absent in batch jobs)."""
    from ..data.adjacency import read_adjacency

    adjacency = getattr(args, "adjacency", None)
    return {"order": dict(getattr(args, "order", None) or []),
            "adjacency": read_adjacency(adjacency) if adjacency else None}


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's line ends with its default, where it has one worth saying."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in text \
                and action.option_strings:
            default = ",".join(map(str, action.default)) if isinstance(action.default, tuple) else action.default
            text += f" (default: {default})"
        return text


def _fit_arguments(fit: argparse.ArgumentParser, required: bool, several: bool = False) -> None:
    """The options of ``misterp fit``, shared with ``validate``, ``report`` and ``compare`` (whose
    ``--formula`` is given once per model: ``several``)."""
    fit.add_argument("--survey", required=required, help="respondent table (CSV or Parquet)")
    fit.add_argument("--frame", required=True, help="poststratification table (CSV or Parquet)")
    fit.add_argument("--formula", required=required, action="append" if several else "store",
                     help='lme4 formula, e.g. "y ~ x + (1|g) + (1|a:b)"' + ("; once per model" if several else ""))
    fit.add_argument("--count", required=True, help="the frame's population-count column")
    fit.add_argument("--join", action="append", default=[], metavar="FILE",
                     help="group-level predictors (e.g. state -> repvote), joined onto survey and frame "
                          "by their shared columns; repeatable")
    fit.add_argument("--map", metavar="FILE", help="recode survey answers onto the frame's categories "
                     "(YAML 'column: {from: to}' or CSV column,from,to)")
    fit.add_argument("--trials", metavar="COL",
                     help="survey given as cells: COL holds each row's respondents and the outcome its successes")
    fit.add_argument("--weights", metavar="COL", help="survey design weights (for the weighted comparison)")
    fit.add_argument("--family", choices=["binomial", "poisson", "gaussian", "categorical", "ordinal"],
                     default="binomial",
                     help="the outcome's family: binomial (0/1 answers, logit), poisson (counts, log), gaussian "
                          "(continuous, identity: lmer), categorical (category names: a multinomial logit) or "
                          "ordinal (ordered levels: a cumulative logit); the last two give a share per category")
    fit.add_argument("--levels", metavar="L1,L2,...",
                     help="ordinal: the outcome's levels from lowest to highest (default: a numeric outcome's order)")
    fit.add_argument("--priors", choices=["brms", "rstanarm"], default="brms",
                     help="categorical and ordinal outcomes with the bayes engine: brms's default priors, or "
                          "rstanarm's scaled ones (--prior-scale, --sd-prior-scale)")
    fit.add_argument("--reference", metavar="NAME",
                     help="categorical: the baseline category (default: the first in sorted order)")
    fit.add_argument("--turnout", metavar="FORMULA",
                     help="a turnout model, e.g. \"voted ~ age + (1|state)\" (its outcome 0/1): fitted on the whole "
                          "survey by the same engine, the choice model then among those who voted (== 1), and every "
                          "share weighted by each cell's turnout, draw by draw, with the turnout beside it")
    fit.add_argument("--choices", metavar="FILE",
                     help="categorical: the categories that stand in each area (columns: the frame's area column, "
                          "category); each cell's shares are renormalised over its area's set")
    fit.add_argument("--ml", action="store_true",
                     help="gaussian with the laplace engine: maximum likelihood instead of lmer's default REML")
    fit.add_argument("--exposure", metavar="COL",
                     help="poisson: the survey column of each row's exposure (the time it was observed)")
    fit.add_argument("--frame-exposure", metavar="COL",
                     help="poisson: weight cells by the frame's column of each cell's total exposure; the "
                          "estimate is then a rate per unit of exposure")
    fit.add_argument("--order", action="append", default=[], type=_order, metavar="COL=L1,L2,...",
                     help="the order of an rw1(), rw2() or ar1() term's levels (default: sorted)")
    fit.add_argument("--wave", metavar="COL",
                     help="the survey's and frame's wave (poll, year) column: estimates by wave, before --by, and a "
                          "trend figure in the report; model the trend with rw1(COL) in the formula")
    fit.add_argument("--adjacency", metavar="FILE",
                     help="neighbouring areas for icar() and bym2() terms: a table with columns area, neighbour, "
                          "or 'us-states' for the built-in table of US postal codes")
    fit.add_argument("--engine", choices=["glm", "laplace", "bayes", "inla"],
                     help="glm: fixed effects only (R's glm); laplace: lme4's glmer/lmer; bayes: rstanarm's "
                          "stan_glmer, sampled by NUTS; inla: the same posterior as bayes by integrated nested "
                          "Laplace approximations, in about a second. Default: inla, or laplace with --bootstrap "
                          "or --ml")
    bayes = fit.add_argument_group("bayes and inla engines (rstanarm's stan_glmer defaults)")
    bayes.add_argument("--chains", type=int, default=4, help="Markov chains, run in parallel over the cores")
    bayes.add_argument("--warmup", type=int, default=1000, help="warmup iterations per chain")
    bayes.add_argument("--draws", type=int, help="bayes: draws per chain after warmup (1,000); inla: draws from its "
                       "mixture in all (2,000)")
    bayes.add_argument("--adapt-delta", type=float, default=0.95, help="NUTS target acceptance")
    bayes.add_argument("--prior-scale", type=float, default=2.5, help="normal(0, s/sd(x)) on coefficients")
    bayes.add_argument("--sd-prior-scale", type=float, default=1.0, help="decov scale of the group sds")
    bayes.add_argument("--no-remedy", action="store_true",
                       help="do not rerun at adapt_delta 0.99 when the sampler reports divergences")
    bayes.add_argument("--parameterization", choices=["auto", "whitened", "noncentred"], default="auto",
                       help="coordinates NUTS samples the same posterior in ('noncentred' is rstanarm's)")
    fit.add_argument("--by", type=_columns, default=[],
                     help="frame column(s) to estimate within, comma-separated (default: the whole population)")
    fit.add_argument("--bootstrap", type=int, metavar="NSIM",
                     help="laplace: interval from NSIM parametric bootstrap refits, as bootMer with use.u = TRUE "
                          "(200 is plenty; by a grouping factor it under-covers, see docs/coverage.md)")
    fit.add_argument("--drop-missing", action="store_true", help="drop survey rows with missing values")
    fit.add_argument("--out", help="write the estimate table to this CSV file")
    fit.add_argument("--seed", type=int, default=1,
                     help="seed of the draws, the bootstrap and the sampler: the same command prints the same table")
    fit.add_argument("--workers", type=int, default=1, help="processes for bootstrap refits")
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    fit.add_argument("--quiet", action="store_true", help="print only the table (no notes or progress)")
    fit.add_argument("--check", type=_columns, metavar="COLS",
                     help="also check the model: observed survey means by these columns against replicated data "
                          "(posterior predictive for bayes, parametric bootstrap otherwise), with p-values")
    fit.add_argument("--calibrate", action="append", default=[], metavar="FILE",
                     help="known totals (frame group columns and 'target'): shift every draw's cell predictions on "
                          "the link scale to match them; give two tables for a two-way shift")
    fit.add_argument("--save-fit", metavar="FILE", help="save the fitted model, to poststratify it again later")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="misterp", description="Multilevel Regression and Poststratification.",
                                     formatter_class=_HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, formatter_class=_HelpFormatter)

    demo = sub.add_parser("demo", help="walk through the article's MRP example")
    demo.add_argument("--seeds", type=_seeds, default=(10, 20, 30),
                      help="seeds of the representative sample, the non-response sample and the responses")
    demo.add_argument("--json", action="store_true", help="print one JSON object with every number")
    demo.add_argument("--nsim", type=int, default=999, help="bootstrap refits (default 999)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the bootstrap (or of the states or trend example)")
    demo.add_argument("--example", choices=["article", "states", "trend"], default="article",
                      help="article: the article's walk-through; states: MRP against raw, weighted and raked "
                           "state estimates on a simulated 6,300-cell population; trend: a tracking poll's trend "
                           "by rw1(wave) against (1|wave), with a known truth")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo.add_argument("--quiet", action="store_true", help="no progress bars, no notes")
    demo.add_argument("--html", metavar="FILE", help="write the article's report to FILE instead")

    _fit_arguments(sub.add_parser("fit", help="fit a model to a survey and poststratify it to a frame"), True)
    validate = sub.add_parser("validate", help="fit, then score the estimates against known true values")
    _fit_arguments(validate, True)
    validate.add_argument("--truth", required=True, metavar="FILE",
                          help="the true values: the --by columns and a 'truth' column")
    compare = sub.add_parser("compare", help="rank models by held-out data: K-fold and leave-areas-out "
                                             "cross-validation, or PSIS-LOO for bayes")
    _fit_arguments(compare, True, several=True)
    compare.add_argument("--area", metavar="COL",
                         help="the survey column whose groups the estimates are for (default: the first --by "
                              "column): K-fold is stratified by it, leave-areas-out holds its levels out, and "
                              "area_mse is scored by it")
    compare.add_argument("--folds", type=int, default=5, metavar="K", help="folds of each cross-validation (5)")
    compare.add_argument("--cv", type=_columns, metavar="SCHEMES",
                         help="comma-separated: kfold (held-out respondents, stratified by area), areas (held-out "
                              "areas), loo (PSIS-LOO, bayes only); default kfold,areas, or loo for --engine bayes")
    report = sub.add_parser("report", help="fit (or load a saved fit) and write one offline HTML report")
    _fit_arguments(report, False)
    report.add_argument("--html", required=True, metavar="FILE", help="the report's HTML file")
    report.add_argument("--fit", metavar="FILE", dest="saved", help="report a saved fit (no --survey or --formula)")
    report.add_argument("--figures", metavar="DIR", help="also write each figure to DIR as a PNG file")

    batch = sub.add_parser("batch", help="run many models from a YAML spec (outcomes x waves x subsets x formulas) "
                                         "on Dask, into one Parquet dataset; see docs/batch.md")
    batch.add_argument("spec", help="the batch spec (YAML)")
    batch.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler (tcp://host:8786, or its scheduler file) instead of a local "
                            "cluster")
    batch.add_argument("--workers", type=int, metavar="N",
                       help="local workers, one thread each (default: the CPU count)")
    batch.add_argument("--out", metavar="DIR", help="the results folder (default: the spec's 'out')")
    batch.add_argument("--quiet", action="store_true", help="print only failures")
    batch.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    post = sub.add_parser("poststratify", help="poststratify a saved fit against a frame, without refitting")
    post.add_argument("--fit", required=True, help="a file written by misterp fit --save-fit")
    post.add_argument("--frame", required=True, help="poststratification table (CSV or Parquet)")
    post.add_argument("--count", required=True, help="the frame's population-count column")
    post.add_argument("--by", type=_columns, default=[],
                      help="frame column(s) to estimate within, comma-separated (default: the whole population)")
    post.add_argument("--join", action="append", default=[], metavar="FILE",
                      help="group-level predictors joined onto the frame; repeatable")
    post.add_argument("--out", help="write the estimate table to this CSV file")
    post.add_argument("--frame-exposure", metavar="COL",
                      help="weight cells by the frame's column of each cell's total exposure: a count model's "
                           "estimate becomes a rate")
    post.add_argument("--seed", type=int, default=None,
                      help="seed of the normal-approximation draws and of unseen levels' draws (default: as misterp "
                           "fit's, so the table is the fit's own: the sampler's seed for bayes, else 1)")
    post.add_argument("--quiet", action="store_true", help="print only the table (no notes)")
    post.add_argument("--no-progress", action="store_true",
                      help="hide progress output (poststratifying shows none; accepted by every subcommand)")
    return parser


def _fit(args) -> int:
    if args.check:  # named before the fit, not after it
        from ..model.formula import parse_formula

        predictors = parse_formula(args.formula).predictors
        missing = [c for c in args.check if c not in predictors]
        if missing:
            raise MisterpInputError(f"--check takes columns of the model's predictors; {missing} are not "
                                    f"({predictors}).")
    estimate, notes, context = _run_fit(args)
    _report(estimate, notes, args.out, args.quiet)
    if args.check:
        from ..results.extras import extra
        from ..results.model_checks import predictive_check

        problems = []
        check = extra("the model check", problems, predictive_check, context["fit"], by=args.check, seed=args.seed)
        if check is None:
            _note(args, problems[0])
            return 0
        print(f"\nModel check by {', '.join(args.check)} (p < 0.05: {int((check['p_value'] < 0.05).sum())} of "
              f"{len(check)} groups):")
        print(check.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _run_fit(args):
    """Read, fit and poststratify as the fit options say; returns (estimate, notes, context),
    context holding the fit, survey, frame and inputs a report shows. The frame file (CSV or
    Parquet) is streamed in chunks (see misterp.results.stream), never read whole."""
    from ..data.frame import FrameChunks
    from ..data.survey import read_survey
    from ..model.formula import parse_formula

    _check_options(args)
    formula = parse_formula(args.formula)
    survey = read_survey(args.survey, formula.response, weights=args.weights, join=args.join, trials=args.trials,
                         exposure=args.exposure, recode=args.map)
    chunks = FrameChunks(args.frame, args.count, join=tuple(args.join or ()))
    if getattr(args, "turnout", None):
        survey = _fit_turnout(args, survey)
    return fit_and_poststratify(args, formula, survey, chunks)


def _fit_turnout(args, survey):
    """Fit --turnout's model on the whole survey (its fit kept in ``args.turnout_fit``, its notes in
    ``args.turnout_notes``); return the survey of those who voted, for the choice model."""
    from dataclasses import replace

    import pandas as pd

    from ..data.survey import Survey
    from ..model.cells import prepare
    from ..model.formula import parse_formula

    turnout = parse_formula(args.turnout)
    voters = Survey(survey.data, turnout.response, survey.weights)  # the rows as read, recoded and joined
    cells, notes = prepare(voters, None, turnout, drop_missing=args.drop_missing, family="binomial")
    # the same engine and settings, for a yes/no outcome
    options = argparse.Namespace(**{**vars(args), "family": "binomial", "reference": None, "levels": None,
                                    "bootstrap": None, "default_engine": False})
    notes = [f"turnout model: {n}" for n in notes]
    args.turnout_fit = _fit_model(options, cells, notes)
    voted = pd.to_numeric(voters.data[turnout.response], errors="coerce").to_numpy() == 1
    args.turnout_notes = notes + [
        f"turnout: {turnout.text} fitted by the {args.engine} engine on {cells.n_respondents} respondents; the "
        f"choice model on the {int(voted.sum())} who voted ({turnout.response} == 1)"]
    return replace(survey, data=survey.data[voted].reset_index(drop=True))


def fit_and_poststratify(args, formula, survey, frame, prepared=None):
    """The stages after reading (prepare → fit → cell_draws → poststratify → comparisons), as
    :func:`_run_fit` returns them; shared with ``misterp batch``, which reads each file once per worker.

    ``prepared`` is ``prepare``'s (cells, notes) when the caller already has them (the notes are copied).
    """
    from ..data.checks import coverage
    from ..data.frame import FrameChunks
    from ..model.cells import coverage_columns, prepare
    from ..results.compare import add_comparisons, frame_margins
    from ..results.extras import extra
    from ..results.interval_notes import interval_notes
    from ..results.saved import save_fit
    from ..results.stream import scan_frame

    streamed = isinstance(frame, FrameChunks)
    if prepared is None:
        structured = [g.columns[0] for g in formula.groups if g.structured]
        wave = getattr(args, "wave", None)
        levels = frame.distinct(structured + ([wave] if wave else [])) if streamed and (structured or wave) else \
            None
        prepared = prepare(survey, None if streamed else frame, formula, drop_missing=args.drop_missing,
                           family=family_from_args(args), frame_levels=levels, **structure_options(args))
        if wave:
            prepared = (prepared[0], list(prepared[1]) + _wave_notes(wave, survey, frame if not streamed else levels))
    cells, notes = prepared[0], list(prepared[1])
    if streamed:  # the frame's checks, coverage and margins in one pass, before the fit
        margins = frame_margins(cells.design)
        cover = scan_frame(cells, frame, margins, notes)
    model = _fit_model(args, cells, notes)
    if args.save_fit:
        save_fit(model, args.save_fit)
        notes.append(f"saved the fit to {args.save_fit}")
    # a fit whose engine was seeded with --seed (the sampler) derives its draws' seed from it
    seed = args.seed if model.draw_seed is None else None
    weight = _exposure_weight(model, args.frame_exposure)
    if weight:
        notes.append(f"cells weighted by the frame's exposure {weight!r}: the estimate is a rate per unit of it")
    estimate = _poststratify_frame(args, model, frame, seed, weight, notes)
    notes += extra("the interval notes", notes, interval_notes, model, args.by, survey.data, default=[])
    estimate, compare_notes = extra("the raw, weighted and raked comparisons", notes, add_comparisons, estimate,
                                    survey, margins if streamed else frame, cells.design, args.drop_missing,
                                    family=cells.family, default=(estimate, []))
    notes += compare_notes
    matched = coverage_columns(cells)
    if not streamed:
        cover = extra("the frame's coverage count", notes, coverage, cells.table, frame, matched,
                      default={"frame_cells": len(frame.data), "without_respondents": "?"})
    matched = f" of the same {', '.join(matched)}" if matched != formula.predictors else ""
    notes.append(f"{cells.n_respondents} respondents in {cells.n_cells} cells; frame of "
                 f"{cover['frame_cells']} cells, {cover['without_respondents']} of them without respondents{matched} "
                 "(predicted by the model)")
    inputs = {"survey": args.survey, "frame": args.frame, "formula": args.formula, "family": args.family,
              "engine": args.engine + (f" with {args.bootstrap} bootstrap refits" if args.bootstrap else ""),
              "respondents": cells.n_respondents, "survey cells": cells.n_cells,
              "frame cells": cover["frame_cells"], "frame cells without respondents": cover["without_respondents"]}
    return estimate, notes, {"fit": model, "survey": survey, "frame": frame, "inputs": inputs,
                             "margins": margins if streamed else None}


def _wave_notes(wave: str, survey, frame) -> list[str]:
    """A note naming the frame's waves that the survey lacks (predicted by the model); an error for a wave
    column missing from either table. ``frame`` is a Frame or a dict of the streamed frame's values."""
    import numpy as np
    import pandas as pd

    frame_values = frame.get(wave) if isinstance(frame, dict) else (
        frame.data[wave].unique() if wave in frame.data.columns else None)
    for where, ok in (("survey", wave in survey.data.columns), ("frame", frame_values is not None)):
        if not ok:
            raise MisterpInputError(f"--wave {wave}: the {where} has no column {wave!r}. Name the column that holds "
                                    "each row's wave (poll, year) in both tables.")
    seen = {str(v) for v in survey.data[wave].unique()}
    missing = [str(v) for v in pd.Index(pd.unique(np.asarray(frame_values))).sort_values() if str(v) not in seen]
    if not missing:
        return []
    return [f"the frame's wave(s) {missing} have no respondents: their estimates are the model's prediction "
            f"(rw1({wave}) carries the trend into them; (1|{wave}) gives a new wave the population-level prediction)"]


def _poststratify_frame(args, model, frame, seed, weight, notes):
    """cell_draws (calibrated when --calibrate asks) -> poststratify, on a Frame in memory or on
    FrameChunks streamed (calibrated in one more pass over them)."""
    from ..data.frame import FrameChunks
    from ..data.tables import read_table
    from ..results.calibrate import calibrate
    from ..results.draws import cell_draws
    from ..results.poststratify import poststratify
    from ..results.stream import poststratify_stream

    totals = [read_table(path, "calibration table") for path in args.calibrate]
    turnout_fit, choices = getattr(args, "turnout_fit", None), getattr(args, "choices", None)
    if turnout_fit is not None or choices:
        return _poststratify_votes(args, model, turnout_fit, choices, seed, notes)
    if isinstance(frame, FrameChunks):
        estimate = poststratify_stream(model, frame, by=[args.by], seed=seed, weight=weight, totals=totals)[0]
    else:
        draws = cell_draws(model, frame, seed=seed)
        if totals:
            draws = calibrate(draws, frame, totals, model.family)
        estimate = poststratify(draws, frame, by=args.by, weight=weight)
    if totals:
        notes.append(f"calibrated every draw to the totals in {', '.join(args.calibrate)} (a shift on the link scale)")
    return estimate


def _poststratify_votes(args, model, turnout_fit, choices, seed, notes):
    """Shares renormalised over --choices' sets and weighted by --turnout's model, draw by draw, on the
    frame read whole."""
    from ..data.frame import read_frame
    from ..data.tables import read_table
    from ..results.choices import restrict_choices
    from ..results.draws import cell_draws
    from ..results.poststratify import poststratify

    if args.calibrate:
        raise MisterpInputError("--calibrate does not combine with --turnout or --choices yet; drop one of them.")
    frame = read_frame(args.frame, args.count, join=tuple(args.join or ()))
    draws = cell_draws(model, frame, seed=seed)
    if turnout_fit is not None and draws.draws is None:  # a glm's choice model: normal draws, paired with turnout's
        draws = cell_draws(model, frame, seed=seed, n_draws=1000)
    if choices:
        draws = restrict_choices(draws, frame, read_table(choices, "choice sets"))
        notes.append(f"each cell's shares renormalised over its area's choice set ({choices})")
    weight = None
    if turnout_fit is not None:
        weight = cell_draws(turnout_fit, frame, seed=None if seed is None else seed + 1, n_draws=draws.draws.n_draws)
        notes += args.turnout_notes
    return poststratify(draws, frame, by=args.by, weight=weight)


def _report_command(args) -> int:
    """misterp report: fit (or load a saved fit), then write the HTML report. A frame file is
    streamed: the figures read only its margins, summed chunk by chunk with the fit's checks."""
    from pathlib import Path

    from ..report.html import html_report, report_figures

    if args.saved:
        if args.survey or args.formula:
            raise MisterpInputError("misterp report --fit reports a saved fit as it is; --survey and --formula "
                                    "would refit. Drop them, or drop --fit.")
        estimate, notes, context = _run_poststratify(args, args.saved)
    else:
        if not args.survey or not args.formula:
            raise MisterpInputError("misterp report needs --survey and --formula to fit, or --fit FILE to report "
                                    "a saved fit.")
        estimate, notes, context = _run_fit(args)
    if args.figures and not Path(args.figures).is_dir():
        raise MisterpInputError(f"--figures names {args.figures!r}, which is not a folder; create it first.")
    _report(estimate, notes, args.out, args.quiet)
    left_out = []
    frame = context["margins"] if context.get("margins") is not None else context["frame"]
    figures = report_figures(estimate, context["fit"], context.get("survey"), frame, notes=left_out,
                             wave=getattr(args, "wave", None))
    for note in left_out:
        _note(args, note)
    page = html_report(estimate, context["fit"], context.get("survey"), frame,
                       title=f"misterp: {context['fit'].design.formula.text}", inputs=context["inputs"],
                       notes=notes + left_out, figures=figures)
    if args.figures:
        for figure in figures:
            (Path(args.figures) / f"{figure.name}.png").write_bytes(figure.png)
        _note(args, f"wrote {len(figures)} figure(s) to {args.figures}")
    _write(args.html, page)
    _note(args, f"wrote the report to {args.html} ({len(page) / 1e6:.1f} MB)")
    return 0


def _validate_command(args) -> int:
    """misterp validate: the fit's estimates table, then each method's errors against the truth."""
    from ..data.tables import read_table
    from ..results.validate import validate

    estimate, notes, _ = _run_fit(args)
    scores = validate(estimate, read_table(args.truth, "truth"))
    if args.out or not args.quiet:  # --quiet: the scores alone, as the only table asked for
        _report(estimate, notes, args.out, args.quiet)
        print("\nAgainst the truth:")
    print(scores.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


def _compare_command(args) -> int:
    """misterp compare: score every --formula by held-out data, then print the ranking."""
    from ..data.frame import read_frame
    from ..data.survey import read_survey
    from ..model.formula import parse_formula
    from ..results.crossval import compare_models

    given = [f"--{name.replace('_', '-')}" for name in ("bootstrap", "check", "calibrate", "save_fit",
                                                          "frame_exposure") if getattr(args, name)]
    if given:
        raise MisterpInputError(f"misterp compare scores models by held-out data and makes no estimates, so "
                                f"{', '.join(given)} do(es) not apply. Drop them, or use misterp fit on the chosen "
                                "model.")
    if len(args.formula) < 2:
        raise MisterpInputError("misterp compare ranks models: give --formula once per model, at least twice.")
    area = args.area or (args.by[0] if args.by else None)
    if not area:
        raise MisterpInputError("misterp compare needs the area column the estimates are for (such as state): "
                                "give --area COL, or --by COL (its first column is the area).")
    _check_options(args)
    formulas = [parse_formula(f) for f in args.formula]
    survey = read_survey(args.survey, formulas[0].response, weights=args.weights, join=args.join,
                         trials=args.trials, exposure=args.exposure, recode=args.map)
    frame = read_frame(args.frame, args.count, join=args.join)
    table = compare_models(survey, frame, formulas, area=area, engine=_engine(args), family=family_from_args(args),
                           folds=args.folds, seed=args.seed, schemes=args.cv, drop_missing=args.drop_missing,
                           **structure_options(args))
    for note in [] if args.quiet else table.attrs["notes"]:
        print(f"misterp: {note}", file=sys.stderr)
    if args.out:
        try:
            table.to_csv(args.out, index=False)
        except OSError as e:
            raise MisterpInputError(f"Cannot write the table to {args.out!r}: {e.strerror}. Check that its folder "
                                    "exists and is writable.") from None
        _note(args, f"wrote {len(table)} row(s) to {args.out}")
        return 0
    for name, text in table.drop_duplicates("model").sort_values("model")[["model", "formula"]].itertuples(index=False):
        print(f"{name}: {text}")
    print()
    print(table.drop(columns="formula").to_string(index=False, float_format=lambda v: f"{v:.5f}"))
    return 0


def _batch_command(args) -> int:
    """misterp batch: run the spec's unfinished jobs; exit code 1 when a job failed."""
    from .batch import run

    if args.workers is not None and args.workers < 1:
        raise MisterpInputError(f"--workers takes a positive number of workers, not {args.workers}.")
    summary = run(args.spec, out=args.out, scheduler=args.scheduler, workers=args.workers, quiet=args.quiet,
                  progress=None if not args.no_progress else False)
    return 1 if summary.failed else 0


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise MisterpInputError(f"Cannot write {path!r}: {e.strerror}. Check that its folder exists and is "
                                "writable.") from None


def _exposure_weight(model, column: str | None) -> str | None:
    """The frame column to weight cells by, for a model of counts per unit of exposure."""
    if column and "exposure" not in model.family.stats:
        raise MisterpInputError(
            f"--frame-exposure weights cells by their exposure, for counts (--family poisson); this fit's "
            f"family is {model.family.name}. Drop --frame-exposure.")
    return column


# what the error for a bad prior or sampler setting suggests instead
SETTING_EXAMPLES = {"prior_scale": 2.5, "sd_prior_scale": 1.0, "draws": 1000, "chains": 4, "warmup": 1000}


def default_engine(bootstrap, ml, family: str = "binomial") -> str:
    """The engine when none is named: inla, whose intervals integrate over the group sds
    (docs/coverage.md); laplace for --bootstrap (bootMer refits glmer), --ml (lmer's ML) and a
    categorical outcome (whose linear predictors, one per category, inla does not take yet)."""
    return "laplace" if bootstrap or ml or family in ("categorical", "ordinal") else "inla"


def family_from_args(args):
    """The family that --family names, with --reference for a categorical one and --levels for an ordinal one."""
    from dataclasses import replace

    from ..model.family import family_named

    family = family_named(args.family)
    reference, levels = getattr(args, "reference", None), getattr(args, "levels", None)
    if reference is not None and args.family != "categorical":
        raise MisterpInputError(f"--reference names a categorical outcome's baseline category; it does not apply to "
                                f"--family {args.family}. Drop it, or use --family categorical.")
    if levels is not None and args.family != "ordinal":
        raise MisterpInputError(f"--levels orders an ordinal outcome's levels; it does not apply to --family "
                                f"{args.family}. Drop it, or use --family ordinal.")
    if reference is not None:
        family = replace(family, reference=reference)
    if levels is not None:
        family = replace(family, categories=tuple(v.strip() for v in levels.split(",") if v.strip()))
    return family


def _check_options(args) -> None:
    """Options that do not go together, named before any file is read; an engine not named becomes
    the default one (and ``args.default_engine`` says so)."""
    args.default_engine = args.engine is None
    if args.engine is None:
        args.engine = default_engine(args.bootstrap, args.ml, args.family)
    for name in ("prior_scale", "sd_prior_scale", "draws", "chains", "warmup"):
        value = getattr(args, name, None)
        if value is not None and not value > (0 if name != "warmup" else -1):
            flag = "--" + name.replace("_", "-")
            raise MisterpInputError(f"{flag} must be {'a number > 0' if name != 'warmup' else 'an integer >= 0'}, "
                                    f"not {value}; give e.g. {flag} {SETTING_EXAMPLES.get(name, 1)}.")
    wave = getattr(args, "wave", None)
    if wave:
        args.by = [wave] + [c for c in args.by if c != wave]
    if getattr(args, "choices", None) and args.family != "categorical":
        raise MisterpInputError("--choices sets which categories stand in each area, for a categorical outcome; use "
                                "it with --family categorical, or drop it.")
    if getattr(args, "turnout", None) and args.bootstrap:
        raise MisterpInputError("--turnout pairs the two models' draws; --bootstrap does not combine with it. "
                                "Drop one.")
    if args.bootstrap and args.engine != "laplace":
        raise MisterpInputError("--bootstrap refits a multilevel Laplace fit; use it with --engine laplace.")
    if args.ml and (args.family != "gaussian" or args.engine != "laplace"):
        raise MisterpInputError(
            f"--ml chooses maximum likelihood over REML for a linear mixed model (--family gaussian with the laplace "
            f"engine); it does not apply to --family {args.family} with --engine {args.engine}. Drop --ml.")


def _engine(args):
    """The engine the options choose (the only place where an engine's name picks its class)."""
    if args.engine == "bayes":
        from ..engines.bayes import BayesEngine, Priors

        draws = 1000 if args.draws is None else args.draws
        return BayesEngine(chains=args.chains, warmup=args.warmup, draws=draws, adapt_delta=args.adapt_delta,
                           priors=Priors(coef_scale=args.prior_scale, sd_scale=args.sd_prior_scale,
                                         family_style=getattr(args, "priors", "brms")),
                           seed=args.seed or 0,
                           progress=not (args.no_progress or args.quiet) and sys.stderr.isatty(),
                           remedy=not args.no_remedy, parameterization=args.parameterization)
    if args.engine == "inla":
        from ..engines.bayes import Priors
        from ..engines.inla import InlaEngine

        return InlaEngine(priors=Priors(coef_scale=args.prior_scale, sd_scale=args.sd_prior_scale),
                          draws=InlaEngine.draws if args.draws is None else args.draws, seed=args.seed or 0)
    if args.engine == "glm":
        from ..engines.glm import GlmEngine

        return GlmEngine()
    from ..engines.laplace import LaplaceEngine

    return LaplaceEngine(reml=not args.ml)


def _fit_model(args, cells, notes: list[str]):
    """Fit the chosen engine; its problems and any remedy become notes."""
    from ..engines.bootstrap import bootstrap
    from ..engines.inla import DEFAULT_MAX_EFFECTS, latent_size

    large = getattr(args, "default_engine", False) and args.engine == "inla" and cells.design.group_terms and \
        latent_size(cells) > DEFAULT_MAX_EFFECTS
    if large:  # county-sized terms: laplace is several times faster than inla's sparse path
        args.engine = "laplace"
    with warnings.catch_warnings():  # reported below as notes, once
        warnings.simplefilter("ignore", MisterpWarning)
        model = _engine(args).fit(cells)
        if args.engine == "bayes":
            notes += [model.remedy_note] if model.remedy_note else []
        elif args.engine == "laplace" and args.bootstrap:
            model = bootstrap(model, nsim=args.bootstrap, use_u=True, seed=args.seed, workers=args.workers,
                              progress=not (args.no_progress or args.quiet))
    if large:
        notes.append(f"engine: laplace, the default for this model: its {latent_size(cells):,} fixed and group effects "
                     f"exceed the {DEFAULT_MAX_EFFECTS:,} the inla engine takes by default (--engine inla fits them "
                     "too, on its sparse path, in several times laplace's time)")
    elif getattr(args, "default_engine", False):
        laplace = ("its hyperparameters' posterior mode" if any(g.structured for g in cells.design.group_terms)
                   else "lme4's glmer fit")
        notes.append(f"engine: inla, the default (--engine laplace gives {laplace}, --engine bayes samples the "
                     "posterior by NUTS)" if args.engine == "inla" else
                     f"engine: laplace, the default for a {cells.family.name} outcome (maximum likelihood with the "
                     "Laplace approximation; --engine bayes samples brms's model; the inla engine takes one linear "
                     "predictor per cell)"
                     if cells.family.categories is not None else
                     f"engine: {args.engine}, the default with --bootstrap or --ml (lme4's fit, as bootMer refits it)")
    notes += [f"warning: {m}" for m in model.problems()]
    return model


def _note(args, text: str) -> None:
    if not args.quiet:
        print(f"misterp: {text}", file=sys.stderr)


def _report(estimate, notes: list[str], out: str | None, quiet: bool = False) -> None:
    """Notes to stderr (none when ``quiet``), with the unseen levels; the table to ``out`` (CSV) or stdout."""
    for term, levels in estimate.unseen.items():
        notes.append(f"{len(levels)} level(s) of {term} are not in the survey and get the population-level "
                     f"prediction: {', '.join(levels[:10])}{' ...' if len(levels) > 10 else ''}")
    for note in [] if quiet else notes:
        print(f"misterp: {note}", file=sys.stderr)
    if out:
        try:
            estimate.table.to_csv(out, index=False)
        except OSError as e:
            raise MisterpInputError(f"Cannot write the table to {out!r}: {e.strerror}. Check that its folder "
                                    "exists and is writable.") from None
        if not quiet:
            print(f"misterp: wrote {len(estimate.table)} row(s) to {out}", file=sys.stderr)
    else:
        print(estimate.table.to_string(index=False))


def _poststratify(args) -> int:
    estimate, notes, _ = _run_poststratify(args, args.fit)
    _report(estimate, notes, args.out, args.quiet)
    return 0


def _run_poststratify(args, path: str):
    """Load a saved fit and poststratify it onto the frame file, streamed in chunks as misterp fit
    streams it (checks, coverage and the report's margins in one scan; never read whole)."""
    from ..data.frame import FrameChunks
    from ..results.compare import frame_margins
    from ..results.extras import extra
    from ..results.interval_notes import interval_notes
    from ..results.saved import load_fit
    from ..results.stream import poststratify_stream, scan_frame

    model = load_fit(path)
    frame = FrameChunks(args.frame, args.count, join=tuple(args.join or ()))
    margins = frame_margins(model.design)
    notes = []
    scan_frame(model.cells, frame, margins, notes)
    weight = _exposure_weight(model, args.frame_exposure)
    seed = args.seed if args.seed is not None else None if model.draw_seed is not None else 1
    estimate = poststratify_stream(model, frame, by=[args.by], seed=seed, weight=weight)[0]
    inputs = {"saved fit": path, "frame": args.frame, "formula": model.design.formula.text, "engine": model.kind}
    # nesting is judged on the fit's own cells, which hold the model's columns (a --by column outside
    # the model is not among them, and gets the plain note)
    notes += extra("the interval notes", notes, interval_notes, model, args.by, model.cells.table, default=[])
    return estimate, notes, {"fit": model, "frame": frame, "inputs": inputs, "margins": margins}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _command(args)
    except MisterpInputError as e:
        print(f"misterp: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left early (misterp fit ... | head): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit flush does not fail again
        return 141  # as a shell reports a command ended by SIGPIPE


def _command(args) -> int:
    """Run the subcommand ``args`` name."""
    if args.command == "demo":
        from .demo import main as demo_main
        return demo_main(args.seeds, args.json, args.nsim, args.seed, args.example,
                         progress=not (args.no_progress or args.quiet or args.json), html=args.html,
                         quiet=args.quiet)
    commands = {"poststratify": _poststratify, "report": _report_command, "validate": _validate_command,
                "compare": _compare_command, "batch": _batch_command, "fit": _fit}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
