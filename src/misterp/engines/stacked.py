"""The Laplace fit of a family with several linear predictors (a categorical outcome's m = K - 1).

Predictor k has its own fixed effects beta_k (p,) and, for every grouping term, its own effects b_k = sigma_kt u
with u ~ N(0, I) and its own sd sigma_kt, as brms's ``categorical()`` with ``(1|g)``: the terms of different
predictors are independent. With the effects integrated out by the Laplace approximation at their conditional
mode u^,

    -2 log L(beta, sigma) ~ -2 loglik(eta^) + |u^|^2 + log det(I + Lambda Z'WZ Lambda),

W the (n_cells, m, m) blocks of the family's working weights and Lambda = diag(sigma) on the stacked u: glmer's
objective, with W's blocks in place of its diagonal. As glmer, the fit first takes the joint mode of beta and u
given sigma and optimizes sigma alone (nAGQ = 0), then optimizes beta and sigma together (nAGQ = 1); sigma >= 0,
so an sd may sit at 0 where the data give no variance (brms's prior keeps it off 0).

Every array of coefficients is predictor-major: predictor k's block is its fixed effects then its group effects
in the design's order, the layout the Fit protocol's stacked coefficients take (``misterp.cell_draws``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ..errors import MisterpInputError
from ..model.cells import Cells
from .fit import Fit, ParameterDraws, normal_draws, rank_problems, separation_problems, spd_solve, stacked_names

NEWTON_TOL = 1e-10   # a Newton step's largest change in u (or beta) at convergence
GRADIENT_STEP = 1e-5  # central differences of the Laplace objective in (beta, sigma)


class StackedProblem:
    """A multi-predictor model's data for the Laplace objective: X (n, p), dense Z (n, q), each level's term."""

    def __init__(self, cells: Cells):
        design = cells.design
        if any(g.structured or not g.intercept for g in design.group_terms) or np.any(design.n_effects > 1):
            raise MisterpInputError(
                f"A {cells.family.name} outcome takes random intercepts such as (1|g) by the laplace engine; "
                f"{design.group_names} has varying slopes or structured terms. Write them as (1|g) terms.")
        self.cells, self.family, self.stats = cells, cells.family, cells.stats
        self.X, self.Z = cells.X, design.random_matrix(cells.table).toarray()
        self.offset = cells.offset
        self.m, self.p, self.q = cells.family.n_predictors, self.X.shape[1], self.Z.shape[1]
        self.n_terms = len(design.group_terms)
        self.term_of_level = np.repeat(np.arange(self.n_terms), design.n_levels)

    def scales(self, sigma: np.ndarray) -> np.ndarray:
        """Lambda's diagonal per predictor, (m, q), from the sds (m, n_terms), or flat (m n_terms,)."""
        return np.reshape(sigma, (self.m, self.n_terms))[:, self.term_of_level]

    def loglik(self, eta: np.ndarray) -> float:
        return float(self.family.loglik(self.stats, eta, constant=False).sum())


