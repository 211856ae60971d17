"""Sparse symmetric factorisation with selected inversion, for large random-effect terms.

H (q, q), symmetric positive definite with a fixed sparsity pattern (Z'Z's plus the diagonal), is
factorised as lme4 does with CHOLMOD: a fill-reducing order and the symbolic work once
(:class:`Elimination`, :mod:`.elimination`, :mod:`.ordering`), then a numeric factorisation at
every evaluation (:class:`Factor`, :mod:`.factor`), with solves, draws, and H^-1 on H's pattern
(selected inversion) for the exact gradients. :class:`PrecisionCovariance` keeps a sparse fit's
covariance of (beta, u) as its precision's factor. Time and memory grow with the fill (sum over
eliminated columns of their degree squared, plus the dense tail's m^3), not with q^3.
"""

from .elimination import Elimination
from .factor import Factor
from .precision import PrecisionCovariance

__all__ = ["Elimination", "Factor", "PrecisionCovariance"]
