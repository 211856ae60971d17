"""A grouping term's covariance under rstanarm's decov prior, on unconstrained hyperparameters.

A term with K effects has the factor T = diag(sqrt(K π)) · s · C of its effects' covariance T T'
(as the bayes engine samples it, :mod:`misterp.engines.bayes.model`): s = sd_scale · tau · aux with
tau ~ gamma(1, 1), π ~ Dirichlet(1) a simplex that splits the trace, and C the Cholesky factor of an
LKJ(1) correlation matrix. The inla engine works on unconstrained coordinates, as Stan does:

    φ = (log tau,  y_1..y_(K-1),  w_1..w_(K(K-1)/2)),

π from y by Stan's stick-breaking (z_k = logistic(y_k - log(K - k)), π_k = (1 - Σ_(j<k) π_j) z_k),
C from w by Stan's canonical partial correlations (tanh, row by row), and the log prior includes
each map's log Jacobian. A random intercept (K = 1) has φ = (log tau) alone and T = s.

Everything accepts leading batch axes and complex values, so that derivatives come by the
complex step (f'(φ) = Im f(φ + ih) / h, exact to rounding).

Example
-------
>>> import numpy as np
>>> term = DecovTerm(n_effects=2, sd_scale=1.0)
>>> term.n_phi, np.round(term.factor(np.zeros(3), 1.0), 3).tolist()
(3, [[1.0, 0.0], [0.0, 1.0]])
"""

from __future__ import annotations

import math

import numpy as np


