"""The inla engine: the integrated nested Laplace approximation (Rue, Martino and Chopin 2009) of the
bayes engine's posterior, in seconds.

The hyperparameters φ (each term's decov coordinates: log tau and, with slopes, its simplex and
correlations; a gaussian's log residual sd; see :mod:`.hyper`) have the posterior
π(φ | y) ∝ p(y | φ) p(φ), with p(y | φ) the Laplace approximation over all the latent effects,
fixed and random, under the bayes engine's priors (rstanarm's defaults), plus the approximation's
next-order term (:mod:`.posterior`). The engine

1. finds the mode of the Laplace log π(φ | y) by L-BFGS with its exact gradient, its Hessian by
   central differences of that gradient, and Newton steps from there to the corrected mode
   (:mod:`.engine`);
2. places points around the mode, a grid for one or two hyperparameters and the central composite
   design above, with INLA's skewness correction, and weighs them by π(φ | y) (:mod:`.design`);
3. keeps, at each point, the latent effects' conditional mode and precision (:mod:`.latent`); the
   posterior of the effects is the mixture of those Gaussians in proportion to the weights, and
   draws come from it, importance-corrected where the Gaussian is off (:mod:`.fit`). Unseen levels draw from N(0, sd^2) at each draw's own sd.

Every prediction is the mean over draws, as the bayes engine's, and the default interval the
estimate ± 2 sd of the draws, which held the truth closest to 95% in the coverage study
(docs/coverage.md; ``interval="quantile"`` gives the central 95%). Every family, random intercepts,
correlated slopes and fixed effects alone; above 300 group effects the latent precision is
factorised sparse (:mod:`.latent`), for county-sized terms. Structured terms are still to come.

Example
-------
>>> import pandas as pd
>>> from misterp import Frame, Survey, cell_draws, poststratify, prepare
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5})
>>> frame = Frame(pd.DataFrame({"g": list("abcd"), "N": [1, 2, 3, 4]}), "N")
>>> cells, _ = prepare(Survey(data, "y"), frame, "y ~ (1|g)")
>>> fit = InlaEngine().fit(cells)
>>> len(fit.weights), round(float(fit.weights.sum()), 12)  # a grid of 13 points for one sd
(13, 1.0)
>>> poststratify(cell_draws(fit, frame), frame).table["interval"].item()
'inla ±2sd'
"""

from .design import Design, IntegrationPoints, design, fractional_factorial, integration_points
from .engine import InlaEngine
from .fit import InlaFit
from .hyper import Hyperparameters
from .posterior import DEFAULT_MAX_EFFECTS, HyperPosterior, latent_size

__all__ = ["DEFAULT_MAX_EFFECTS", "Design", "HyperPosterior", "Hyperparameters",
           "InlaEngine", "InlaFit", "IntegrationPoints", "design", "fractional_factorial", "integration_points",
           "latent_size"]
