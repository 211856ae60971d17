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

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..data.frame import Frame
from ..engines.fit import Fit
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
        """Yield cell means, (<= size, n_cells) per chunk, in draw order."""
        for start in range(0, self.n_draws, size):
            eta = np.asarray(self.matrix @ self.coef[start:start + size].T).T  # one (size, n_cells) array,
            eta += self.offset                                                 # updated in place
            yield self.family.mean(eta, out=eta)


@dataclass(frozen=True)
class CellDraws:
    """What a fit says about the cells of one frame.

    Attributes
    ----------
    point : (n_cells,) array
        Point predictions of the cell means (lme4's ``predict(type = "response")``,
        or the mean of a posterior's).
    draws : LinearDraws, optional
        Simulation, posterior or bootstrap draws.
    method : str
        How ``draws`` were made; the interval's label starts with it.
    se : (n_cells,) array, optional
        Response-scale standard errors of ``point`` (``predict(se.fit = TRUE)``).
    delta : (jacobian (n_cells, k), cov (k, k)), optional
        For the delta-method sd of a poststratified mean.
    unseen : dict
        Grouping term -> levels in the frame that the survey never saw.
    interval : str, optional
        The interval these predictions call for ("draws", "quantile",
        "delta"); by default "draws" when there are draws, else "delta" when
        the delta pieces are there, else "none".
    """

    point: np.ndarray
    draws: LinearDraws | None = None
    method: str = "none"
    se: np.ndarray | None = None
    delta: tuple | None = None
    unseen: dict = field(default_factory=dict)
    interval: str | None = None

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
    design, family = fit.design, fit.family
    matrix, extra_term, unseen = design.linear_map(frame.data, unseen=fit.unseen)
    offset = design.offset(frame.data)
    rng = np.random.default_rng(fit.draw_seed if seed is None else seed)
    params = fit.parameter_draws(n_draws, rng)
    if fit.point == "mean" and (params is None or len(params.coef) == 0):
        raise ValueError("this fit's point prediction is the mean of its draws; ask for at least one draw")
    draws = None
    if params is not None:
        new = _new_effects(params, extra_term, design.n_effects, rng)
        draws = LinearDraws(np.hstack([params.coef, new]), matrix, offset, family)
    if fit.point == "mean":
        point = sum(chunk.sum(axis=0) for chunk in draws.chunks(CHUNK)) / draws.n_draws
    else:
        coef = fit.point_coef()
        eta = offset + matrix[:, :len(coef)] @ coef
        point = family.mean(eta)
    se = delta = None
    cov = fit.coef_cov()
    if cov is not None and fit.point == "mode":
        X = matrix[:, :len(coef)].toarray()
        slope = family.mean_deriv(eta)
        se = slope * np.sqrt(np.einsum("ij,jk,ik->i", X, cov, X))
        delta = (slope[:, None] * X, cov)
    return CellDraws(point=point, draws=draws, method=fit.method, interval=fit.interval, se=se, delta=delta,
                     unseen=unseen)


def _new_effects(params, extra_term: np.ndarray, n_effects: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Effects of unseen levels, (n_draws, n_extra): F z per draw for each new level's block of K
    columns, with its term's factor F (an sd for a random intercept) and z ~ N(0, I)."""
    z = rng.standard_normal((len(params.coef), len(extra_term)))
    start = 0
    while start < len(extra_term):
        k = extra_term[start]
        K = n_effects[k]
        block = slice(start, start + K)
        z[:, block] = np.einsum("dij,dj->di", np.broadcast_to(params.scale[k], (len(z), K, K)), z[:, block])
        start += K
    return z