class DecovTerm:
    """One grouping term's factor T(φ) and log prior, for ``n_effects`` effects."""

    def __init__(self, n_effects: int, sd_scale: float):
        self.K, self.sd_scale = int(n_effects), float(sd_scale)
        self.n_corr = self.K * (self.K - 1) // 2
        self.n_phi = 1 if self.K == 1 else self.K + self.n_corr

    def start(self) -> np.ndarray:
        """sd 0.5 (relative to the residual sd), an even split of the trace, no correlation."""
        return np.concatenate([[np.log(0.5 / self.sd_scale)], np.zeros(self.n_phi - 1)])

    def simplex(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """π (..., K) from y (..., K - 1) by stick-breaking, and the log Jacobian (...)."""
        K = self.K
        left = np.ones(y.shape[:-1], dtype=y.dtype)
        pieces, log_jac = [], np.zeros(y.shape[:-1], dtype=y.dtype)
        for k in range(K - 1):
            z = 1.0 / (1.0 + np.exp(-(y[..., k] - np.log(K - 1 - k))))
            pieces.append(left * z)
            log_jac = log_jac + np.log(z) + np.log(1.0 - z) + np.log(left)
            left = left - pieces[-1]
        return np.stack(pieces + [left], axis=-1), log_jac

    def correlation(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """C (..., K, K) from w (..., K(K-1)/2) by canonical partial correlations, and the log
        Jacobian (...)."""
        K = self.K
        z = np.tanh(w)
        C = np.zeros(w.shape[:-1] + (K, K), dtype=w.dtype)
        C[..., 0, 0] = 1.0
        log_jac = np.zeros(w.shape[:-1], dtype=w.dtype)
        index = 0
        for i in range(1, K):
            remaining = np.ones(w.shape[:-1], dtype=w.dtype)
            for j in range(i):
                C[..., i, j] = z[..., index] * np.sqrt(remaining)
                log_jac = log_jac + np.log(1.0 - z[..., index] ** 2) + 0.5 * np.log(remaining)
                remaining = remaining - C[..., i, j] ** 2
                index += 1
            C[..., i, i] = np.sqrt(remaining)
        return C, log_jac

    def factor(self, phi: np.ndarray, aux) -> np.ndarray:
        """T (..., K, K) at φ (..., n_phi) and residual sd ``aux`` (scalar or (...))."""
        phi = np.asarray(phi)
        scale = self.sd_scale * np.exp(phi[..., 0]) * aux
        if self.K == 1:
            return scale[..., None, None]
        pi, _ = self.simplex(phi[..., 1:self.K])
        C, _ = self.correlation(phi[..., self.K:])
        return np.sqrt(pi * self.K)[..., :, None] * scale[..., None, None] * C

    def log_prior(self, phi: np.ndarray) -> np.ndarray:
        """log p(φ) (...): gamma(1, 1) on tau, Dirichlet(1) on π and LKJ(1) on C, each with its
        map's log Jacobian."""
        phi = np.asarray(phi)
        out = phi[..., 0] - np.exp(phi[..., 0])
        if self.K == 1:
            return out
        _, jac_pi = self.simplex(phi[..., 1:self.K])
        C, jac_c = self.correlation(phi[..., self.K:])
        lkj = sum((self.K - i - 1) * np.log(C[..., i, i]) for i in range(1, self.K))
        return out + math.log(math.factorial(self.K - 1)) + jac_pi + jac_c + lkj  # Dirichlet(1)'s log Γ(K)

    def correlation_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the correlations as :meth:`reported` lists them: the lower triangle, column by
        column, (K(K-1)/2,) each."""
        rows, cols = np.tril_indices(self.K, -1)
        order = np.lexsort((rows, cols))
        return rows[order], cols[order]

    def reported(self, T: np.ndarray) -> np.ndarray:
        """The sds (K) then the correlations (K(K-1)/2, :meth:`correlation_pairs`) of T T',
        (..., K + K(K-1)/2)."""
        cov = T @ np.swapaxes(T, -1, -2)
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        rows, cols = self.correlation_pairs()
        cor = cov[..., rows, cols] / (sd[..., rows] * sd[..., cols])
        return np.concatenate([sd, cor], axis=-1)

    def labels(self, name: str, effects: list[str]) -> list[str]:
        """The names of :meth:`reported`'s columns for the term ``name``."""
        if self.K == 1:
            return [f"sd for {name}"]
        return [f"sd for {name} {e}" for e in effects] + [
            f"cor for {name} ({effects[c]}, {effects[r]})" for r, c in zip(*self.correlation_pairs())]


class Hyperparameters:
    """A model's hyperparameters φ: each grouping term's decov coordinates in the design's order, then
    a gaussian's log a (residual sd aux = aux_scale * e^a, a ~ exponential(1)) when ``aux_scale`` is
    given. Maps φ (..., m) to the terms' factors, the log prior and the reported sds and correlations.

    Example
    -------
    >>> h = Hyperparameters([1, 2], ["g", "s"], [["(Intercept)"], ["(Intercept)", "x"]], 1.0, 2.0)
    >>> h.m, h.labels[-1]
    (5, 'sd of the residuals (sigma)')
    """

    def __init__(self, n_effects, names: list[str], effects: list[list[str]], sd_scale: float,
                 aux_scale: float | None):
        self.terms = [DecovTerm(int(K), sd_scale) for K in n_effects]
        self.aux_scale = aux_scale
        self.slices, first = [], 0
        for term in self.terms:
            self.slices.append(slice(first, first + term.n_phi))
            first += term.n_phi
        self.m = first + int(aux_scale is not None)
        self.labels = [label for term, name, eff in zip(self.terms, names, effects) for label in term.labels(name, eff)]
        if aux_scale is not None:
            self.labels.append("sd of the residuals (sigma)")

    def aux(self, phi: np.ndarray):
        """The residual sd (1 without a dispersion), (...,)."""
        phi = np.asarray(phi)
        return np.ones(phi.shape[:-1]) if self.aux_scale is None else self.aux_scale * np.exp(phi[..., -1])

    def factors(self, phi: np.ndarray) -> list[np.ndarray]:
        """Each term's factor T (..., K, K)."""
        phi = np.asarray(phi)
        aux = self.aux(phi)
        return [term.factor(phi[..., sl], aux) for term, sl in zip(self.terms, self.slices)]

    def start(self) -> np.ndarray:
        """Each term's start, and a gaussian's aux at 0.8 sd(y)."""
        return np.concatenate([t.start() for t in self.terms] + ([[np.log(0.8)]] if self.aux_scale is not None else [])
                              + [np.zeros(0)])

    def log_prior(self, phi: np.ndarray):
        """log p(φ), (...): the terms' decov priors and exponential(1) on e^a, with the Jacobians."""
        phi = np.asarray(phi)
        out = sum(term.log_prior(phi[..., sl]) for term, sl in zip(self.terms, self.slices))
        if self.aux_scale is not None:
            out = out + phi[..., -1] - np.exp(phi[..., -1])
        return out

    def reported(self, phi: np.ndarray) -> np.ndarray:
        """The sds and correlations of :attr:`labels` at φ, (..., len(labels))."""
        phi = np.asarray(phi, float)
        parts = [term.reported(T) for term, T in zip(self.terms, self.factors(phi))]
        if self.aux_scale is not None:
            parts.append(self.aux(phi)[..., None])
        return np.concatenate(parts + [np.zeros(phi.shape[:-1] + (0,))], axis=-1)


def hyperparameters(design, data: dict) -> Hyperparameters:
    """The hyperparameters of the bayes engine's model of ``design``, with its model data ``data``
    (:func:`misterp.engines.bayes.model_data`: the sd scale, and a gaussian's aux scale)."""
    return Hyperparameters(design.n_effects, list(design.group_names),
                           [design.effect_names(k) for k in range(len(design.group_terms))],
                           float(data["sd_scale"]), data["aux_scale"])
