"""misterp: Multilevel Regression and Poststratification in Python."""

from .cells import Cells, collapse, prepare
from .engines.glm import GlmEngine, GlmFit
from .engines.laplace import LaplaceEngine
from .errors import MisterpInputError
from .estimate import Estimate
from .fit import MixedFit
from .formula import parse_formula
from .frame import Frame
from .poststrat import CellDraws, poststratify
from .survey import Survey

__all__ = [
    "Cells", "CellDraws", "Estimate", "Frame", "GlmEngine", "GlmFit", "LaplaceEngine",
    "MisterpInputError", "MixedFit", "Survey", "collapse", "parse_formula", "poststratify", "prepare",
]
