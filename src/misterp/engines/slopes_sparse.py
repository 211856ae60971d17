"""The Laplace deviance of a GLMM with slopes on the sparse path: q above SPARSE_Q.

The same objective, PIRLS and exact gradient as :class:`.slopes.SlopeProblem`, with H = Lambda' A
Lambda + I on a block-closed sparsity pattern (:mod:`.sparse_terms`) factorised by the elimination of
:mod:`.linalg` (each effect of each level a column), H^-1 only on the pattern for the gradient's
traces and leverages, and the covariance of (beta, u) kept as its precision's factor. A
(1 + x | county) term over 3,000 counties is q = 6,000: dense, H alone would be 288 MB and each
Cholesky 70 GFLOP.
"""

from __future__ import annotations

import numpy as np

from ..model.cells import Cells
from .linalg import PrecisionCovariance
from .slopes import conditional_modes
from .sparse_terms import SparseTerms


class SparseSlopeProblem:
    """The arrays of a Laplace fit with slopes on one set of cells, sparse (the interface of
    :class:`.slopes.SlopeProblem`: ``pirls``, ``gradient``, ``covariance``)."""

    def __init__(self, cells: Cells):
        self.family, self.stats = cells.family, cells.stats
        self.X, self.offset = cells.X, cells.offset
        self.terms = SparseTerms.of(cells)
        self.structure, self.Z = self.terms.structure, self.terms.Z
        self.q = self.structure.q
        self.constant = float(self.family.log_constant(self.stats).sum())

    def deviance(self, eta: np.ndarray) -> float:
        return -2.0 * (float(self.family.loglik(self.stats, eta, constant=False).sum()) + self.constant)

    def pirls(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray, tol: float = 1e-15, max_iter: int = 60):
        """Conditional modes at (theta, beta): Newton steps with halving; returns a dict of the state."""
        terms = self.terms
        lam = terms.lambda_values(theta)

        def factorise(w):
            A = terms.ztwz(w)
            factor = terms.elim.factor(terms.h_values(lam, A))
            return factor.solve, (lambda: factor.logdet), {"lam": lam, "A": A, "factor": factor}

        ZL = (self.Z @ terms.lambda_matrix(theta)).tocsr()
        return conditional_modes(self, self.offset + self.X @ beta, ZL, u0, factorise, tol, max_iter)

    def gradient(self, state: dict) -> np.ndarray:
        """Exact d f / d (theta, beta) at a PIRLS solution, (n_theta + p,): as the dense one, with
        du from the sparse factor and H^-1 on the pattern for the leverages and traces."""
        s, terms, u, ZL = self.structure, self.terms, state["u"], state["ZL"]
        _, w, r, dw = self.family.working(self.stats, state["eta"])
        E_u = np.zeros((self.q, s.n_theta))  # E_m u for every theta entry m
        np.add.at(E_u, (s.rows, s.index), u[s.cols])
        d_eta = np.hstack([np.asarray(self.Z @ E_u), self.X])  # at fixed u
        explicit = -2.0 * r @ d_eta
        ztr = self.Z.T @ r
        rhs = -np.asarray(ZL.T @ (w[:, None] * d_eta))
        np.add.at(rhs, (s.cols, s.index), ztr[s.rows])  # dLambda' Z'r
        du = state["factor"].solve(rhs)
        hinv = state["factor"].inverse()
        through_w = (terms.leverage(ZL, hinv) * dw) @ (d_eta + ZL @ du)
        through_lambda = np.zeros(len(explicit))
        np.add.at(through_lambda, s.index, 2.0 * terms.traces(state["lam"], state["A"], hinv))
        return explicit + through_w + through_lambda

    def covariance(self, state: dict) -> PrecisionCovariance:
        """Covariance of (beta, u) from the curvature of the penalized deviance at the mode, as its
        factorised precision."""
        _, w, _, _ = self.family.working(self.stats, state["eta"])
        X, ZL = self.X, state["ZL"]
        zlwx = np.asarray(ZL.T @ (w[:, None] * X))
        h = self.terms.h_values(state["lam"], state["A"])
        return PrecisionCovariance(X.T @ (w[:, None] * X), zlwx, self.terms.elim, h, factor=state["factor"])