def _predictors(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A_k v_k for each predictor, (n, m), from A (m, n, d) and v (m, d)."""
    return np.stack([A[k] @ v[k] for k in range(len(v))], axis=1)


def _gram(A: np.ndarray, w: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """sum_n A_k[n]' w[n, k, l] A_l[n] in (k, l) blocks plus the penalty's diagonal, (m d, m d)."""
    m, _, d = A.shape
    H = np.empty((m * d, m * d))
    for k in range(m):
        for l in range(k, m):
            block = (A[k] * w[:, k, l][:, None]).T @ A[l]
            H[k * d:(k + 1) * d, l * d:(l + 1) * d] = block
            H[l * d:(l + 1) * d, k * d:(k + 1) * d] = block.T
    H[np.diag_indices_from(H)] += np.tile(penalty, m)
    return H


def _mode(prob: StackedProblem, A: np.ndarray, base: np.ndarray, penalty: np.ndarray, v: np.ndarray):
    """Maximize loglik(base + A_k v_k) - |penalty * v|^2 / 2 over v (m, d) by Newton with step halving.

    A : (m, n, d), one design per predictor; base : (n, m); penalty : (d,) 1 on u, 0 on beta.
    Returns (v, eta, the penalized Hessian (m d, m d), the penalized log-likelihood)."""
    def value(v):
        eta = base + _predictors(A, v)
        return eta, prob.loglik(eta) - 0.5 * float(np.sum(penalty * v * v))

    eta, current = value(v)
    for _ in range(100):
        _, w, r, _ = prob.family.working(prob.stats, eta)
        g = np.stack([A[k].T @ r[:, k] for k in range(len(v))]) - penalty * v
        step = spd_solve(_gram(A, w, penalty), g.ravel()).reshape(v.shape)
        for _ in range(30):
            new_eta, new = value(v + step)
            if new >= current - 1e-12 * abs(current):
                break
            step = step / 2
        v, eta, moved, current = v + step, new_eta, np.abs(step).max(), new
        if moved < NEWTON_TOL:
            break
    _, w, _, _ = prob.family.working(prob.stats, eta)
    return v, eta, _gram(A, w, penalty), current


class LaplaceObjective:
    """-2 log L of the Laplace approximation, in (beta, sigma) or, profiling beta at the joint mode, in sigma;
    each call starts Newton from the last mode."""

    def __init__(self, prob: StackedProblem, beta: np.ndarray):
        self.prob = prob
        self.u = np.zeros((prob.m, prob.q))
        self.beta = beta.copy()  # (m, p)

    def _u_design(self, sigma: np.ndarray) -> np.ndarray:
        prob = self.prob
        return prob.Z[None, :, :] * prob.scales(sigma)[:, None, :]  # (m, n, q)

    def full(self, beta: np.ndarray, sigma: np.ndarray) -> float:
        """nAGQ = 1: u at its mode given beta and sigma."""
        prob = self.prob
        base = prob.offset[:, None] + prob.X @ beta.T
        self.u, eta, H, penalized = _mode(prob, self._u_design(sigma), base, np.ones(prob.q), self.u)
        return -2.0 * penalized + np.linalg.slogdet(H)[1]

    def profiled(self, sigma: np.ndarray) -> float:
        """nAGQ = 0: beta and u at their joint mode given sigma; the log determinant over u alone."""
        prob = self.prob
        A = np.concatenate([np.broadcast_to(prob.X, (prob.m,) + prob.X.shape), self._u_design(sigma)], axis=2)
        penalty = np.concatenate([np.zeros(prob.p), np.ones(prob.q)])
        v, eta, H, penalized = _mode(prob, A, np.broadcast_to(prob.offset[:, None], (len(prob.offset), prob.m)),
                                     penalty, np.concatenate([self.beta, self.u], axis=1))
        self.beta, self.u = v[:, :prob.p], v[:, prob.p:]
        keep = np.tile(penalty, prob.m) > 0
        return -2.0 * penalized + np.linalg.slogdet(H[np.ix_(keep, keep)])[1]


def _central_gradient(f, x: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Central differences of f at x, one-sided where x sits within a step of its lower bound."""
    g = np.empty_like(x)
    for i in range(len(x)):
        h = GRADIENT_STEP
        up, down = x.copy(), x.copy()
        up[i] += h
        if x[i] - h >= lower[i]:
            down[i] -= h
            g[i] = (f(up) - f(down)) / (2 * h)
        else:
            g[i] = (f(up) - f(x)) / h
    return g


def _minimize(f, x0: np.ndarray, lower: np.ndarray):
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    return minimize(f, x0, jac=lambda x: _central_gradient(f, x, lower), method="L-BFGS-B", bounds=bounds,
                    options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-7})


def stacked_fit(cells: Cells) -> "StackedFit":
    """The Laplace maximum-likelihood fit of a multi-predictor family (see the module's notes)."""
    from .glm import irls

    prob = StackedProblem(cells)
    m, p, T = prob.m, prob.p, prob.n_terms
    beta0, _, _ = irls(prob.X, prob.stats, prob.offset, prob.family)
    objective = LaplaceObjective(prob, beta0.reshape(m, p))
    first = _minimize(objective.profiled, np.ones(m * T), np.zeros(m * T))
    sigma0, beta1 = first.x, objective.beta.copy()
    x0 = np.concatenate([beta1.ravel(), sigma0])
    lower = np.concatenate([np.full(m * p, -np.inf), np.zeros(m * T)])
    second = _minimize(lambda x: objective.full(x[:m * p].reshape(m, p), x[m * p:].reshape(m, T)), x0, lower)
    beta, sigma = second.x[:m * p].reshape(m, p), second.x[m * p:].reshape(m, T)
    deviance = objective.full(beta, sigma)  # leaves objective.u at this mode
    u = objective.u
    b = prob.scales(sigma) * u
    # the normal approximation of (beta, u) at the mode, mapped to (beta, b)
    A = np.concatenate([np.broadcast_to(prob.X, (m,) + prob.X.shape), objective._u_design(sigma)], axis=2)
    eta = prob.offset[:, None] + _predictors(A, np.concatenate([beta, u], axis=1))
    _, w, _, _ = prob.family.working(prob.stats, eta)
    d = p + prob.q
    H = _gram(A, w, np.concatenate([np.zeros(p), np.ones(prob.q)]))
    scale = np.concatenate([np.ones((m, p)), prob.scales(sigma)], axis=1).ravel()
    cov = spd_solve(H, np.eye(m * d)) * np.outer(scale, scale)
    loglik = -0.5 * deviance + cells.row_constant
    return StackedFit(cells, beta, b, sigma, cov, loglik, bool(first.success and second.success))


