"""A model's hyperparameters φ: every grouping term's (:mod:`misterp.engines.terms`), then a gaussian's
residual sd, on unconstrained coordinates, with their log prior and what a fit reports of them.

Example
-------
>>> from misterp.engines.terms import DecovTerm
>>> h = Hyperparameters([DecovTerm(1, 1.0), DecovTerm(2, 1.0)], ["g", "s"], [["(Intercept)"], ["(Intercept)", "x"]],
...                     2.0)
>>> h.m, h.labels[-1]
(5, 'sd of the residuals (sigma)')
"""

from __future__ import annotations

import numpy as np

from ..terms import LatentTerm, latent_terms


class Hyperparameters:
    """A model's hyperparameters φ: each grouping term's coordinates in the design's order, then a
    gaussian's log a (residual sd aux = aux_scale * e^a, a ~ exponential(1)) when ``aux_scale`` is
    given. Maps φ (..., m) to the terms' factors, the log prior and the reported sds and correlations."""

    def __init__(self, terms: list[LatentTerm], names: list[str], effects: list[list[str]],
                 aux_scale: float | None):
        self.terms = list(terms)
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
        aux = self.aux(phi)
        parts = [term.reported(phi[..., sl], aux) for term, sl in zip(self.terms, self.slices)]
        if self.aux_scale is not None:
            parts.append(self.aux(phi)[..., None])
        return np.concatenate(parts + [np.zeros(phi.shape[:-1] + (0,))], axis=-1)


def hyperparameters(design, data: dict) -> Hyperparameters:
    """The hyperparameters of the bayes engine's model of ``design``, with its model data ``data``
    (:func:`misterp.engines.bayes.model_data`: the sd scale, and a gaussian's aux scale)."""
    return Hyperparameters(latent_terms(design, float(data["sd_scale"])), list(design.group_names),
                           [design.effect_names(k) for k in range(len(design.group_terms))], data["aux_scale"])
