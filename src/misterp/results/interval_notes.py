"""What the coverage studies found about an interval, as notes for the run that uses it.

``bench/coverage.py`` measures how often each engine's 95% interval holds the truth on
known populations (docs/coverage.md). Two findings apply to a user's run:

- bootMer's ``use.u = TRUE`` bootstrap (the article's) holds the fitted group effects
  fixed in every refit, so the uncertainty of a group's own effect never enters its
  interval: estimates by a model's grouping factor under-cover. The normal
  approximation of the laplace engine (its default interval) and the bayes engine's
  posterior carry that uncertainty.
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

from ..engines.fit import Fit

# Measured by bench/coverage.py (docs/coverage.md): the share of 95% intervals holding the truth.
BOOTSTRAP_GROUP_COVERAGE = "{cces_boot} on the CCES design and {states_boot} on the states design"
BETTER_GROUP_COVERAGE = "{cces_laplace} and {states_laplace}"
CELL_BOUNDS = ("poststratifying the ±2 SE bounds treats the cells as perfectly correlated, so the interval "
               "over-covers: it held the truth in 100% of 500 simulated surveys of this design (nominal 95%), "
               "the delta method in 96.2% (docs/coverage.md)")


def interval_notes(fit: Fit, by) -> list[str]:
    """Notes on the intervals of ``fit``'s estimates by the frame columns ``by`` (a list).

    Returns one sentence per finding that applies, each naming a better method.
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
            f"approximation held it {BETTER_GROUP_COVERAGE}. Drop --bootstrap for that interval, or use "
            f"--engine bayes (docs/coverage.md)")
    missing = [c for c in by if c not in in_model]
    if missing:
        notes.append(
            f"the model has no term for {', '.join(missing)}: its estimates by {', '.join(missing)} differ only "
            f"through the frame's make-up of the other predictors, and their intervals assume no other difference "
            f"between groups. Add a term such as (1|{missing[0]}) if the groups may differ")
    return notes
