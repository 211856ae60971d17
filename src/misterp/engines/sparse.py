"""Sparse symmetric factorisation with selected inversion, for large random-effect terms: the
names of :mod:`misterp.engines.linalg`, where the elimination (:mod:`.linalg.elimination`,
:mod:`.linalg.ordering`), the numeric factor (:mod:`.linalg.factor`) and the sparse fit's
covariance (:mod:`.linalg.precision`) live.

H (q, q), symmetric positive definite with a fixed sparsity pattern (Z'Z's plus the diagonal), is
factorised as lme4 does with CHOLMOD: a fill-reducing order and the symbolic work once, then a
numeric factorisation at every evaluation. The order eliminates stages of independent columns (a
diagonal pivot block each): first the cheapest whole term when one is given (in a crossed design
the side whose levels have the fewest neighbours), then multiple minimum degree (Liu 1985), and the
dense rest goes to LAPACK.
"""

from .linalg import Elimination, Factor, PrecisionCovariance

__all__ = ["Elimination", "Factor", "PrecisionCovariance"]
