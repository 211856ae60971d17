"""What the coverage studies found about an interval, as notes for the run that uses it.

``bench/coverage.py`` measures how often each engine's 95% interval holds the truth on
known populations (docs/coverage.md). These findings apply to a user's run:

- bootMer's ``use.u = TRUE`` bootstrap (the article's) holds the fitted group effects
  fixed in every refit, so the uncertainty of a group's own effect never enters its
  interval: estimates by a model's grouping factor under-cover badly.
- The laplace engine's normal approximation takes the group sds as known. Where a sd is
  estimated at 0 (a singular fit) that term's uncertainty leaves every interval, and where
  groups hold a handful of respondents the approximation at the mode is narrow: intervals
  by group under-cover a little. The inla (the default) and bayes engines integrate over the sds.
- Estimates by a column the model has no term for differ between groups only by their
  frame composition; their intervals assume the groups do not differ otherwise.

The article's "poststratify the ±2 SE bounds" over-covers; :data:`CELL_BOUNDS` says so
where it runs.

Example
-------
>>> import pandas as pd
>>> from misterp import LaplaceEngine, Survey, bootstrap, prepare
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5})
>>> boot = bootstrap(LaplaceEngine().fit(prepare(Survey(data, "y"), None, "y ~ (1|g)")[0]), nsim=20, seed=1,
...                  progress=False)
>>> [note[:48] for note in interval_notes(boot, ["g"])]
["the bootstrap's intervals by g under-cover: use."]
"""

from __future__ import annotations

import pandas as pd

from ..engines.fit import Fit

# Measured by bench/coverage.py (docs/coverage.md): the share of 95% intervals by group holding the truth
# on the states design, for sparse groups of 1-5 respondents and on the CCES design.
BOOTSTRAP_GROUP_COVERAGE = "85% of the time on the states design, 34% for groups of 1-5 respondents and 68% on CCES"
BETTER_GROUP_COVERAGE = "94%, 91% and 80%"
BAYES_GROUP_COVERAGE = "93%, 93% and 90%"
INLA_GROUP_COVERAGE = "94%, 94% and 91%"
LAPLACE_SINGULAR, BAYES_SINGULAR, INLA_SINGULAR = "80% of the time", "90%", "91%"
LAPLACE_SPARSE, BAYES_SPARSE, INLA_SPARSE = "91% of the time", "93%", "94%"
SPARSE_RESPONDENTS = 5  # the sparse design's groups hold 1-5
CELL_BOUNDS = ("poststratifying the ±2 SE bounds treats the cells as perfectly correlated, so the interval "
               "over-covers: it held the truth in 100% of 500 simulated surveys of this design (nominal 95%), "
               "the delta method in 96.2% (docs/coverage.md)")


def interval_notes(fit: Fit, by, data: pd.DataFrame | None = None) -> list[str]:
    """Notes on the intervals of ``fit``'s estimates by the frame columns ``by`` (a list).

    ``data`` (the survey's rows, optional) shows which ``by`` columns outside the model hold a
    grouping term of the model nested in them (states in regions). Returns one sentence per
    finding that applies, each naming a better method.
    """
    design = fit.design
    notes = []
    grouping = {c for term in design.group_terms for c in term.columns}
    in_model = set(design.formula.predictors)
    by_groups = [c for c in by if c in grouping]
    if fit.kind == "bootstrap" and getattr(fit, "use_u", False) and by_groups:
        notes.append(
            f"the bootstrap's intervals by {', '.join(by_groups)} under-cover: use.u = TRUE holds each group's "
            f"fitted effect fixed in every refit, so its own uncertainty is left out. In the coverage studies such "
            f"intervals held the truth {BOOTSTRAP_GROUP_COVERAGE} (nominal 95%), where the laplace engine's normal "
            f"approximation held it {BETTER_GROUP_COVERAGE}, the bayes engine {BAYES_GROUP_COVERAGE} and the inla "
            f"engine {INLA_GROUP_COVERAGE}. Use --engine inla (the default without --bootstrap), or "
            f"--engine bayes (docs/coverage.md)")
    if fit.kind == "laplace" and by_groups:
        singular = fit.singular_terms()
        if singular:
            notes.append(
                f"intervals by {', '.join(by_groups)} may be too narrow: this fit is singular (the sd of "
                f"{', '.join(singular)} is estimated at 0), and the normal approximation takes the sds as known, "
                f"so that term's uncertainty is left out. On the CCES coverage study, where nearly every fit was "
                f"singular, such state intervals held the truth {LAPLACE_SINGULAR}; --engine inla (the default up to "
                f"1,000 effects), which integrates over the sds, held it {INLA_SINGULAR}, and --engine bayes "
                f"{BAYES_SINGULAR} (docs/coverage.md)")
        elif any(_median_respondents(fit, c) <= SPARSE_RESPONDENTS for c in by_groups):
            notes.append(
                f"intervals by {', '.join(by_groups)} may be a little narrow: most groups have at most "
                f"{SPARSE_RESPONDENTS} respondents, where the normal approximation at the mode held the truth "
                f"{LAPLACE_SPARSE} in the coverage study; --engine inla (the default up to 1,000 effects) held it "
                f"{INLA_SPARSE} and --engine bayes {BAYES_SPARSE} (docs/coverage.md)")
    missing = [c for c in by if c not in in_model]
    nested = {c: _nested_term(design, data, c) for c in missing} if data is not None else {}
    for column, inner in nested.items():
        if inner:
            notes.append(
                f"the model has no term of its own for {column}, but {inner} is nested in it: estimates by {column} "
                f"carry the effects of the {inner} levels within it, partially pooled toward the overall mean rather "
                f"than toward their own {column}'s. Add (1|{column}) or {column}-level predictors to pool them "
                f"within {column}")
    missing = [c for c in missing if not nested.get(c)]
    if missing:
        notes.append(
            f"the model has no term for {', '.join(missing)}: its estimates by {', '.join(missing)} differ only "
            f"through the frame's make-up of the other predictors, and their intervals assume no other difference "
            f"between groups. Add a term such as (1|{missing[0]}) if the groups may differ")
    return notes


def _median_respondents(fit: Fit, column: str) -> float:
    """The median number of survey respondents per level of ``column`` among the fit's cells."""
    cells = fit.cells
    counts = pd.Series(cells.family.count(cells.stats)).groupby(cells.table[column].to_numpy()).sum()
    return float(counts.median())


def _nested_term(design, data: pd.DataFrame, column: str) -> str | None:
    """A one-column grouping term of the model whose every level lies in one value of ``column``
    in ``data`` (state within region), or None."""
    if column not in data:
        return None
    outer = data[column].nunique()
    for term in design.group_terms:
        inner = term.columns[0]
        if len(term.columns) == 1 and inner in data and data[inner].nunique() > outer \
                and data.groupby(inner, observed=True)[column].nunique().max() == 1:
            return inner
    return None

