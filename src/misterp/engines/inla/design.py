"""Where the inla engine evaluates the hyperparameters' posterior, and with what weight.

The hyperparameters φ (m of them: log sds, correlation factors, a gaussian's log σ) have the
posterior π(φ | y), known up to a constant at any φ (a Laplace fit). Its mode φ* and the Hessian H
of -log π there give standardised coordinates z, in which a Gaussian posterior would be N(0, I):

    φ(z) = φ* + V Λ^(-1/2) S(z) z,        H = V Λ V',

S(z) a diagonal of per-axis scalings, s⁺_k where z_k > 0 and s⁻_k where z_k < 0 (Rue, Martino and
Chopin 2009, section 6.5: "skewness correction"). s±_k is chosen so that log π falls by what a
Gaussian's would, 1, at z = ±√2 along axis k: s = 1 / sqrt(log π(φ*) - log π(φ(±√2 e_k))).

The points z come from one of two designs (``design``):

- **grid** (m ≤ 2): a square grid of step 0.75 within a disc of radius 4.5 (13 points for one
  hyperparameter, 113 for two); each point stands for its own square, all weights 1.
- **ccd** (m ≥ 3): the central composite design, Rue et al.'s choice when a grid would need too
  many points: the centre, the 2m axis points ±f₀√m e_k and the corners of a resolution-V two-level
  fractional factorial (no main effect or two-factor interaction aliased with another), all of
  them on the sphere of radius f₀√m. The centre has weight 1 and every other point
  Δ = exp(m f₀²/2) / ((n - 1)(f₀² - 1)), n the number of points: the weights at which the design,
  applied to a standard Gaussian density, gives its mass and its second moments exactly (the
  design is symmetric and its columns orthogonal, so every first moment and cross moment vanishes;
  then (n - 1) Δ e^(-m f₀²/2) f₀² m / (1 + (n - 1) Δ e^(-m f₀²/2)) = m fixes Δ).

``integration_points`` puts it together: the points φ_j, and the normalised weights
w_j ∝ Δ_j J_j π(φ_j | y), J_j = Π_k s_k^(side of z_jk) the scaling's volume element (the mean of
s⁺ and s⁻ on an axis where z_jk = 0, which is the trapezoid rule across the kink), so that
Σ_j w_j g(φ_j) approximates E[g(φ) | y].
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable

import numpy as np

F0 = 1.1            # Rue et al.'s f₀: the ccd's sphere sits a tenth beyond √m
GRID_STEP = 0.75    # in standardised units: the grid's error on a Gaussian's moments is ~exp(-2π²/step²)
GRID_EXTENT = 4.5   # the disc's radius: a Gaussian keeps e^(-R²/2) = 4e-5 of its mass outside it in 2-D;
                    # a log-gamma(2)'s heavy tail needs it (its variance: 0.97 of the truth at 3.75, 0.99 here)


@dataclass(frozen=True)
class Design:
    """Standardised points and their weights before the density: z (n, m) and delta (n,)."""

    z: np.ndarray
    delta: np.ndarray


def fractional_factorial(m: int) -> np.ndarray:
    """A two-level resolution-V fractional factorial for m factors: (2^k, m) of ±1.

    Each factor is a Walsh column, x_rj = (-1)^popcount(r & c_j), for distinct column indices c_j
    chosen greedily so that no XOR of four or fewer of them is 0 (then no product of four or fewer
    columns is constant: main effects and two-factor interactions are not aliased), with the fewest
    rows 2^k that admit m such indices (16 rows for 4-5 factors, 32 for 6, 64 for 7-8, 128 for 9-11).
    """
    if m < 1:
        raise ValueError("a factorial needs at least one factor")
    k = 1
    while True:
        chosen: list[int] = []
        reachable = {0}  # XORs of at most three chosen indices: a new index must avoid them
        for c in range(1, 2 ** k):
            if c in reachable:
                continue
            chosen.append(c)
            reachable |= {c ^ x for x in _xors(chosen[:-1], 2)}
            if len(chosen) == m:
                rows = np.arange(2 ** k)[:, None] & np.array(chosen)[None, :]
                parity = np.vectorize(lambda v: bin(v).count("1") % 2)(rows)
                return 1.0 - 2.0 * parity
        k += 1


def _xors(indices: list[int], size: int) -> set[int]:
    """XORs of every subset of at most ``size`` indices (the empty subset included)."""
    out = {0}
    for r in range(1, size + 1):
        for subset in combinations(indices, r):
            value = 0
            for c in subset:
                value ^= c
            out.add(value)
    return out


def design(m: int, kind: str = "auto", f0: float = F0, step: float = GRID_STEP,
           extent: float = GRID_EXTENT) -> Design:
    """The standardised points and weights for m hyperparameters ("auto": grid for m ≤ 2, else ccd; "mode":
    the mode alone, R-INLA's empirical Bayes)."""
    if kind == "mode":
        return Design(np.zeros((1, m)), np.ones(1))
    if m < 1:
        raise ValueError("the design needs at least one hyperparameter")
    kind = ("grid" if m <= 2 else "ccd") if kind == "auto" else kind
    if kind == "grid":
        ticks = np.arange(-np.floor(extent / step), np.floor(extent / step) + 1) * step
        z = np.stack(np.meshgrid(*([ticks] * m), indexing="ij"), axis=-1).reshape(-1, m)
        z = z[np.einsum("ij,ij->i", z, z) <= extent ** 2 + 1e-12]
        return Design(z, np.ones(len(z)))
    if kind == "ccd":
        if m < 2:
            raise ValueError("the central composite design needs at least two hyperparameters; use the grid")
        if f0 <= 1:
            raise ValueError(f"f0 must exceed 1 (the sphere must lie beyond √m), not {f0}")
        radius = f0 * np.sqrt(m)
        corners = fractional_factorial(m) * f0             # norm √m · f0
        axes = np.vstack([np.eye(m), -np.eye(m)]) * radius
        z = np.vstack([np.zeros((1, m)), axes, corners])
        n = len(z)
        delta = np.full(n, np.exp(m * f0 ** 2 / 2) / ((n - 1) * (f0 ** 2 - 1)))
        delta[0] = 1.0
        return Design(z, delta)
    raise ValueError(f"design kind must be 'auto', 'grid', 'ccd' or 'mode', not {kind!r}")


@dataclass(frozen=True)
class IntegrationPoints:
    """The hyperparameters' points and weights: phi (n, m), weights (n,) summing to 1, log_density (n,)
    (log π(φ_j | y) up to the caller's constant), and the skewness scalings s_pos, s_neg (m,)."""

    phi: np.ndarray
    weights: np.ndarray
    log_density: np.ndarray
    s_pos: np.ndarray
    s_neg: np.ndarray


def axes(hessian: np.ndarray) -> np.ndarray:
    """V Λ^(-1/2) (m, m) for the Hessian H = V Λ V' of -log π at the mode: its columns are the design's
    axes in φ. ValueError when H is not positive definite."""
    hessian = np.atleast_2d(np.asarray(hessian, dtype=float))
    values, vectors = np.linalg.eigh(hessian)
    if not np.all(values > 0):
        raise ValueError(f"the Hessian at the mode is not positive definite (eigenvalues {values})")
    return vectors / np.sqrt(values)


def scalings(z: np.ndarray, s_pos: np.ndarray, s_neg: np.ndarray) -> np.ndarray:
    """The skewness correction's scaling of each coordinate of z (..., m): s⁺ where it is positive, s⁻
    where negative, their mean where 0 (the trapezoid rule across the kink)."""
    return np.where(z > 0, s_pos, np.where(z < 0, s_neg, (s_pos + s_neg) / 2))


def integration_points(mode: np.ndarray, hessian: np.ndarray, log_density: Callable[[np.ndarray], float],
                       kind: str = "auto", skew: bool = True, **design_options) -> IntegrationPoints:
    """Points and weights that integrate over π(φ | y), given its mode (m,), the Hessian (m, m) of
    -log π there and log π itself (a function of one φ).

    Raises ValueError when the Hessian is not positive definite, or when log π does not fall on
    both sides of the mode along an axis (a mode on a boundary): the caller says which."""
    mode = np.asarray(mode, dtype=float)
    m = mode.size
    to_phi = axes(np.asarray(hessian, dtype=float).reshape(m, m))
    at_mode = float(log_density(mode))
    s_pos, s_neg = np.ones(m), np.ones(m)
    if skew and kind != "mode":
        for k in range(m):
            for sign, s in ((1.0, s_pos), (-1.0, s_neg)):
                fall = at_mode - float(log_density(mode + sign * np.sqrt(2.0) * to_phi[:, k]))
                if not fall > 0:
                    raise ValueError(f"log π does not fall from the mode along axis {k} ({'+-'[sign < 0]} side): "
                                     "the mode is on a boundary or the Hessian is wrong")
                s[k] = 1.0 / np.sqrt(fall)
    d = design(m, kind, **design_options)
    scale = scalings(d.z, s_pos, s_neg)
    phi = mode + (d.z * scale) @ to_phi.T
    log_pi = np.array([at_mode if not z.any() else float(log_density(p)) for z, p in zip(d.z, phi)])
    log_w = np.log(d.delta) + np.log(scale).sum(axis=1) + log_pi - log_pi.max()
    weights = np.exp(log_w)
    return IntegrationPoints(phi, weights / weights.sum(), log_pi, s_pos, s_neg)
