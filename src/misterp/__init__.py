"""misterp: Multilevel Regression and Poststratification in Python.

The stages, each callable alone: data (``read_survey``, ``read_frame``, ``read_adjacency``) ->
cells (``prepare``, with a family: ``BINOMIAL``, ``POISSON``, ``GAUSSIAN``, ``CATEGORICAL``, ``ORDINAL`` or
its name) -> fit (``GlmEngine``, ``LaplaceEngine``, ``bootstrap``,
``BayesEngine``, ``InlaEngine``) -> ``cell_draws`` -> ``poststratify`` -> ``Estimate``.
"""

from .data.adjacency import read_adjacency
from .data.frame import Frame, read_frame
from .data.survey import Survey, read_survey
from .engines.bayes import BayesEngine, BayesFit, Priors
from .engines.bootstrap import BootstrapFit, bootstrap
from .engines.fit import Fit
from .engines.glm import GlmEngine, GlmFit
from .engines.inla import InlaEngine, InlaFit
from .engines.laplace import LaplaceEngine, MixedFit
from .errors import MisterpInputError, MisterpWarning
from .model.cells import Cells, collapse, prepare
from .model.family import (BINOMIAL, CATEGORICAL, GAUSSIAN, ORDINAL, POISSON, Binomial, Categorical, Family, Gaussian,
                           Ordinal, Poisson)
from .model.formula import parse_formula
from .results.draws import CellDraws, cell_draws
from .results.estimate import Estimate
from .results.choices import restrict_choices
from .results.poststratify import poststratify
from .results.saved import load_fit, save_fit

__all__ = [
    "BINOMIAL", "CATEGORICAL", "GAUSSIAN", "ORDINAL", "POISSON", "BayesEngine", "BayesFit", "Binomial",
    "BootstrapFit", "Categorical", "Cells", "CellDraws", "Estimate", "Family", "Fit", "Frame", "Gaussian",
    "GlmEngine", "GlmFit", "InlaEngine", "InlaFit", "LaplaceEngine", "MisterpInputError", "MisterpWarning",
    "MixedFit", "Ordinal", "Priors", "Survey", "bootstrap", "cell_draws", "collapse", "load_fit", "parse_formula",
    "poststratify", "prepare", "read_adjacency", "read_frame", "read_survey", "restrict_choices", "save_fit",
]
