"""Model comparison: scoring models by data they were not fitted to.

Three schemes, each giving every model one loss per unit (a respondent or an area), so that
models are compared pairwise on the same units:

- ``kfold``: K-fold cross-validation over respondents, stratified by area: each area's
  respondents are spread over the folds, so every area with two or more respondents is in
  every training fold and a model with the area as a fixed effect (no pooling) can be scored.
  An area with one respondent is never held out (its one row always trains).
- ``areas``: leave-areas-out cross-validation: the areas are dealt into K folds and a fold's
  areas are held out whole, so the model predicts areas it never saw, as MRP does for areas
  without respondents. A model with the area as a fixed effect cannot do that and is skipped
  with a note; one with the area as a grouping term predicts it at the population level (b = 0,
  or a posterior's new-level draws).
- ``loo``: PSIS-LOO of a Bayesian fit through ArviZ (an optional dependency), from each
  respondent's log-likelihood at every posterior draw. It scores individual responses, and can
  rank MRP models poorly for area estimates (Kuh et al. 2023), so it comes with that warning.

Scores are losses (lower is better), per respondent: ``log_loss`` (minus the log density of the
response) for every family, ``brier`` ((y - p)^2) for binomial, ``squared_error`` ((y - E y)^2)
for poisson and gaussian; per area: ``area_mse``, the squared error of the area's mean prediction of a
fold's held-out respondents against their mean response, averaged over folds. Held-out respondents are predicted
through the one prediction path, :func:`misterp.cell_draws` (point predictions), and scored
through the family's own log-likelihood (:meth:`Family.loglik` on each respondent's statistics).

:func:`compare_models` runs the schemes and ranks the models as ArviZ's ``loo_compare`` does:
each model's mean loss and its standard error, and its difference from the best model with the
standard error of the paired differences.

Example
-------
>>> import numpy as np, pandas as pd
>>> from misterp import Survey
>>> rng = np.random.default_rng(1)
>>> g = rng.integers(0, 6, 600)
>>> data = pd.DataFrame({"y": rng.binomial(1, np.linspace(0.2, 0.8, 6)[g]), "g": g})
>>> table = compare_models(Survey(data, "y"), None, ["y ~ 1", "y ~ (1|g)"], area="g", seed=1)
>>> kfold = table[(table["scheme"] == "kfold") & (table["score"] == "log_loss")]
>>> kfold["model"].tolist(), bool(kfold["diff"].iloc[1] > 2 * kfold["diff_se"].iloc[1])
(['m2', 'm1'], True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..data.frame import Frame
from ..data.survey import Survey
from ..engines.bayes.inference_data import pointwise_loglik, psis_loo, relative_efficiency
from ..engines.fit import Fit
from ..errors import MisterpInputError, MisterpWarning
from ..model.cells import as_formula, collapse, prepare
from ..model.design import Levels
from ..model.family import DEFAULT_FAMILY, Family, as_family
from ..model.formula import Formula
from ..model.terms import build_structures
from .draws import cell_draws

SCHEMES = ("kfold", "areas", "loo")
UNITS = {"area_mse": "areas"}  # every other score is per respondent
LOO_WARNING = ("LOO scores individual responses, and can rank MRP models poorly for area estimates "
               "(Kuh et al. 2023); compare them on area_mse with --cv kfold,areas too.")
COLUMNS = ["scheme", "score", "unit", "rank", "model", "n", "loss", "se", "diff", "diff_se", "formula"]
_COUNT = "_misterp_count"  # the frame count column of the rows predicted


@dataclass(frozen=True)
class Respondents:
    """The respondents every model is scored on, one row each.

    Attributes
    ----------
    survey : Survey
        Complete in every formula's columns and the area's; rows given as binomial cells
        expanded into one row per respondent.
    area : (n,) int array
        Each respondent's area code.
    area_levels : pd.Index
        The area values, (n_areas,), in code order.
    notes : list of str
    """

    survey: Survey
    area: np.ndarray
    area_levels: pd.Index
    notes: list


def respondents(survey: Survey, formulas, area: str, drop_missing: bool = False) -> Respondents:
    """The respondents that every formula is scored on: complete in all their columns (so that
    every model sees the same rows) and one row per respondent.

    A survey given as binomial cells (``--trials``, ``cbind(s, n - s)`` or ``cbind(s, f)``) is
    expanded: a row of s successes in n trials becomes n respondents, s of them answering 1, with
    trials 1 (failures 1 - y), which leaves each model's likelihood as it was.
    """
    formulas = _one_outcome(formulas)
    if area not in survey.data.columns:
        raise MisterpInputError(
            f"The area column {area!r} is not in the survey (its columns: {list(survey.data.columns)[:20]}). "
            "Name the column whose groups the estimates are for (--area, or the first --by column).")
    formula = formulas[0]
    if formula.response != survey.outcome:
        survey = replace(survey, outcome=formula.response)
    columns = list(dict.fromkeys([c for f in formulas for c in f.columns] + [area]))
    survey, dropped = survey.complete(columns, drop_missing)
    notes = [f"dropped {dropped} survey row(s) with missing values in the models' columns"] if dropped else []
    if formula.trials or formula.failures or survey.trials:
        before = len(survey.data)
        survey = expand_cells(survey, formula)
        notes.append(f"expanded {before} survey rows given as cells into {len(survey.data)} respondents, "
                     "the units that are held out and scored")
    codes, levels = pd.factorize(survey.data[area], sort=True)
    return Respondents(survey, codes.astype(np.int64), pd.Index(levels), notes)


def _one_outcome(formulas) -> list[Formula]:
    """The formulas parsed, once they are known to model one outcome."""
    formulas = [as_formula(f) for f in formulas]
    left = {(f.response, f.trials, f.failures) for f in formulas}
    if len(left) > 1:
        raise MisterpInputError(
            f"Models are compared on one outcome, but the formulas name different ones: "
            f"{sorted(str(o) for o in left)}. Give every --formula the same left-hand side.")
    return formulas


def expand_cells(survey: Survey, formula: Formula) -> Survey:
    """One row per respondent from rows given as binomial cells.

    Returns a Survey whose outcome column holds 0/1 answers and whose trials column (``--trials``
    or the formula's) holds 1, or whose failures column holds 1 - y; every other column repeats.
    """
    data = survey.data
    trials_column = formula.trials or survey.trials
    successes = pd.to_numeric(data[formula.response], errors="coerce").to_numpy(float)
    if formula.failures:
        trials = successes + pd.to_numeric(data[formula.failures], errors="coerce").to_numpy(float)
    else:
        trials = pd.to_numeric(data[trials_column], errors="coerce").to_numpy(float)
    ok = np.isfinite(successes) & np.isfinite(trials) & (successes >= 0) & (successes <= trials) \
        & (trials == np.round(trials)) & (successes == np.round(successes))
    if not ok.all():
        bad = (np.flatnonzero(~ok)[:8] + 1).tolist()
        raise MisterpInputError(
            f"Rows {bad} of the survey do not hold whole numbers with 0 <= successes <= trials, so they cannot "
            "be split into respondents for cross-validation. Fix those rows.")
    n = trials.astype(np.int64)
    row = np.repeat(np.arange(len(data)), n)
    # the first s of a row's n respondents answer 1
    position = np.arange(len(row)) - np.repeat(np.cumsum(n) - n, n)
    y = (position < np.repeat(successes.astype(np.int64), n)).astype(float)
    out = data.iloc[row].reset_index(drop=True)
    out[formula.response] = y
    if formula.failures:
        out[formula.failures] = 1.0 - y
    if trials_column:
        out[trials_column] = 1.0
    return replace(survey, data=out)


def kfold_folds(area: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold of each respondent, stratified by area, (n,) ints in 0..folds-1; -1 for the one
    respondent of an area that has only one (always in training, never scored).

    Within each area the respondents are shuffled and dealt round the folds from a random
    first fold, so an area's respondents split as evenly as they can and fold sizes balance.
    """
    rng = np.random.default_rng([seed, 0])
    n_areas = int(area.max()) + 1
    counts = np.bincount(area, minlength=n_areas)
    order = np.lexsort((rng.random(len(area)), area))  # by area, shuffled within
    start = np.cumsum(counts) - counts
    rank = np.empty(len(area), dtype=np.int64)
    rank[order] = np.arange(len(area)) - start[area[order]]
    first = rng.integers(folds, size=n_areas)
    fold = (rank + first[area]) % folds
    fold[counts[area] < 2] = -1
    return fold


def area_folds(area: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold of each respondent when whole areas are held out, (n,) ints in 0..K-1, K =
    min(folds, n_areas): the areas are shuffled and dealt round the folds."""
    rng = np.random.default_rng([seed, 1])
    n_areas = int(area.max()) + 1
    of_area = np.empty(n_areas, dtype=np.int64)
    of_area[rng.permutation(n_areas)] = np.arange(n_areas) % min(folds, n_areas)
    return of_area[area]


def fit_cells(engine, cells) -> tuple[Fit, list[str]]:
    """Fit ``cells`` with ``engine``; returns the fit and its problems (warnings are collected, not
    shown). A formula without grouping terms goes to the glm engine when the engine is laplace
    (glmer needs a grouping term; glm is the same model without one)."""
    from ..engines.glm import GlmEngine
    from ..engines.laplace import LaplaceEngine

    if isinstance(engine, LaplaceEngine) and not cells.design.group_terms:
        engine = GlmEngine()
    # problems come back as notes; a trial step of the optimizer may overflow exp harmlessly
    with warnings.catch_warnings(), np.errstate(over="ignore"):  # the engines pin BLAS to one thread
        warnings.simplefilter("ignore", MisterpWarning)
        fit = engine.fit(cells)
    return fit, fit.problems()


def predict_rows(fit: Fit, data: pd.DataFrame) -> np.ndarray:
    """The fit's point prediction of the mean of each row of ``data``, (n_rows,), through
    :func:`misterp.cell_draws` on the rows' distinct predictor combinations (lme4's ``predict``,
    or a posterior's mean prediction, with its new-level draws for levels the fit never saw)."""
    predictors = fit.design.formula.predictors
    if predictors:
        levels, codes = Levels.learn(data, predictors)
        table = levels.table().astype({c: data[c].dtype for c in predictors})
    else:
        codes, table = np.zeros(len(data), dtype=np.int64), pd.DataFrame(index=[0])
    frame = Frame(table.assign(**{_COUNT: 1.0}), _COUNT)
    # mode fits predict at their point and need no draws; a posterior's point is its draws' mean
    draws = cell_draws(fit, frame, n_draws=None if fit.point == "mean" else 0)
    return draws.point[codes]


def fit_dispersion(fit: Fit) -> float:
    """The fit's residual variance at its point (a gaussian's sigma^2; 1 otherwise): a posterior's
    mean over draws; for a glm, R's RSS / (N - p) on its training cells."""
    if not fit.family.profiled:
        return 1.0
    if fit.point == "mean":
        return float(np.mean(fit.dispersion_draws(fit.n_draws)))
    return float(fit.dispersion_draws(1)[0, 0])


@dataclass(frozen=True)
class Outcomes:
    """Each respondent's outcome as its family sees it.

    Attributes
    ----------
    stats : dict of (n,) arrays
        The family's statistics of each respondent alone (a cell of one).
    y : (n,) array
        The response (a 0/1 answer, a count, a number; a category's index).
    observed : (n,) or (n, K) array
        What a predicted mean (times ``scale``) predicts: the response, or each category's 0/1 indicator.
    scale : (n,) array
        What a predicted mean multiplies by to predict y: the exposure of a count, else 1.
    constant : (n,) array
        The log-likelihood's constant of each row that the statistics do not carry
        (a count's y log e - log y!; 0 for the others).
    """

    stats: dict
    y: np.ndarray
    scale: np.ndarray
    constant: np.ndarray
    observed: np.ndarray


def outcomes(survey: Survey, formula: Formula, family: Family) -> Outcomes:
    """The respondents' outcomes, statistics and row constants through the family's ``rows``."""
    data = survey.data
    rows = family.rows(data, formula, trials=survey.trials, exposure=survey.exposure)
    stats = family.cell_stats(rows, np.arange(len(data)), len(data))
    scale = rows.exposure if rows.exposure is not None else rows.count
    constant = np.zeros(len(data))
    if rows.constant != 0.0:
        # the constant is a sum over rows: find each row's from one row of each (y, scale) pair
        keys = pd.MultiIndex.from_arrays([rows.total, scale])
        codes, uniques = keys.factorize()
        first = np.zeros(len(uniques), dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]
        each = np.array([family.rows(data.iloc[[i]], formula, trials=survey.trials,
                                     exposure=survey.exposure).constant for i in first])
        constant = each[codes]
    observed = family.observed_mean(stats)
    observed = observed * (scale if observed.ndim == 1 else scale[:, None])
    return Outcomes(stats, rows.total, scale, constant, observed)


def respondent_losses(family: Family, out: Outcomes, mean: np.ndarray, dispersion) -> dict:
    """Per-respondent losses of predicted means ``mean`` (n,) (per unit of exposure): ``log_loss``
    (minus the family's log density of the response, at residual variance ``dispersion``) and
    ``brier`` (binomial) or ``squared_error`` (the others), each (n,)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        eta = family.link_function(mean)
        log_density = family.loglik(out.stats, eta, constant=True, dispersion=dispersion) + out.constant
    error = (out.observed - _times(out.scale, mean)) ** 2
    if error.ndim == 2:  # a share per category: the multiclass Brier score
        error = error.sum(axis=1)
    brier = family.name == "binomial" or family.categories is not None
    return {"log_loss": -log_density, "brier" if brier else "squared_error": error}


def _times(scale: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Each respondent's scale times its predicted mean, (n,) or (n, K)."""
    return scale * mean if mean.ndim == 1 else scale[:, None] * mean


def area_losses(out: Outcomes, mean: np.ndarray, area: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Per area, (n_areas,): the squared error of the mean prediction of its respondents held out in
    a fold against their mean response, averaged over the folds that hold some of them out; NaN for
    an area never held out.

    Each fold is its own test: averaging predictions over folds first would let a no-pooling
    model reproduce the area's whole mean from its training folds' means.
    """
    n_areas = int(area.max()) + 1
    held = fold >= 0
    cell = fold[held] * n_areas + area[held]  # (fold, area) pairs
    size = (int(fold.max()) + 1) * n_areas
    n = np.bincount(cell, minlength=size)
    predicted, observed = _times(out.scale, mean)[held], out.observed[held]
    present = n > 0
    squared = np.zeros(size)
    for column in range(1 if predicted.ndim == 1 else predicted.shape[1]):  # summed over the categories
        pick = (lambda a: a) if predicted.ndim == 1 else (lambda a: a[:, column])
        gap = np.bincount(cell, weights=pick(predicted), minlength=size) - np.bincount(
            cell, weights=pick(observed), minlength=size)
        squared += np.where(present, gap ** 2 / np.maximum(n, 1) ** 2, 0.0)
    tests = present.reshape(-1, n_areas).sum(axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(tests > 0, squared.reshape(-1, n_areas).sum(axis=0) / tests, np.nan)


def cross_validate(survey: Survey, formula, fold: np.ndarray, engine, family: Family | str = DEFAULT_FAMILY,
                   structures: dict | None = None):
    """Held-out predictions of every respondent with a fold (``fold >= 0``), from a fit of the
    other folds' respondents (and those with fold -1). ``structures`` gives structured terms their levels
    and neighbours from all the data, so that a held-out area is predicted from its neighbours
    (:func:`misterp.model.terms.build_structures`).

    Returns (mean (n,) or (n, K), dispersion (n,), problems): the predicted mean of each respondent (NaN
    where never held out), the residual variance of the fit that predicted it, and each fold fit's
    list of problems. A held-out respondent with a fixed-effect level its training folds lack raises
    :class:`MisterpInputError`.
    """
    formula, family = as_formula(formula), as_family(family)
    data = survey.data
    mean, dispersion = None, np.ones(len(data))
    problems = []
    for k in range(int(fold.max()) + 1):
        held = fold == k
        if not held.any():
            continue
        train = replace(survey, data=data[~held].reset_index(drop=True))
        fit, found = fit_cells(engine, collapse(train, formula, family, structures))
        problems.append(found)
        try:
            predicted = predict_rows(fit, data[held])
            if mean is None:  # (n,), or (n, K) shares
                mean = np.full((len(data),) + predicted.shape[1:], np.nan)
            mean[held] = predicted
        except MisterpInputError as e:
            raise MisterpInputError(f"Fold {k + 1}'s held-out respondents cannot be predicted from the other "
                                    f"folds by {formula.text!r}: {e}") from None
        dispersion[held] = fit_dispersion(fit)
    if mean is None:
        mean = np.full(len(data), np.nan)
    return mean, dispersion, problems


def loo_losses(fit: Fit, survey: Survey, block: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """PSIS-LOO of a posterior fit through ArviZ, per respondent: minus each respondent's
    leave-one-out log predictive density (n,) and its Pareto k (n,).

    Respondents alike in their predictors and response have the same log-likelihood at every
    draw, hence the same LOO value; each such group is computed once, ``block`` groups at a
    time, with the relative efficiency of the whole posterior (as ``arviz.loo`` computes it).
    """
    _arviz()  # named before any work, when it is missing
    if fit.point != "mean" or not hasattr(fit, "to_arviz"):
        raise MisterpInputError("PSIS-LOO needs posterior draws: use the bayes engine (--engine bayes), or "
                                "cross-validate (--cv kfold,areas).")
    formula, family = fit.design.formula, fit.family
    out = outcomes(survey, formula, family)
    data = survey.data
    predictors = formula.predictors
    combo = Levels.learn(data, predictors)[1] if predictors else np.zeros(len(data), dtype=np.int64)
    codes, uniques = pd.MultiIndex.from_arrays([combo, out.y, out.scale]).factorize()
    first = np.zeros(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    chains = next(iter(fit.samples.values())).shape[0]
    n_draws = fit.n_draws
    dispersion = fit.dispersion_draws(n_draws)
    reff = relative_efficiency(fit)
    elpd, pareto = np.empty(len(uniques)), np.empty(len(uniques))
    for start in range(0, len(uniques), block):
        rows = first[start:start + block]
        table = data.iloc[rows][predictors].reset_index(drop=True) if predictors else \
            pd.DataFrame(index=range(len(rows)))
        draws = cell_draws(fit, Frame(table.assign(**{_COUNT: 1.0}), _COUNT)).draws
        mean = np.vstack(list(draws.chunks(256)))  # (n_draws, len(rows))
        stats = {k: v[rows] for k, v in out.stats.items()}
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            eta = family.link_function(mean)
        loglik = pointwise_loglik(family, stats, eta, dispersion, out.constant[rows])
        # high Pareto k are counted and reported as a note
        elpd[start:start + block], pareto[start:start + block] = psis_loo(
            loglik.reshape(chains, n_draws // chains, len(rows)), reff)
    return -elpd[codes], pareto[codes]


def _arviz():
    try:
        import arviz
    except ImportError:
        raise MisterpInputError("PSIS-LOO needs ArviZ, an optional dependency: pip install misterp[arviz] "
                                "(or cross-validate instead: --cv kfold,areas).") from None
    return arviz


def rank_models(losses: dict, formulas: dict) -> pd.DataFrame:
    """The ranking table from per-unit losses.

    Parameters
    ----------
    losses : dict
        (scheme, score) -> {model name: (n_units,) losses}, the models' units aligned; units that
        are NaN for any model (never held out) are left out.
    formulas : dict
        Model name -> its formula text.

    Returns
    -------
    DataFrame, one row per scheme, score and model, ranked within each (scheme, score) by mean
    loss: ``n`` units, ``loss`` (their mean), ``se`` (its standard error), ``diff`` (the loss
    minus the best model's) and ``diff_se`` (the standard error of the paired differences).
    """
    rows = []
    for (scheme, score), by_model in losses.items():
        names = list(by_model)
        values = np.vstack([by_model[m] for m in names])  # (n_models, n_units)
        values = values[:, ~np.isnan(values).any(axis=0)]
        n = values.shape[1]
        loss = values.mean(axis=1)
        best = int(np.argmin(loss))
        with np.errstate(invalid="ignore"):
            se = values.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(names), np.nan)
            differences = values - values[best]
            diff_se = differences.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(names), np.nan)
        rank = np.empty(len(names), dtype=int)
        rank[np.argsort(loss, kind="stable")] = np.arange(1, len(names) + 1)
        for i, name in enumerate(names):
            rows.append({"scheme": scheme, "score": score, "unit": UNITS.get(score, "respondents"),
                         "rank": int(rank[i]), "model": name, "n": n, "loss": loss[i], "se": se[i],
                         "diff": loss[i] - loss[best], "diff_se": diff_se[i], "formula": formulas[name]})
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = {key: i for i, key in enumerate(losses)}
    table["_order"] = [order[(s, c)] for s, c in zip(table["scheme"], table["score"])]
    return table.sort_values(["_order", "rank"], kind="stable").drop(columns="_order").reset_index(drop=True)


def compare_models(survey: Survey, frame: Frame | None, formulas, *, area: str, engine=None,
                   family: Family | str = DEFAULT_FAMILY, folds: int = 5, seed: int | None = None, schemes=None,
                   drop_missing: bool = False, order: dict | None = None, adjacency=None) -> pd.DataFrame:
    """Score and rank models by held-out data.

    Parameters
    ----------
    survey : Survey
        Respondents (or binomial cells, expanded into respondents).
    frame : Frame, optional
        When given, each formula is first checked against it as ``misterp fit`` checks it, so
        every model compared can be poststratified.
    formulas : list of str or Formula
        The models, named m1, m2, ... in this order.
    area : str
        The survey column whose groups the estimates are for (such as state): K-fold is
        stratified by it, leave-areas-out holds its levels out, and ``area_mse`` is scored by it.
    engine : engine, optional
        Anything with ``fit(cells)``: ``LaplaceEngine()`` by default (formulas without grouping
        terms then go to ``GlmEngine``), ``GlmEngine()`` or ``BayesEngine(...)``.
    family : Family or str
        A family or its name ("binomial", "poisson", "gaussian").
    folds : int
        K, for both cross-validations (leave-areas-out uses min(K, areas) folds).
    seed : int, optional
        Seeds the folds (0 when None), so a comparison repeats.
    schemes : sequence of {"kfold", "areas", "loo"}, optional
        By default kfold and areas, or loo alone for a Bayesian engine (K-fold refits it K times
        per model per scheme).
    order, adjacency : optional
        Structured terms' level order and neighbours (:func:`misterp.model.cells.prepare`); their
        levels come from the whole survey and the frame, so a held-out area keeps its neighbours.

    Returns
    -------
    DataFrame
        The ranking (see :func:`rank_models`): scheme, score, unit, rank, model, n, loss, se,
        diff, diff_se, formula. ``.attrs["notes"]`` lists what the user should know (respondents
        never held out, models skipped, fits with problems, LOO's warning and Pareto k).
    """
    from ..engines.bayes import BayesEngine
    from ..engines.laplace import LaplaceEngine

    engine, family = LaplaceEngine() if engine is None else engine, as_family(family)
    formulas = _one_outcome(formulas)
    if not formulas:
        raise MisterpInputError("Give at least one formula to score.")
    # a categorical or ordinal outcome's categories, from all respondents: every fold's fit predicts them all
    family = family.bind(survey.data[survey.outcome])
    names = {f"m{i + 1}": f for i, f in enumerate(formulas)}
    bayes = isinstance(engine, BayesEngine)
    schemes = list(schemes or (("loo",) if bayes else ("kfold", "areas")))
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise MisterpInputError(f"Unknown scheme(s) {unknown}; the schemes are {list(SCHEMES)}.")
    if int(folds) != folds or folds < 2:
        raise MisterpInputError(f"--folds must be a whole number of at least 2, not {folds}.")
    if "loo" in schemes:
        _arviz()  # named before any fit, when it is missing
        if not bayes:
            raise MisterpInputError("PSIS-LOO needs posterior draws: use it with the bayes engine (--engine bayes), "
                                    "or cross-validate (--cv kfold,areas).")
    seed = 0 if seed is None else int(seed)
    if frame is not None:
        for formula in formulas:
            prepare(survey, frame, formula, drop_missing=drop_missing, family=family, order=order, adjacency=adjacency)
    people = respondents(survey, formulas, area, drop_missing)
    structures = {name: build_structures(f, people.survey.data, None if frame is None else frame.data, order,
                                         adjacency)[0] if any(g.structured for g in f.groups) else None
                  for name, f in names.items()}
    notes = list(people.notes)
    if survey.weights:
        notes.append("design weights are not used in scoring: every respondent counts once")
    n_areas = len(people.area_levels)
    scored = {name: outcomes(people.survey, f, family) for name, f in names.items()}
    losses: dict = {}
    problems: dict = {name: [] for name in names}

    def held_out(scheme: str, fold: np.ndarray, models: list[str], skip_unpredictable: bool) -> None:
        """Cross-validate ``models`` over ``fold`` into ``losses`` (per respondent, then per area)."""
        held = fold >= 0
        for name in models:
            try:
                mean, dispersion, found = cross_validate(people.survey, names[name], fold, engine, family,
                                                         structures[name])
            except MisterpInputError as e:
                if not skip_unpredictable:
                    raise
                notes.append(f"{scheme}: {name} not scored: {e}")
                continue
            problems[name] += found
            for key, value in respondent_losses(family, scored[name], mean, dispersion).items():
                losses.setdefault((scheme, key), {})[name] = np.where(held, value, np.nan)
            losses.setdefault((scheme, "area_mse"), {})[name] = area_losses(scored[name], mean, people.area, fold)

    for scheme in schemes:
        if scheme == "kfold":
            fold = kfold_folds(people.area, folds, seed)
            lonely = int((fold < 0).sum())
            notes.append(f"kfold: {folds} folds of {len(fold)} respondents stratified by {area}, so that every "
                         f"{area} is in every training fold" + (f"; {lonely} respondent(s) alone in their {area} "
                                                                "are never held out" if lonely else ""))
            if bayes:
                notes.append(f"kfold refits the bayes engine {folds} times per model; PSIS-LOO (--cv loo) fits "
                             "each model once")
            held_out("kfold", fold, list(names), skip_unpredictable=False)
        elif scheme == "areas":
            if n_areas < 2:
                notes.append(f"areas: the survey has one {area}, so none can be held out; skipped")
                continue
            fold = area_folds(people.area, folds, seed)
            able = []
            for name, formula in names.items():
                if any(area in term.columns for term in formula.fixed):
                    notes.append(f"areas: {name} has {area} as a fixed effect, so it cannot predict a {area} it "
                                 "never saw; not scored")
                else:
                    able.append(name)
            notes.append(f"areas: {n_areas} {area} levels held out whole, in {int(fold.max()) + 1} folds")
            # another fixed effect may have a level only in the held-out areas (a region): that model is skipped
            held_out("areas", fold, able, skip_unpredictable=True)
        else:
            notes.append(f"loo: {LOO_WARNING}")
            for name, formula in names.items():
                cells, _ = prepare(people.survey, None, formula, family=family, order=order, adjacency=adjacency)
                fit, found = fit_cells(engine, cells)
                problems[name].append(found)
                loss, pareto = loo_losses(fit, people.survey)
                losses.setdefault(("loo", "log_loss"), {})[name] = loss
                bad = int((pareto > 0.7).sum())
                if bad:
                    notes.append(f"loo: {name}: {bad} respondent(s) with Pareto k > 0.7, whose LOO values are "
                                 "unreliable; K-fold (--cv kfold) does not depend on them")
    for name, fits in problems.items():
        troubled = [found for found in fits if found]
        if troubled:
            notes.append(f"{name}: {len(troubled)} of its {len(fits)} fits had problems, such as: {troubled[0][0]}")
    table = rank_models(losses, {name: f.text for name, f in names.items()})
    table.attrs["notes"] = notes
    return table
