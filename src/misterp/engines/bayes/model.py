"""rstanarm's ``stan_glmer`` model as a NumPyro function, and the arrays it reads.

:func:`model_data` turns cells into those arrays (centred predictors, the priors' scales,
the cells' statistics, the group effects' columns) and chooses how the likelihood visits
the data: cell by cell, or, for a family whose log-likelihood is quadratic in the linear
predictor, through the cells' sufficient statistics (:mod:`.moments`), whichever costs
fewer multiply-adds per evaluation. Both give the same log density; only the work differs.

Example
-------
>>> import numpy as np, pandas as pd
>>> from misterp import Survey, prepare
>>> from misterp.engines.bayes import Priors
>>> from misterp.model.family import GAUSSIAN
>>> rng = np.random.default_rng(0)
>>> data = pd.DataFrame({"y": rng.normal(size=400), "x": rng.normal(size=400), "g": np.repeat(np.arange(20), 20)})
>>> cells, _ = prepare(Survey(data, "y"), None, "y ~ x + (1 + x | g)", family=GAUSSIAN)
>>> d = model_data(cells, Priors())
>>> cells.n_cells, d["moments"] is not None  # 400 cells, one per respondent, summed into moments
(400, True)
"""

from __future__ import annotations

import numpy as np

from ...model.cells import Cells
from .moments import build_moments, moments_cost, rows_cost, z_gram_nnz

LIKELIHOODS = ("auto", "cells", "moments")


def n_effects(data: dict) -> int:
    """Intercept, coefficients and group effects: the length of the whitened vector."""
    terms = data.get("whitened_terms")
    effects = len(data["term_of_level"]) if terms is None else terms["M"].shape[1]
    return int(data["has_intercept"]) + data["Xc"].shape[1] + effects


def work(data: dict) -> int:
    """The size of one gradient, in the measure the engine's thresholds use: cells x effects cell by
    cell (bench/RESULTS.md), the multiply-adds of the moments through sufficient statistics."""
    if data.get("moments") is not None:
        return data["moments"].cost
    return len(data["offset"]) * n_effects(data)


def model_data(cells: Cells, priors, likelihood: str = "auto") -> dict:
    """Arrays for the NumPyro model: centred predictors, prior scales, cell statistics.

    Means and sds of the predictors are over respondents: each cell weighs
    its respondent count.

    Parameters
    ----------
    cells : Cells
    priors : Priors
    likelihood : {"auto", "cells", "moments"}
        How the likelihood reads the data: "moments" (sufficient statistics; only for a
        family with a quadratic log-likelihood), "cells", or "auto": the cheaper.

    Returns
    -------
    dict of the model's keyword arguments; ``moments`` is a :class:`.moments.Moments` or None.
    """
    names = cells.design.fixed_names
    has_intercept = "(Intercept)" in names
    X = cells.X[:, [i for i, n in enumerate(names) if n != "(Intercept)"]]
    n = cells.family.count(cells.stats)
    total = n.sum()
    # rstanarm centres a gaussian's intercept prior on mean(y) and scales every prior by sd(y)
    scale = cells.family.outcome_scale(cells.stats)
    y_mean, y_sd = scale if scale else (0.0, 1.0)
    mean = (n @ X) / total if X.shape[1] else np.zeros(0)
    var = (n @ (X - mean) ** 2) / max(total - 1, 1) if X.shape[1] else np.zeros(0)
    # rstanarm centres the predictors only when there is an intercept to absorb their means
    xbar = mean if has_intercept else np.zeros(X.shape[1])
    sd = np.sqrt(var)
    sd = np.where(sd > 0, sd, 1.0)
    design = cells.design
    sizes = design.n_levels
    starts = np.concatenate([[0], np.cumsum(sizes)])
    data = {
        "Xc": X - xbar, "xbar": xbar, "offset": cells.offset, "has_intercept": has_intercept,
        "coef_scale": priors.coef_scale * y_sd / sd, "intercept_scale": priors.intercept_scale * y_sd,
        "intercept_loc": y_mean, "aux_scale": y_sd if scale else None,
        "sd_scale": priors.sd_scale, "cols": cells.groups + starts[:-1, None],
        "term_of_level": np.repeat(np.arange(len(sizes)), sizes), "n_terms": len(sizes),
        "stats": cells.stats, "family": cells.family, "slopes": None,
    }
    if np.any(design.n_effects > 1) or not all(g.intercept and not g.structured for g in design.group_terms):
        data["slopes"] = _slope_data(cells)
        data["term_of_level"] = np.zeros(design.n_random, dtype=int)  # the effects' count, for n_effects
        if any(g.structured for g in design.group_terms):
            data["whitened_terms"] = whitened_terms(design)
    data["moments"] = _moments(cells, data, likelihood)
    return data


