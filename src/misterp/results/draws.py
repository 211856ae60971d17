"""Cell predictions for a frame: the one prediction path every engine shares.

:func:`cell_draws` asks a fit (see :class:`misterp.engines.fit.Fit`) for its
point coefficients, its parameter draws and its unseen-level policy, and
turns them into :class:`CellDraws` for the frame's cells: the point
prediction, the draws as a lazy :class:`LinearDraws`, the delta method's
pieces where the fit has a coefficient covariance, and the interval the
draws call for. :func:`misterp.poststratify` reads only these.

Example
-------
>>> import pandas as pd
>>> from misterp import Frame, GlmEngine, Survey, collapse
>>> survey = Survey(pd.DataFrame({"y": [1, 0, 1, 1, 0, 1], "g": ["a", "a", "b", "b", "b", "b"]}), "y")
>>> frame = Frame(pd.DataFrame({"g": ["a", "b"], "N": [1, 3]}), "N")
>>> draws = cell_draws(GlmEngine().fit(collapse(survey, "y ~ g")), frame)
>>> draws.point.round(3).tolist(), draws.interval
([0.5, 0.75], 'delta')
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..data.frame import Frame
from ..engines.fit import Fit, ParameterDraws, stacked_eta
from ..model.family import DEFAULT_FAMILY, Family

CHUNK = 256  # draws turned into cell predictions at a time


@dataclass(frozen=True)
class LinearDraws:
    """Draws of cell means as family.mean(offset + matrix @ coef[d]).

    Attributes
    ----------
    coef : (n_draws, k) array
        Draws of the parameters (fixed effects, random effects, then the new
        effects of unseen levels).
    matrix : (n_cells, k) array or sparse matrix
        Maps parameters to each cell's linear predictor.
    offset : (n_cells,) array
    family : Family
        Its inverse link turns linear predictors into means.
    """

    coef: np.ndarray
    matrix: object
    offset: np.ndarray
    family: Family = DEFAULT_FAMILY

    @property
    def n_draws(self) -> int:
        return self.coef.shape[0]

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """Yield cell means, (<= size, n_cells) per chunk, in draw order; a family with categories gives
        their shares, (<= size, n_cells, K)."""
        m = self.family.n_predictors
        for start in range(0, self.n_draws, size):
            coef = self.coef[start:start + size]
            if self.family.categories is not None:  # predictors and shares on last axes
                yield self.family.mean(stacked_eta(self.matrix, coef, self.offset, m))
                continue
            eta = np.asarray(self.matrix @ coef.T).T  # one (size, n_cells) array,
            eta += self.offset                        # updated in place
            yield self.family.mean(eta, out=eta)


def delta_jacobian(slope: np.ndarray, X: np.ndarray) -> np.ndarray:
    """d mean / d coef for each cell: (n_cells, k) from one predictor's slope (n_cells,), or (n_cells, K, m k)
    from a family with categories (slope (n_cells, K, m), coefficients stacked predictor-major)."""
    if slope.ndim == 1:
        return slope[:, None] * X
    n, K, m = slope.shape
    return np.einsum("ckm,cp->ckmp", slope, X).reshape(n, K, m * X.shape[1])


@dataclass(frozen=True)
class CellDraws:
    """What a fit says about the cells of one frame.

    Attributes
    ----------
    point : (n_cells,) array, or (n_cells, K) shares for a family with categories
        Point predictions of the cell means (lme4's ``predict(type = "response")``,
        or the mean of a posterior's).
    draws : LinearDraws, optional
        Simulation, posterior or bootstrap draws.
    method : str
        How ``draws`` were made; the interval's label starts with it.
    se : (n_cells,) or (n_cells, K) array, optional
        Response-scale standard errors of ``point`` (``predict(se.fit = TRUE)``).
    delta : (jacobian (n_cells, k) or (n_cells, K, k), cov (k, k)), optional
        For the delta-method sd of a poststratified mean.
    unseen : dict
        Grouping term -> levels in the frame that the survey never saw.
    interval : str, optional
        The interval these predictions call for ("draws", "quantile",
        "delta"); by default "draws" when there are draws, else "delta" when
        the delta pieces are there, else "none".
    categories : tuple, optional
        The outcome's categories, when the means are their shares (the last axis of ``point``).
    scores : (K,) array, optional
        The categories as numbers (an ordinal outcome's numeric levels): poststratify adds the mean score.
    """

    point: np.ndarray
    draws: LinearDraws | None = None
    method: str = "none"
    se: np.ndarray | None = None
    delta: tuple | None = None
    unseen: dict = field(default_factory=dict)
    interval: str | None = None
    categories: tuple | None = None
    scores: np.ndarray | None = None

    @property
    def default_interval(self) -> str:
        if self.interval is not None:
            return self.interval
        return "draws" if self.draws is not None else "delta" if self.delta is not None else "none"


def cell_draws(fit: Fit, frame: Frame, *, n_draws: int | None = None, seed=None) -> CellDraws:
    """Point predictions and draws of every frame cell's mean, for any engine's fit.

    Parameters
    ----------
    fit : Fit
        A glm, laplace, bootstrap or bayes fit (or a loaded one).
    frame : Frame
    n_draws : int, optional
        How many parameter draws: by default the fit's own (1,000 normal
        draws for laplace, every refit, every posterior draw, none for glm).
    seed : int or numpy Generator, optional
        Seeds the normal-approximation draws and the new effects of unseen
        levels. By default the fit's ``draw_seed``: a Bayesian fit's sampler
        seed + 1, so its predictions repeat; otherwise fresh entropy, as
        numpy gives.

    Returns
    -------
    CellDraws
        For the frame's rows, in frame order. A grouping level the survey
        never saw gets b = 0 in the point prediction, and in the draws what
        the fit's ``unseen`` policy says.

    Examples
    --------
    >>> import pandas as pd
    >>> from misterp import Frame, LaplaceEngine, Survey, prepare
    >>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5})
    >>> fit = LaplaceEngine().fit(prepare(Survey(data, "y"), None, "y ~ (1|g)")[0])
    >>> draws = cell_draws(fit, Frame(pd.DataFrame({"g": ["a", "z"], "N": [1, 1]}), "N"), n_draws=200, seed=1)
    >>> draws.unseen, draws.draws.n_draws, draws.interval
    ({'g': ['z']}, 200, 'draws')
    """
    return Predictor(fit, n_draws=n_draws, seed=seed).cells(frame.data)


class Predictor:
    """A fit's parameter draws, made once, turned into :class:`CellDraws` for any rows of a frame.

    The streaming poststratification calls :meth:`cells` once per chunk of
    frame rows; every chunk shares the same parameter draws, and an unseen
    level's new effects are a function of the level (and the seed), not of
    the chunk it is in, so the same level in two chunks gets the same draw.
    """

    def __init__(self, fit: Fit, *, n_draws: int | None = None, seed=None):
        self.fit = fit
        rng = np.random.default_rng(fit.draw_seed if seed is None else seed)
        self.params = fit.parameter_draws(n_draws, rng)
        if fit.point == "mean" and (self.params is None or len(self.params.coef) == 0):
            raise ValueError("this fit's point prediction is the mean of its draws; ask for at least one draw")
        # drawn after the parameters, so a seed gives the same parameter draws as before
        self.level_key = int(rng.integers(2**63))
        self.coef = fit.point_coef() if fit.point == "mode" else None
        self.cov = fit.coef_cov() if fit.point == "mode" else None

    @property
    def n_draws(self) -> int:
        return 0 if self.params is None else len(self.params.coef)

    def cells(self, data, with_delta: bool = True) -> CellDraws:
        """CellDraws for the rows of ``data`` (a frame's DataFrame or a chunk of it), in row order;
        without ``with_delta``, without the delta method's standard errors and Jacobian (a dense
        (n_rows, n_coef) array), for an interval that comes from the draws."""
        fit = self.fit
        design, family = fit.design, fit.family
        matrix, extra_term, unseen = design.linear_map(data, unseen=fit.unseen)
        offset = design.offset(data)
        draws = None
        m = family.n_predictors
        if self.params is not None:
            levels = _extra_levels(design, extra_term, unseen, fit.unseen)
            draws = LinearDraws(self._with_new_effects(levels, design.n_effects, family), matrix, offset, family)
        width = None if self.coef is None else len(self.coef) // m  # coefficients per linear predictor
        if fit.point == "mean":
            point = sum(chunk.sum(axis=0) for chunk in draws.chunks(CHUNK)) / draws.n_draws
        else:
            eta = stacked_eta(matrix[:, :width], self.coef, offset, m) if family.categories is not None else (
                offset + matrix[:, :width] @ self.coef)
            point = family.mean(eta)
        se = delta = None
        if self.cov is not None and with_delta:
            jacobian = delta_jacobian(family.mean_deriv(eta), matrix[:, :width].toarray())
            se = np.sqrt(np.einsum("...j,jk,...k->...", jacobian, self.cov, jacobian))
            delta = (jacobian, self.cov)
        return CellDraws(point=point, draws=draws, method=fit.method, interval=fit.interval, se=se, delta=delta,
                         unseen=unseen, categories=family.categories, scores=family.scores)


    def _with_new_effects(self, levels: list, n_effects: np.ndarray, family) -> np.ndarray:
        """The parameter draws with the new effects of unseen levels after each linear predictor's block
        (the ``scale`` of a fit of a family with categories holds each predictor's list of term factors)."""
        params, m = self.params, family.n_predictors
        if not levels:
            return params.coef
        if family.categories is None:
            return np.hstack([params.coef, _new_effects(params, levels, n_effects, self.level_key)])
        n_draws = len(params.coef)
        # predictors that share their group effects (an ordinal outcome's) share an unseen level's draw too
        new = [_new_effects(ParameterDraws(params.coef, params.scale[k]), levels, n_effects,
                            self.level_key + (0 if family.shares_slopes else k)) for k in range(m)]
        blocks = params.coef.reshape(n_draws, m, params.coef.shape[1] // m)
        stacked = np.concatenate([blocks, np.stack(new, axis=1)], axis=2)
        return stacked.reshape(n_draws, m * stacked.shape[2])


def _extra_levels(design, extra_term: np.ndarray, unseen: dict, policy: str) -> list[tuple[int, str]]:
    """(term, level label) of each block of new-effect columns, in linear_map's column order: per term,
    one block per unseen level (policy "level", in the order of ``unseen``'s labels) or one per term."""
    levels = []
    for k in dict.fromkeys(extra_term.tolist()):
        names = unseen[design.group_terms[k].name] if policy == "level" else [""]
        levels += [(k, name) for name in names]
    return levels


def _level_seed(key: int, term: int, label: str) -> list[int]:
    """Entropy for one level's new effects: the same for that level in every chunk and run with this key."""
    digest = hashlib.blake2b(label.encode("utf-8"), digest_size=8).digest()
    return [key, term, int.from_bytes(digest, "little")]


def _new_effects(params, levels: list[tuple[int, str]], n_effects: np.ndarray, key: int) -> np.ndarray:
    """Effects of unseen levels, (n_draws, sum of K over ``levels``): F z per draw for each new level's
    block of K columns, with its term's factor F (an sd for a random intercept) and z ~ N(0, I) drawn
    from the level's own stream (see :func:`_level_seed`)."""
    n_draws = len(params.coef)
    blocks = [np.zeros((n_draws, 0))]
    for k, label in levels:
        K = n_effects[k]
        z = np.random.default_rng(_level_seed(key, k, label)).standard_normal((n_draws, K))
        blocks.append(np.einsum("dij,dj->di", np.broadcast_to(params.scale[k], (n_draws, K, K)), z))
    return np.hstack(blocks)
