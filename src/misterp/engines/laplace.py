"""The Laplace engine, equivalent to ``lme4::glmer(family = binomial)`` with nAGQ = 1.

It minimises the Laplace deviance (:mod:`.deviance`) over (theta, beta) with
L-BFGS-B and the exact gradient (:mod:`.optimize`), reaching lme4's optimum
(or a slightly better one) in a few dozen PIRLS solves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells import Cells
from .deviance import Problem, joint_covariance
from .optimize import optimize, start_values


@dataclass(frozen=True)
class LaplaceEngine:
    """glmer-equivalent fits (binomial logit, Laplace approximation).

    Parameters
    ----------
    singular_tol : float
        A theta below this is reported as a singular (boundary) fit, as lme4's
        ``isSingular`` does with its default tolerance.
    """

    singular_tol: float = 1e-4

    def fit(self, cells: Cells, start: np.ndarray | None = None, u0: np.ndarray | None = None):
        from ..fit import MixedFit

        if not cells.design.group_terms:
            from ..errors import MisterpInputError
            raise MisterpInputError(
                "The laplace engine needs at least one grouping term such as '(1|g)' in the "
                "formula; for fixed effects only, use the glm engine."
            )
        prob = Problem(cells)
        if start is None:
            start, u0 = start_values(cells, prob)
        params, state, info = optimize(prob, start, u0)
        T = prob.n_terms
        return MixedFit(cells=cells, theta=params[:T], beta=params[T:], u=state.u[0],
                        objective=float(state.objective[0]), info=info,
                        cov=joint_covariance(prob, state),
                        singular=bool(np.any(params[:T] < self.singular_tol)))
