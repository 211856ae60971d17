"""Whitened coordinates for the Bayesian engine: the effects, given the group sds,
as a standard normal vector under a Gaussian approximation of the posterior.

Let x = (alpha, beta, b), length m, be the intercept of the centred predictors,
the coefficients and the group effects. Near a pilot mode x^ (the Laplace fit)
the log-likelihood is about g'(x - x^) - (x - x^)' H (x - x^) / 2, with H the
data precision [1 Xc Z]' W [1 Xc Z] and g the score. With the priors' diagonal
precision d (2.5^-2, scale_k^-2, sigma_term^-2), the effects given the sds
are then about N(mu, P^-1), P = H + diag(d), mu = P^-1 r, r = H x^ + g.

We sample eps and set

    x = mu + L^-T eps = L^-T (L^-1 r + eps),     P = L L',

an exact change of variables for any H and r (its log Jacobian, -sum log
diag L, goes into the density), so the posterior is rstanarm's own. Only the
quality of the approximation differs: where it is good, NUTS sees a near
standard normal in eps whatever the sds, so neither the funnels of
well-identified terms (non-centred) nor those of weak ones (centred), nor
the ridges between the intercept and the terms' means, shape its steps.
On the seven-term CCES model this took NUTS from 96 to 15 leapfrog steps an
iteration and from 9 divergences to none (bench/RESULTS.md).

``whiten`` has a hand-written reverse pass: JAX's generic one differentiates
the Cholesky factor through matrix triangular solves (a value and gradient
for m = 126: 556 us, ours 344 us). With N = L^-1, and xbar and lbar the
cotangents of x and of log det L:

    eps-bar = N xbar
    d-bar_i = -(P^-1 xbar)_i mu_i + lbar (P^-1)_ii / 2 - (N' G N)_ii,
    G = strict_lower(eps a') + diag(eps * a) / 2,  a = N xbar,

where the last term is the derivative of L^-T eps through dL = L Phi(L^-1 dP L^-T)
(Phi: lower triangle, half diagonal); (N' G N)_ii needs only cumulative sums
down the columns of N. The cost is one Cholesky and one triangular inverse
of an m x m matrix per gradient, so it is used while m is moderate.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import MisterpInputError, MisterpWarning
from ..model.cells import Cells

# Above this many effects, O(m^3) per gradient outweighs the better geometry: 300 groups of 1-5
# respondents (302 effects, bench/coverage.py's sparse design) took 127 s whitened against 5.4 s
# non-centred at the same 30 leapfrog steps; the CCES models (about 130 effects) gain from it.
MAX_WHITENED = 200


def pilot_expansion(cells: Cells, data: dict, prior_only: bool) -> dict:
    """H and r expanded at the Laplace (or GLM) mode of ``cells``; zeros for prior_only.

    ``data`` is the Bayesian engine's model data (centred predictors ``Xc``
    and their means ``xbar``, ``cols``, ``offset``, cell statistics). Returns
    {"H": (m, m) array, "r": (m,) array}.
    """
    names = cells.design.fixed_names
    columns = ([np.ones((cells.n_cells, 1))] if data["has_intercept"] else []) + [data["Xc"]]
    terms = data.get("whitened_terms")
    if terms is None:
        q = len(data["term_of_level"])
        Z = np.zeros((cells.n_cells, q))
        for col in data["cols"]:
            Z[np.arange(cells.n_cells), col] = 1.0
    else:  # structured terms: b = M w (bayes.model.whitened_terms)
        Z = cells.design.random_matrix(cells.table).toarray() @ terms["M"]
    A = np.hstack(columns + [Z])
    if prior_only:
        return {"H": np.zeros((A.shape[1],) * 2), "r": np.zeros(A.shape[1])}
    try:
        with warnings.catch_warnings():  # the pilot's problems are not the posterior's
            warnings.simplefilter("ignore", MisterpWarning)
            if cells.design.group_terms:
                from .laplace import LaplaceEngine

                pilot = LaplaceEngine().fit(cells)
                if terms is None:
                    coef, b, dispersion = pilot.beta, pilot.b, pilot.sigma ** 2
                else:  # the hyperparameters' mode (laplace's structured fit); w from b by least squares
                    point, p = pilot.point_coef(), len(names)
                    coef, dispersion = point[:p], float(pilot.dispersion_draws(1)[0, 0])
                    b = np.linalg.lstsq(terms["M"], point[p:], rcond=None)[0]
            else:
                from .glm import GlmEngine

                coef, b = GlmEngine().fit(cells).beta, np.zeros(0)
                dispersion = cells.family.dispersion(cells.stats, cells.offset + cells.X @ coef, len(coef))
        rest = np.array([c for c, n in zip(coef, names) if n != "(Intercept)"])
        fixed = rest if not data["has_intercept"] else np.concatenate(
            [[coef[names.index("(Intercept)")] + rest @ data["xbar"]], rest])
        x_hat = np.concatenate([fixed, b])
    except (MisterpInputError, np.linalg.LinAlgError, FloatingPointError):
        # no pilot mode: any expansion point keeps the change of variables exact, if less helpful
        x_hat, dispersion = np.zeros(A.shape[1]), 1.0
    H, r = likelihood_expansion(cells.family, cells.stats, A, data["offset"], x_hat)
    # a gaussian's working weights are per unit residual variance: the pilot's sigma^2 scales them
    return {"H": H / dispersion, "r": r / dispersion}


def likelihood_expansion(family, stats: dict, A: np.ndarray, offset: np.ndarray,
                        x_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H and r = H x^ + g of the log-likelihood's expansion at ``x_hat``.

    Parameters
    ----------
    family : the cells' family (its IRLS weights and residuals)
    stats : dict of (n_cells,) arrays, the cell statistics
    A : (n_cells, m) array
        The linear predictor's matrix in the sampler's coordinates.
    offset : (n_cells,) array
    x_hat : (m,) array

    Returns
    -------
    H : (m, m) array
    r : (m,) array
    """
    _, weights, residual, _ = family.working(stats, offset + A @ x_hat)
    H = A.T @ (A * weights[:, None])
    return H, H @ x_hat + A.T @ residual


