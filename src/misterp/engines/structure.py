"""The random effects' covariance structure: lme4's relative covariance factor Lambda(theta).

A grouping term with K effects (an intercept, slopes) and J levels has a
K x K lower-triangular factor T, the same for every level; Lambda is block
diagonal with J copies of T per term, so that b = Lambda u with
u ~ N(0, sigma^2 I) gives each level's effects the covariance sigma^2 T T'.
theta lists each T's lower triangle column by column, as lme4's ``theta``
does: for K = 2, (T11, T21, T22). Diagonal entries are bounded below by 0;
a term with a diagonal entry below the singular tolerance is singular, as
lme4's ``isSingular`` says. A random intercept is the case K = 1, where
theta is the term's sd (relative to sigma).

The random effects are ordered by term, then level, then effect.

Example
-------
>>> import numpy as np
>>> s = Structure(np.array([2]), np.array([2]))  # two levels of a term with an intercept and a slope
>>> s.n_theta, s.lower.tolist()
(3, [0.0, -inf, 0.0])
>>> s.matrix(np.array([1.0, 0.5, 2.0]))[:2, :2].tolist()
[[1.0, 0.0], [0.5, 2.0]]
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class Structure:
    """Lambda(theta) for terms with ``n_effects`` (n_terms,) effects and ``n_levels`` (n_terms,) levels."""

    def __init__(self, n_effects: np.ndarray, n_levels: np.ndarray, intercepts=None):
        self.n_effects = np.asarray(n_effects, dtype=int)
        self.n_levels = np.asarray(n_levels, dtype=int)
        self.q = int((self.n_effects * self.n_levels).sum())
        rows, cols, index, lower, first = [], [], [], [], 0
        self.theta_slices, self.diagonal = [], []
        offset = 0
        for K, J in zip(self.n_effects, self.n_levels):
            tri_r, tri_c = np.tril_indices(K)
            order = np.lexsort((tri_r, tri_c))  # column by column, as lme4
            tri_r, tri_c = tri_r[order], tri_c[order]
            base = offset + np.arange(J)[:, None] * K
            rows.append((base + tri_r).ravel())
            cols.append((base + tri_c).ravel())
            index.append(np.tile(first + np.arange(len(tri_r)), J))
            lower += [0.0 if r == c else -np.inf for r, c in zip(tri_r, tri_c)]
            self.theta_slices.append(slice(first, first + len(tri_r)))
            self.diagonal += [r == c for r, c in zip(tri_r, tri_c)]
            first += len(tri_r)
            offset += J * K
        self.rows, self.cols, self.index = (np.concatenate(a) if a else np.zeros(0, int) for a in (rows, cols, index))
        self.lower = np.array(lower)
        self.diagonal = np.array(self.diagonal, dtype=bool)
        self.n_theta = first
        # every term a random intercept: Z is indicators and Lambda diagonal (the fast engines' case)
        intercepts = np.ones(len(self.n_effects), dtype=bool) if intercepts is None else np.asarray(intercepts)
        self.simple = bool(np.all(self.n_effects == 1) and np.all(intercepts))

    @classmethod
    def of(cls, design) -> "Structure":
        """The structure of a design's grouping terms."""
        return cls(design.n_effects, design.n_levels, [g.intercept for g in design.group_terms])

    def start(self) -> np.ndarray:
        """lme4's starting theta: each T the identity."""
        return self.diagonal.astype(float)

    def matrix(self, theta: np.ndarray) -> np.ndarray:
        """Lambda(theta), dense (q, q)."""
        out = np.zeros((self.q, self.q))
        out[self.rows, self.cols] = np.asarray(theta, float)[self.index]
        return out

    def factor(self, theta: np.ndarray, term: int) -> np.ndarray:
        """T of one term, (K, K) lower triangular."""
        K = self.n_effects[term]
        T = np.zeros((K, K))
        tri_r, tri_c = np.tril_indices(K)
        order = np.lexsort((tri_r, tri_c))
        T[tri_r[order], tri_c[order]] = np.asarray(theta, float)[self.theta_slices[term]]
        return T

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """T of every term; theta may carry leading batch axes, (..., n_theta) -> [(..., K, K)]."""
        theta = np.asarray(theta, float)
        out = []
        for k, K in enumerate(self.n_effects):
            tri_r, tri_c = np.tril_indices(K)
            order = np.lexsort((tri_r, tri_c))
            T = np.zeros(theta.shape[:-1] + (K, K))
            T[..., tri_r[order], tri_c[order]] = theta[..., self.theta_slices[k]]
            out.append(T)
        return out

    def column_signs(self, theta: np.ndarray) -> np.ndarray:
        """+1 or -1 per effect (q,): the signs that turn every T's diagonal >= 0."""
        signs = [np.tile(np.where(np.diag(self.factor(theta, k)) < 0, -1.0, 1.0), J)
                 for k, J in enumerate(self.n_levels)]
        return np.concatenate(signs) if signs else np.zeros(0)

    def positive(self, theta: np.ndarray) -> np.ndarray:
        """theta with every T's columns signed so its diagonal is >= 0: the same covariance T T'
        (and the same model, when u's matching effects change sign too)."""
        theta = np.array(theta, float)
        for k, K in enumerate(self.n_effects):
            T = self.factor(theta, k)
            T = T * np.where(np.diag(T) < 0, -1.0, 1.0)[None, :]
            tri_r, tri_c = np.tril_indices(K)
            order = np.lexsort((tri_r, tri_c))
            theta[self.theta_slices[k]] = T[tri_r[order], tri_c[order]]
        return theta

    def apply(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """b = Lambda u for u (q,) or (n, q), with Lambda sparse (q may be tens of thousands)."""
        lam = sp.csr_matrix((np.asarray(theta, float)[self.index], (self.rows, self.cols)), shape=(self.q, self.q))
        return np.asarray(lam @ np.asarray(u, float).T).T

    def singular_terms(self, theta: np.ndarray, tol: float) -> list[int]:
        """Terms with a diagonal entry of T below ``tol`` (lme4's isSingular rule)."""
        small = (np.asarray(theta) < tol) & self.diagonal
        return [k for k, sl in enumerate(self.theta_slices) if small[sl].any()]
