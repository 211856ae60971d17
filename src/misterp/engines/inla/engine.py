"""The inla engine's settings and its three steps: the mode of π(φ | y), the design around it, and
the latent field at every point.

See the package's docstring (:mod:`misterp.engines.inla`) for the method and its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from ...errors import MisterpInputError
from ...model.cells import Cells
from ..bayes import Priors
from ..fit import one_blas_thread, require_one_predictor
from .design import integration_points
from .fit import InlaFit
from .posterior import HyperPosterior, Inner

HESSIAN_STEP = 1e-3  # central differences of the exact gradient, in log sd: error ~1e-6 of the curvature


@dataclass(frozen=True)
class InlaEngine:
    """Integrated nested Laplace approximation of the bayes engine's posterior.

    Attributes
    ----------
    priors : Priors
        The bayes engine's (rstanarm's) priors.
    design : {"auto", "grid", "ccd", "mode"}
        The integration design over the hyperparameters: "auto" takes the grid for up to two and
        the central composite design above (:mod:`.design`); "mode" takes the mode alone (R-INLA's
        empirical Bayes: the laplace engine's fit of structured terms).
    skew : bool
        INLA's skewness correction: different scalings on each side of the mode.
    draws : int
        Draws of the effects from the mixture over the design's points (the default of
        ``cell_draws``): independent draws, so 2,000 match the bayes engine's 4,000 correlated ones
        in precision.
    seed : int
        Seeds those draws, so a fit's predictions repeat.
    correction : bool
        Add the Laplace approximation's next-order term to log π(φ | y)
        (:meth:`.posterior.HyperPosterior.correction`): without it, groups of a few binary answers
        get too small an sd, as lme4's Laplace fit gives them.
    """

    priors: Priors = field(default_factory=Priors)
    design: str = "auto"
    skew: bool = True
    draws: int = 2000
    seed: int = 0
    correction: bool = True

    def fit(self, cells: Cells) -> InlaFit:
        """The mode of the hyperparameters' posterior, the design's points and weights around it, and
        the latent field's mode and precision at each point; a warning for each of ``problems()``."""
        with one_blas_thread():
            fit = self.fit_unwarned(cells)
        fit.warn_problems()
        return fit

    def fit_unwarned(self, cells: Cells) -> InlaFit:
        """:meth:`fit` without the warnings, for a caller that gives them itself."""
        require_one_predictor(cells, "inla")
        try:
            return self._fit(cells)
        except (FloatingPointError, np.linalg.LinAlgError) as error:
            raise MisterpInputError(
                f"The search for the hyperparameters' mode left the range where the Laplace approximation holds "
                f"({error}): a variance ran off to 0 or to infinity, as when the fixed effects fit a gaussian "
                "outcome exactly or a predictor separates the answers. Check the outcome and the model, or use "
                "--engine bayes.") from error

    def _fit(self, cells: Cells) -> InlaFit:
        post = HyperPosterior(cells, self.priors)
        if post.m == 0:  # fixed effects only: one Laplace approximation, no hyperparameters to integrate
            state = post.inner(np.zeros(0))
            return InlaFit(cells, np.zeros((1, 0)), np.ones(1), state.x[None], stacked([state], post), np.zeros(0),
                           np.zeros((0, 0)), np.zeros(0), np.zeros(0), {"converged": True, "message": "no "
                           "hyperparameters", "evaluations": 1, "max_abs_gradient": 0.0}, self)
        search = ModeSearch(post, corrected=self.correction)
        laplace_mode, info = search.run(post.start())
        hessian = search.hessian(laplace_mode)
        try:
            mode, points, info = self._design(search, laplace_mode, hessian, info)
        except ValueError as error:
            raise MisterpInputError(
                f"The inla engine found no interior mode of the hyperparameters' posterior ({error}): the "
                "model's variances are not identified by these data. Try --engine bayes.") from error
        inner = [search.state(phi) for phi in points.phi]
        info = {**info, "large_terms": post.large_term_share(search.state(mode))}
        return InlaFit(cells, points.phi, points.weights, np.stack([s.x for s in inner]), stacked(inner, post),
                       mode, hessian, points.s_pos, points.s_neg, info, self)


    def _design(self, search: "ModeSearch", laplace_mode: np.ndarray, hessian: np.ndarray, info: dict):
        """(mode, IntegrationPoints, info): the design around the corrected mode, or, where the correction
        bends the density out of the design's reach, around the Laplace mode with the Laplace density
        alone (and ``info`` says so). ValueError where neither has an interior mode."""
        if not self.correction:
            return laplace_mode, integration_points(laplace_mode, hessian, search.log_density, kind=self.design,
                                                    skew=self.skew), info
        mode = search.refine(laplace_mode, hessian)
        try:
            return mode, integration_points(mode, hessian, search.log_density, kind=self.design, skew=self.skew), info
        except ValueError:
            search.corrected = False
            search.corrections.clear()
            info = {**info, "correction": "left out: the corrected density had no interior mode the design could reach"}
            return laplace_mode, integration_points(laplace_mode, hessian, search.log_density, kind=self.design,
                                                    skew=self.skew), info