def _whiten_forward(d, eps, H, r):
    import jax
    import jax.numpy as jnp

    L = jax.lax.linalg.cholesky(H + jnp.diag(d), symmetrize_input=False)
    N = jax.lax.linalg.triangular_solve(L, jnp.eye(L.shape[0], dtype=L.dtype), left_side=True, lower=True)
    mu = N.T @ (N @ r)
    x = mu + N.T @ eps
    return (x, jnp.sum(jnp.log(jnp.diag(L)))), (N, mu, eps)


def _whiten_backward(residuals, cotangents):
    import jax.numpy as jnp

    N, mu, eps = residuals
    x_bar, logdet_bar = cotangents
    a = N @ x_bar
    inv_diag = jnp.sum(N * N, axis=0)
    W = a[:, None] * N
    below = jnp.cumsum(W, axis=0) - W  # sum over k < j of a_k N_ki, for each column i
    scale_part = jnp.sum(eps[:, None] * N * (below + 0.5 * W), axis=0)
    d_bar = -(N.T @ a) * mu + 0.5 * logdet_bar * inv_diag - scale_part
    return d_bar, a, None, None


def _make_whiten():
    import jax

    @jax.custom_vjp
    def whiten(d, eps, H, r):
        """x = P^-1 r + L^-T eps and log det L, for P = H + diag(d) = L L'.

        d, eps, r : (m,) arrays; H : (m, m) array. Returns ((m,) array, scalar).
        """
        return _whiten_forward(d, eps, H, r)[0]

    whiten.defvjp(_whiten_forward, _whiten_backward)
    return whiten