def uncentring(fixed_names: list[str], xbar: np.ndarray) -> np.ndarray:
    """M (p, p) with (alpha, beta) M = the fixed effects as a Fit reports them: in the design's order, the
    intercept uncentred (alpha - x-bar' beta, rstanarm's, continuous.stan:263-265), alpha the intercept
    of the centred predictors (absent without an intercept) and beta the other coefficients in order.

    >>> uncentring(["(Intercept)", "x"], np.array([2.0])).tolist()
    [[1.0, 0.0], [-2.0, 1.0]]
    """
    p = len(fixed_names)
    M = np.zeros((p, p))
    j = int("(Intercept)" in fixed_names)
    for col, name in enumerate(fixed_names):
        if name == "(Intercept)":
            M[0, col] = 1.0
            M[1:, col] = -np.asarray(xbar, float)
        else:
            M[j, col] = 1.0
            j += 1
    return M


def _moments(cells: Cells, data: dict, likelihood: str):
    """The sufficient statistics when they are asked for, or (auto) when they cost less than the cells."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")
    quadratic = cells.family.quadratic(cells.stats)
    if likelihood == "cells" or quadratic is None:
        if likelihood == "moments":
            raise ValueError(f"the {cells.family.name} family's log-likelihood is not quadratic in the linear "
                             "predictor: it has no sufficient-statistics form")
        return None
    Z = cells.design.random_matrix(cells.table)
    p = int(data["has_intercept"]) + data["Xc"].shape[1]
    width = data["slopes"]["cols"].shape[0] if data["slopes"] is not None else data["n_terms"]
    cheaper = moments_cost(p, Z.shape[1], z_gram_nnz(Z)) < rows_cost(cells.n_cells, p, width)
    if likelihood == "auto" and not cheaper:
        return None
    F = np.hstack([np.ones((cells.n_cells, int(data["has_intercept"]))), data["Xc"]])
    return build_moments(quadratic, F, Z, data["offset"])


def _slope_data(cells: Cells) -> dict:
    """Terms with effects beyond an intercept: each cell's Z entries as (columns, values), each
    (n_entries, n_cells), and every term's effects and levels, for decov's blocks."""
    design = cells.design
    cols, vals = design.random_entries(cells.table)
    return {"cols": cols.T, "vals": vals.T, "n_effects": tuple(int(k) for k in design.n_effects),
            "n_levels": tuple(int(j) for j in design.n_levels),
            # each term's Structure (None for decov): the sampler reads its basis (:func:`_unit_field`)
            "structures": tuple(design.structure(k) for k in range(len(design.group_terms)))}


def whitened_terms(design) -> dict | None:
    """Structured terms in coordinates w whose prior, given the hyperparameters, is normal with a known
    precision, b = M w, for the whitened parameterization; None where a term has none (slopes).

    An iid term's w is b (sd sigma); rw1, rw2 and icar take w ~ N(0, sigma^2 I_r) and M = B, their constrained
    field's basis; bym2 takes (theta', w'), sds sigma sqrt(1 - rho) (an island's sigma) and sigma sqrt(rho / s),
    and M = [I, B]: b = theta' + B w' is bym2's u; ar1 takes w = b (M = I), whose precision is tridiagonal
    (:func:`_coordinate_precision`). Returns M (q, n_w), and per coordinate its ``term``, its ``part`` (0
    plain, 1 bym2's theta, 2 bym2's phi, 3 ar1) and ``extra`` (theta's connectedness, phi's scaling factor,
    ar1's count of neighbours in its chain: 1 at either end, 2 inside)."""
    from scipy.linalg import block_diag

    blocks, term, part, extra = [], [], [], []
    for k, (K, J) in enumerate(zip(design.n_effects, design.n_levels)):
        structure = design.structure(k)
        if K > 1 or not design.group_terms[k].intercept:
            return None
        kind = getattr(structure, "kind", None)
        if kind == "ar1":
            blocks.append(np.eye(J))
            term += [k] * J
            part += [3] * J
            extra += [1.0] + [2.0] * (J - 2) + [1.0]
            continue
        if kind != "bym2":
            block = np.eye(J) if structure is None else structure.field_basis()
            blocks.append(block)
            term += [k] * block.shape[1]
            part += [0] * block.shape[1]
            extra += [1.0] * block.shape[1]
            continue
        B = structure.field_basis(islands=False)
        connected = np.ones(J)
        connected[structure.islands] = 0.0
        owners = structure.basis_components(islands=False)
        scale = np.array([structure.scale_factors[structure.components[c][0]] for c in owners])
        blocks.append(np.hstack([np.eye(J), B]))
        term += [k] * (J + B.shape[1])
        part += [1] * J + [2] * B.shape[1]
        extra += list(connected) + list(scale)
    return {"M": block_diag(*blocks), "term": np.array(term), "part": np.array(part), "extra": np.array(extra)}


def _coordinate_precision(terms: dict, sigma):
    """The whitened coordinates' prior precision (:func:`whitened_terms`), sampling each bym2's and ar1's
    rho_k: its diagonal d (n_w,), its first off-diagonal (n_w - 1,) or None when every term's is diagonal,
    and its log determinant.

    An ar1 term of marginal sd s has precision T / (s^2 (1 - rho^2)), T tridiagonal with 1 + rho^2 inside the
    diagonal, 1 at its ends and -rho beside it; its log determinant is -2 J log s - (J - 1) log(1 - rho^2).
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    part, extra, term = terms["part"], terms["extra"], terms["term"]
    rho = jnp.zeros(len(sigma))
    for k in sorted(set(term[part > 0].tolist())):
        prior = dist.Uniform(-1.0, 1.0) if part[term == k][0] == 3 else dist.Beta(0.5, 0.5)
        rho = rho.at[k].set(numpyro.sample(f"rho_{k}", prior))
    r, s = rho[jnp.asarray(term)], sigma[jnp.asarray(term)]
    # each branch finite everywhere, so that where's unused branch gives no NaN gradient
    theta = 1.0 - r * np.where(part == 1, extra, 0.0)
    phi = r / np.where(part == 2, extra, 1.0)
    ar1 = (1.0 + np.where(extra > 1.0, 1.0, 0.0) * r * r) / (1.0 - jnp.where(part == 3, r * r, 0.0))
    d = jnp.where(part == 1, 1.0 / theta, jnp.where(part == 2, 1.0 / phi, jnp.where(part == 3, ar1, 1.0))) / s ** 2
    chained = part == 3
    first = chained & np.concatenate([[True], term[1:] != term[:-1]])
    # ar1's log(1 - rho^2) once per coordinate after a chain's first
    log_det = jnp.sum(jnp.log(d)) if not chained.any() else (
        jnp.sum(jnp.where(chained, -jnp.log(s ** 2) - np.where(first, 0.0, 1.0) * jnp.log1p(-r * r),
                          jnp.log(d))))
    if not chained.any():
        return d, None, log_det
    linked = chained[1:] & chained[:-1] & (term[1:] == term[:-1])
    band = jnp.where(linked, -r[1:] / ((1.0 - r[1:] * r[1:]) * s[1:] ** 2), 0.0)
    return d, band, log_det


def model(Xc, xbar, offset, has_intercept, coef_scale, intercept_scale, intercept_loc, aux_scale, sd_scale, cols,
          term_of_level, n_terms, stats, family, slopes=None, prior_only=False, H=None, r=None, moments=None,
          whitened_terms=None):
    """rstanarm's model; effects non-centred (b = sigma z), or whitened when H and r are given.

    A family with an outcome scale (gaussian) has a residual sd ``aux`` =
    sd(y) * Exponential(1), and decov multiplies its group sds by it.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    aux = 1.0
    if aux_scale is not None:
        aux = numpyro.deterministic("aux", aux_scale * numpyro.sample("aux_unscaled", dist.Exponential(1.0)))
    if whitened_terms is not None and H is not None:  # structured terms in whitened coordinates
        from ..whitening import whitened_effects

        tau = numpyro.sample("tau", dist.Gamma(jnp.ones(n_terms), 1.0))
        sigma = numpyro.deterministic("sigma", sd_scale * tau * aux)
        d, band, log_det = _coordinate_precision(whitened_terms, sigma)
        alpha, beta, w = whitened_effects(Xc.shape[1], has_intercept, coef_scale, intercept_scale, intercept_loc,
                                          d ** -0.5, np.arange(len(whitened_terms["term"])), H, r, band=band,
                                          log_det=log_det)
        for k in range(n_terms):
            numpyro.deterministic(f"factor_{k}", jnp.reshape(sigma[k], (1, 1)))
        b = numpyro.deterministic("b", jnp.asarray(whitened_terms["M"]) @ w)
    elif slopes is not None:
        alpha = numpyro.sample("alpha", dist.Normal(intercept_loc, intercept_scale)) if has_intercept else 0.0
        beta = numpyro.sample("beta", dist.Normal(0.0, jnp.asarray(coef_scale))) if Xc.shape[1] else None
        b = _term_effects(slopes, sd_scale, aux)
    else:
        sigma, b = None, None
        if n_terms:
            tau = numpyro.sample("tau", dist.Gamma(jnp.ones(n_terms), 1.0))
            sigma = numpyro.deterministic("sigma", sd_scale * tau * aux)
        if H is None:
            alpha = numpyro.sample("alpha", dist.Normal(intercept_loc, intercept_scale)) if has_intercept else 0.0
            beta = numpyro.sample("beta", dist.Normal(0.0, jnp.asarray(coef_scale))) if Xc.shape[1] else None
            if n_terms:
                z = numpyro.sample("z", dist.Normal(jnp.zeros(len(term_of_level)), 1.0))
                b = sigma[jnp.asarray(term_of_level)] * z
        else:
            from ..whitening import whitened_effects

            alpha, beta, b = whitened_effects(Xc.shape[1], has_intercept, coef_scale, intercept_scale,
                                               intercept_loc, sigma, term_of_level, H, r)
    if prior_only:
        return
    if moments is not None:
        fixed = jnp.concatenate([jnp.reshape(alpha, (-1,))[:int(has_intercept)], jnp.zeros(0) if beta is None
                                 else beta])
        moments.quadratic.numpyro_factor(moments.squares(fixed, jnp.zeros(0) if b is None else b), aux ** 2)
        return
    eta = jnp.asarray(offset) + alpha
    if Xc.shape[1]:
        eta = eta + jnp.asarray(Xc) @ beta
    if b is not None and slopes is not None:
        eta = eta + (b[jnp.asarray(slopes["cols"])] * jnp.asarray(slopes["vals"])).sum(axis=0)
    elif b is not None:
        eta = eta + b[jnp.asarray(cols)].sum(axis=0)
    family.numpyro_likelihood(stats, eta, dispersion=aux ** 2)


def _term_effects(slopes: dict, sd_scale: float, aux):
    """Every term's effects, non-centred, as ``b``; each term's factor T (its sd for a structured term) as
    ``factor_<k>``. Per term, tau ~ gamma(1, 1) sets the sd s = sd_scale tau aux.

    - rstanarm's decov prior: s^2 K is the trace, a simplex pi ~ Dirichlet(1) splits it into variances,
      the correlations' Cholesky factor is LKJ(1); a level's effects are T z, T = diag(sqrt(pi K)) s C.
    - rw1, rw2, icar: b = s B z, B the constrained field's basis (:meth:`misterp.model.terms.Structure.field_basis`);
    - ar1: b = s L(rho) z, L the Cholesky factor of rho^|i - j|, rho ~ uniform(-1, 1), as ``rho_<k>``;
    - bym2: b = s (sqrt(1 - rho) theta + sqrt(rho / scale) B z), an island's b = s theta, rho ~ beta(1/2, 1/2).
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    n_terms = len(slopes["n_effects"])
    tau = numpyro.sample("tau", dist.Gamma(jnp.ones(n_terms), 1.0))
    structures = slopes.get("structures") or (None,) * n_terms
    sizes = [K * J if st is None else _field_size(st, J) for K, J, st in zip(slopes["n_effects"], slopes["n_levels"],
                                                                             structures)]
    z = numpyro.sample("z", dist.Normal(jnp.zeros(sum(sizes)), 1.0))
    pieces, start = [], 0
    for k, (K, J, st) in enumerate(zip(slopes["n_effects"], slopes["n_levels"], structures)):
        scale = sd_scale * tau[k] * aux
        zk = z[start:start + sizes[k]]
        start += sizes[k]
        if st is not None:
            numpyro.deterministic(f"factor_{k}", jnp.reshape(scale, (1, 1)))
            pieces.append(scale * _unit_field(k, st, zk, J))
            continue
        if K == 1:
            T = jnp.reshape(scale, (1, 1))
        else:
            pi = numpyro.sample(f"simplex_{k}", dist.Dirichlet(jnp.ones(K)))
            C = numpyro.sample(f"corr_{k}", dist.LKJCholesky(K, 1.0))
            T = jnp.sqrt(pi * K)[:, None] * scale * C
        numpyro.deterministic(f"factor_{k}", T)
        pieces.append((zk.reshape(J, K) @ T.T).ravel())
    return numpyro.deterministic("b", jnp.concatenate(pieces))


def _basis(structure) -> np.ndarray:
    """The constrained field's basis B (J, r) (:meth:`misterp.model.terms.Structure.field_basis`): bym2's phi
    leaves the islands out."""
    return structure.field_basis(islands=structure.kind != "bym2")


def _field_size(structure, J: int) -> int:
    """The standard normals a structured term takes: the basis's columns, J for ar1, J + columns for bym2."""
    if structure.kind == "ar1":
        return J
    return _basis(structure).shape[1] + (J if structure.kind == "bym2" else 0)


def _unit_field(k: int, structure, z, J: int):
    """A structured term's effects at sd 1 from its standard normals z (:func:`_field_size`), (J,)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    kind = structure.kind
    if kind in ("rw1", "rw2", "icar"):
        return jnp.asarray(_basis(structure)) @ z
    if kind == "ar1":
        rho = numpyro.sample(f"rho_{k}", dist.Uniform(-1.0, 1.0))
        powers = jnp.concatenate([jnp.ones(1), jnp.cumprod(jnp.full(J - 1, rho))])   # rho^0 .. rho^(J-1)
        lag = np.subtract.outer(np.arange(J), np.arange(J))
        first = np.arange(J)[None, :] == 0
        L = jnp.where(lag >= 0, powers[np.maximum(lag, 0)], 0.0) * jnp.where(first, 1.0, jnp.sqrt(1.0 - rho ** 2))
        return L @ z
    rho = numpyro.sample(f"rho_{k}", dist.Beta(0.5, 0.5))
    connected = np.ones(J)
    connected[structure.islands] = 0.0
    theta, phi = z[:J], jnp.asarray(_basis(structure)) @ z[J:]
    return jnp.sqrt(1.0 - rho * connected) * theta + jnp.sqrt(rho / structure.scale_factors) * connected * phi