def stacked(states: list[Inner], post: HyperPosterior) -> dict:
    """The points' factorised precisions as InlaFit keeps them: each array stacked over the points,
    and a sparse pattern's rows and cols once."""
    parts = [s.system.arrays() for s in states]
    out = {k: np.stack([part[k] for part in parts]) for k in parts[0]}
    if post.sparse:
        out.update(rows=post.elim.rows, cols=post.elim.cols)
    return out


class ModeSearch:
    """log π(φ | y) with a memory: each φ's latent mode is kept, and each solve starts from the
    last one found. ``log_density`` is the Laplace approximation, plus its next-order term when
    ``corrected``."""

    def __init__(self, post: HyperPosterior, corrected: bool = True):
        self.post, self.corrected = post, corrected
        self.states: dict[bytes, Inner] = {}
        self.corrections: dict[bytes, float] = {}
        self.last: Inner | None = None
        self.evaluations = 0

    def state(self, phi: np.ndarray) -> Inner:
        phi = np.asarray(phi, float)
        key = phi.tobytes()
        if key not in self.states:
            start = None if self.last is None else self.last.x
            try:
                found = self.post.inner(phi, start)
            except (np.linalg.LinAlgError, FloatingPointError):
                found = self.post.inner(phi)
            self.states[key] = found
            self.evaluations += 1
        self.last = self.states[key]
        return self.last

    def correction(self, phi: np.ndarray) -> float:
        key = np.asarray(phi, float).tobytes()
        if key not in self.corrections:
            self.corrections[key] = self.post.correction(self.state(phi)) if self.corrected else 0.0
        return self.corrections[key]

    def log_density(self, phi: np.ndarray) -> float:
        return self.state(phi).laplace + self.correction(phi)

    def run(self, start: np.ndarray) -> tuple[np.ndarray, dict]:
        """The mode of the Laplace approximation of log π(φ | y) by L-BFGS with its exact gradient,
        and a report."""
        def objective(phi):
            st = self.state(phi)
            return -st.laplace, -self.post.gradient(st)

        res = minimize(objective, start, jac=True, method="L-BFGS-B",
                       options={"ftol": 1e-14, "gtol": 1e-6, "maxiter": 500, "maxcor": 20})
        mode = res.x
        max_grad = float(np.max(np.abs(self.post.gradient(self.state(mode)))))
        return mode, {"converged": max_grad < 1e-3, "message": str(res.message), "evaluations": self.evaluations,
                      "max_abs_gradient": max_grad}

    def hessian(self, mode: np.ndarray, h: float = HESSIAN_STEP) -> np.ndarray:
        """The Hessian of -log π(φ | y) at ``mode``, by central differences of the exact gradient, (m, m)."""
        m = len(mode)
        out = np.empty((m, m))
        for j in range(m):
            step = np.zeros(m)
            step[j] = h
            up = self.post.gradient(self.state(mode + step))
            down = self.post.gradient(self.state(mode - step))
            out[:, j] = -(up - down) / (2 * h)
        self.state(mode)
        return 0.5 * (out + out.T)

    def refine(self, mode: np.ndarray, hessian: np.ndarray, h: float = HESSIAN_STEP, steps: int = 6) -> np.ndarray:
        """The mode of the corrected log π(φ | y), by Newton steps from the Laplace mode with its
        Hessian, the correction's gradient by central differences (its value is cheap; the latent modes
        at mode ± h along each axis are :meth:`hessian`'s, kept). A step is halved until the corrected
        density rises (at most 10 times, else the search stops where it is); it stops when a step is
        below 1e-3 of a posterior sd along every axis."""
        m = len(mode)
        current = self.log_density(mode)
        for _ in range(steps):
            grad = self.post.gradient(self.state(mode))
            for j in range(m):
                step = np.zeros(m)
                step[j] = h
                grad[j] += (self.correction(mode + step) - self.correction(mode - step)) / (2 * h)
            move = np.linalg.solve(hessian, grad)
            for _ in range(10):
                trial = mode + move
                value = self.log_density(trial)
                if value >= current:
                    break
                move = move / 2
            else:
                break
            mode, current = trial, value
            if np.all(np.abs(move) * np.sqrt(np.diag(hessian)) < 1e-3):
                break
        return mode