_WHITEN = None


def whiten(d, eps, H, r):
    """x = P^-1 r + L^-T eps and log det L, for P = H + diag(d) = L L' (JAX, differentiable).

    d, eps, r : (m,) arrays; H : (m, m) array. Returns (x (m,), log det L).
    """
    global _WHITEN
    if _WHITEN is None:  # JAX is imported only when the Bayesian engine runs
        _WHITEN = _make_whiten()
    return _WHITEN(d, eps, H, r)


def whiten_banded(d, band, eps, H, r):
    """:func:`whiten` for a prior precision with a first off-diagonal ``band`` (m - 1,) beside its diagonal d
    (an ar1 term's): P = H + diag(d) + band's two diagonals; JAX differentiates the Cholesky factor itself."""
    import jax
    import jax.numpy as jnp

    P = H + jnp.diag(d) + jnp.diag(band, 1) + jnp.diag(band, -1)
    L = jnp.linalg.cholesky(P)
    u = jax.scipy.linalg.solve_triangular(L, r, lower=True)
    x = jax.scipy.linalg.solve_triangular(L.T, u + eps, lower=False)
    return x, jnp.sum(jnp.log(jnp.diag(L)))


def whitened_effects(p, has_intercept, coef_scale, intercept_scale, intercept_loc, sigma, term_of_level, H, r,
                     band=None, log_det=None):
    """NumPyro sites of the effects: eps, the priors' and Jacobian's factor, and
    (alpha, beta, b) as deterministic sites (b also as z = b / sigma).

    The group effects' prior precision is diag(sigma[term_of_level]^-2), or, given ``band`` (the effects'
    first off-diagonal) and ``log_det`` (that precision's log determinant), tridiagonal where the band is
    not zero. The intercept's prior may have a location m (a gaussian's mean(y)): the expansion's mean
    P^-1 (r + d m) gains its prior precision times m.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    fixed = [jnp.full(int(has_intercept), intercept_scale ** -2.0), jnp.asarray(coef_scale) ** -2.0]
    precision = list(fixed)
    if sigma is not None:
        precision.append(sigma[jnp.asarray(term_of_level)] ** -2.0)
    precision = jnp.concatenate(precision)
    location = jnp.zeros(len(r))
    if has_intercept:
        location = location.at[0].set(intercept_loc)
    eps = numpyro.sample("eps", dist.ImproperUniform(dist.constraints.real, (), (len(r),)))
    # the location's precision is fixed (the intercept's), so r + d m is a constant of the model
    shift = jnp.asarray(r) + precision * location
    if band is None:
        x, log_det_l = whiten(precision, eps, jnp.asarray(H), shift)
        prior_log_det = jnp.sum(jnp.log(precision))
    else:
        n_fixed = len(r) - len(band) - 1
        full_band = jnp.concatenate([jnp.zeros(n_fixed), band])
        x, log_det_l = whiten_banded(precision, full_band, eps, jnp.asarray(H), shift)
        prior_log_det = jnp.sum(jnp.log(jnp.concatenate(fixed))) + log_det
    # the normal priors of x (up to constants) and the change of variables' log Jacobian
    offset_x = x - location
    quadratic = jnp.sum(precision * offset_x * offset_x)
    if band is not None:
        quadratic = quadratic + 2.0 * jnp.sum(full_band * offset_x[:-1] * offset_x[1:])
    numpyro.factor("effects", -0.5 * quadratic + 0.5 * prior_log_det - log_det_l)
    k = int(has_intercept)
    alpha = numpyro.deterministic("alpha", x[0]) if has_intercept else 0.0
    beta = numpyro.deterministic("beta", x[k:k + p]) if p else None
    b = None
    if sigma is not None:
        b = x[k + p:]
        numpyro.deterministic("z", b / sigma[jnp.asarray(term_of_level)])
    return alpha, beta, b