@dataclass(frozen=True, repr=False)
class StackedFit(Fit):
    """A multi-predictor family's Laplace fit: per predictor its fixed effects, group effects and sds.

    Attributes
    ----------
    beta : (m, p) array
    b : (m, q) array
        Each predictor's group effects at their conditional mode.
    sigma : (m, n_terms) array
        Each predictor's sd of each grouping term.
    cov : (m (p + q), m (p + q)) array
        The normal approximation of the stacked (beta_k, b_k) blocks at the mode.
    loglik : float
        The Laplace approximation of the log-likelihood at the maximum.
    """

    cells: Cells
    beta: np.ndarray
    b: np.ndarray
    sigma: np.ndarray
    cov: np.ndarray
    loglik: float
    converged: bool

    kind = "laplace-stacked"
    method = "normal-approx"
    interval = "draws"
    unseen = "level"

    @property
    def coef(self) -> pd.Series:
        """The fixed effects, "<category>:<name>"."""
        return pd.Series(self.beta.ravel(), index=stacked_names(self.design.fixed_names, self.family))

    def fixef(self) -> pd.Series:
        return self.coef

    def varcorr(self) -> pd.DataFrame:
        """Each predictor's sd of each grouping term (term, predictor, sd)."""
        return pd.DataFrame([(name, k, self.sigma[i, t]) for i, k in enumerate(self.family.predictor_names)
                             for t, name in enumerate(self.design.group_names)], columns=["term", "predictor", "sd"])

    def summary(self) -> str:
        p = self.beta.shape[1]
        se = np.sqrt(np.diag(self.cov)).reshape(self.beta.shape[0], -1)[:, :p].ravel()
        fixed = pd.DataFrame({"Estimate": self.beta.ravel(), "Std. Error": se}, index=self.coef.index)
        return "\n".join([
            f"Multinomial-logit mixed model fit by maximum likelihood (Laplace approximation) [{self.family.name}]",
            f" Formula: {self.design.formula.text}   reference category: {self.family.reference}",
            f" logLik: {self.loglik:.4f}", "", "Random effects (sd):", self.varcorr().to_string(index=False), "",
            "Fixed effects:", fixed.to_string(float_format=lambda v: f"{v:.5f}")])

    # -- the Fit protocol --------------------------------------------------------
    def point_coef(self) -> np.ndarray:
        return np.concatenate([self.beta, self.b], axis=1).ravel()

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        n_draws = 1000 if n_draws is None else n_draws
        coef = normal_draws(self.point_coef(), self.cov, n_draws, rng)
        # per predictor, its terms' sds: an unseen level's effect in that predictor's linear predictor
        scale = [[np.broadcast_to(s, (n_draws, 1, 1)) for s in row] for row in self.sigma]
        return ParameterDraws(coef, scale)

    def problems(self) -> list[str]:
        cells = self.cells
        eta = cells.offset[:, None] + cells.X @ self.beta.T + cells.design.random_matrix(cells.table) @ self.b.T
        notes = [] if self.converged else ["the Laplace optimization did not report convergence; check the sds"]
        return rank_problems(cells) + notes + separation_problems(cells, eta)

    def saved_state(self) -> tuple[dict, dict]:
        return ({"loglik": self.loglik, "converged": self.converged},
                {"beta": self.beta, "b": self.b, "sigma": self.sigma, "cov": self.cov})

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "StackedFit":
        return cls(cells, arrays["beta"], arrays["b"], arrays["sigma"], arrays["cov"], meta["loglik"],
                   meta["converged"])
