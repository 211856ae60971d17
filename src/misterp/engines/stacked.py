"""The Laplace fit of a family with several linear predictors eta_1..eta_m per cell.

Two layouts of the parameters serve the families (``family.shares_slopes``):

- separate (a categorical outcome, m = K - 1): predictor k has its own fixed effects beta_k and, for every
  grouping term, its own effects b_k = sigma_kt u_k and sd sigma_kt, independent across predictors, as brms's
  ``categorical()`` with ``(1|g)``;
- shared (an ordinal outcome's cut points, m = K - 1): eta_j = theta_j - x'beta - z'b, one beta, one b = sigma_t u
  and one sd per term, the intercept replaced by the cut points, as ``ordinal::clmm``.

Either way eta_j = offset + A_j(sigma) v for one vector v = (fixed part, u) with u ~ N(0, I), and with u
integrated out by the Laplace approximation at its conditional mode u^,

    -2 log L(fixed, sigma) ~ -2 loglik(eta^) + |u^|^2 + log det(I + sum_jk A_uj' W_jk A_uk),

W the (n_cells, m, m) blocks of the log-likelihood's negative Hessian in the eta_j: glmer's objective with W's
blocks in place of its diagonal. As glmer, the fit first takes the joint mode of the fixed part and u given sigma
and optimizes sigma alone (nAGQ = 0), then optimizes the fixed part and sigma together (nAGQ = 1); sigma >= 0,
so an sd may sit at 0 where the data give no variance (a Bayesian prior keeps it off 0).

The Fit protocol's coefficients are predictor-major blocks, predictor j's being the fixed effects then the group
effects that make eta_j (:meth:`Layout.stacked`): the layout ``misterp.cell_draws`` reads for every engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize

from ..errors import MisterpInputError
from ..model.cells import Cells
from .fit import Fit, ParameterDraws, normal_draws, rank_problems, separation_problems, spd_solve

NEWTON_TOL = 1e-10   # a Newton step's largest change in v at convergence
GRADIENT_STEP = 1e-5  # central differences of the Laplace objective in (fixed part, sigma)


class Layout:
    """How one parameter vector v = (fixed part, u) and the sds make every cell's m linear predictors.

    Attributes
    ----------
    m, p, q, n_terms : int
        Predictors, fixed-effect columns, group effects per predictor, grouping terms.
    n_fixed : int
        Entries of v before u: m p (separate), or m cut points and the p - 1 slopes (shared).
    n_sd : int
        Sds: m n_terms (separate) or n_terms (shared).
    """

    def __init__(self, cells: Cells):
        design, family = cells.design, cells.family
        if any(g.structured or not g.intercept for g in design.group_terms) or np.any(design.n_effects > 1):
            raise MisterpInputError(
                f"A {family.name} outcome takes random intercepts such as (1|g) by the laplace engine; "
                f"{design.group_names} has varying slopes or structured terms. Write them as (1|g) terms.")
        self.shared = family.shares_slopes
        if self.shared and np.any(cells.offset != 0):
            raise MisterpInputError(f"An {family.name} outcome's model takes no offset (its cut points stand for the "
                                    "intercept). Drop offset() from the formula.")
        self.names = design.fixed_names
        self.m, self.p = family.n_predictors, len(self.names)
        self.q, self.n_terms = int(design.n_random), len(design.group_terms)
        self.term_of_level = np.repeat(np.arange(self.n_terms), design.n_levels)
        if self.shared and "(Intercept)" not in self.names:
            raise MisterpInputError(f"An {family.name} outcome's cut points take the intercept's place: keep the "
                                    "formula's intercept (drop '- 1' or '+ 0').")
        self.intercept = self.names.index("(Intercept)") if "(Intercept)" in self.names else None
        self.n_fixed = self.m + self.p - 1 if self.shared else self.m * self.p
        self.n_sd = self.n_terms if self.shared else self.m * self.n_terms
        self.n_u = self.q if self.shared else self.m * self.q
        self._dense = None

    def scales(self, sigma: np.ndarray) -> np.ndarray:
        """Each u entry's sd, (n_u,)."""
        if not self.n_terms:
            return np.zeros(0)
        sigma = np.reshape(sigma, (-1, self.n_terms))
        return sigma[:, self.term_of_level].ravel()

    def design(self, X: np.ndarray, Z, sigma: np.ndarray) -> "StackedDesign":
        """The m linear predictors' design at the sds ``sigma`` (see :class:`StackedDesign`); ``Z`` is the
        model's sparse group-effect matrix (n_cells, q)."""
        m, p, q, n = self.m, self.p, self.q, len(X)
        slopes = [i for i in range(p) if i != self.intercept]
        F, coefs, cols = [], [], []
        scales = self.scales(sigma)
        for j in range(m):
            f = np.zeros((n, self.n_fixed))
            if self.shared:  # theta_j - x'beta - z'b
                f[:, j] = 1.0
                f[:, m:] = -X[:, slopes]
                coefs.append(-scales)
                cols.append(np.arange(q))
            else:
                f[:, j * p:(j + 1) * p] = X
                coefs.append(scales[j * q:(j + 1) * q])
                cols.append(np.arange(j * q, (j + 1) * q))
            F.append(f)
        if self._dense is None or self._dense[0] is not Z:  # Z's dense copy and transpose, made once
            csr = sp.csr_matrix(Z)
            self._dense = (Z, csr, csr.T.tocsr(), csr.toarray())
        return StackedDesign(F, *self._dense[1:], coefs, cols, self.n_u)

    def start(self, family, stats: dict) -> np.ndarray:
        """A starting fixed part: each predictor's intercept (cut point) at its cells' pooled link value."""
        v = np.zeros(self.n_fixed)
        pooled = family.initial_eta({k: a.sum(axis=0, keepdims=True) for k, a in stats.items()})[0]
        if self.shared:
            v[:self.m] = pooled
        elif self.intercept is not None:
            v[self.intercept::self.p][:self.m] = pooled
        return v

    def stacked(self, fixed: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The Fit protocol's coefficients from the fixed part (..., n_fixed) and effects b (..., n_u): predictor
        j's block is its p fixed effects (a cut point in the intercept's place, the slopes negated when shared)
        then its q group effects, (..., m (p + q))."""
        lead = fixed.shape[:-1]
        if not self.shared:
            blocks = np.concatenate([fixed.reshape(lead + (self.m, self.p)), b.reshape(lead + (self.m, self.q))],
                                    axis=-1)
            return blocks.reshape(lead + (self.m * (self.p + self.q),))
        slopes = [i for i in range(self.p) if i != self.intercept]
        block = np.zeros(lead + (self.m, self.p + self.q))
        block[..., self.intercept] = fixed[..., :self.m]
        block[..., slopes] = -fixed[..., None, self.m:]
        block[..., self.p:] = -b[..., None, :]
        return block.reshape(lead + (self.m * (self.p + self.q),))

    def fixed_names(self, family) -> list[str]:
        """Names of the fixed part: "<category>:<name>" per predictor, or the cut points then the slopes."""
        if self.shared:
            return list(family.predictor_names) + [n for n in self.names if n != "(Intercept)"]
        return [f"{k}:{name}" for k in family.predictor_names for name in self.names]

    def sd_names(self, family, group_names: list[str]) -> list[tuple[str, str]]:
        """(term, predictor) of each sd; the predictor is "" when the sds are shared."""
        if self.shared:
            return [(name, "") for name in group_names]
        return [(name, k) for k in family.predictor_names for name in group_names]


class StackedDesign:
    """eta_j = F_j v_fixed + Z (c_j * v_u[cols_j]) for each predictor j, v = (v_fixed, v_u).

    F_j (n_cells, k) is dense and small (k = 0 when the fixed part is not among the variables); Z (n_cells, q)
    is the sparse group-effect indicator matrix; c_j (q,) the effects' scales (with sign -1 when shared) and
    cols_j the entries of v_u predictor j reads. The Gram matrix is assembled block by block, never forming
    the m (n_cells x d) designs: its cost grows with the cells times (k + terms)^2, not with d^2."""

    def __init__(self, F: list, Z, Zt, Zd: np.ndarray, coefs: list, cols: list, n_u: int):
        self.F, self.Z, self.Zt, self.Zd, self.coefs, self.cols, self.n_u = F, Z, Zt, Zd, coefs, cols, n_u
        self.k = F[0].shape[1]

    @property
    def width(self) -> int:
        return self.k + self.n_u

    def effects_only(self) -> "StackedDesign":
        """The same design without the fixed part among the variables."""
        return StackedDesign([f[:, :0] for f in self.F], self.Z, self.Zt, self.Zd, self.coefs, self.cols, self.n_u)

    def fixed_predictors(self, fixed: np.ndarray) -> np.ndarray:
        """F_j v_fixed for each predictor, (n, m)."""
        return np.stack([f @ fixed for f in self.F], axis=1)

    def predictors(self, v: np.ndarray) -> np.ndarray:
        """eta_j - offset for each predictor, (n, m)."""
        fixed, u = v[:self.k], v[self.k:]
        return np.stack([f @ fixed + self.Z @ (c * u[cols]) for f, c, cols in zip(self.F, self.coefs, self.cols)],
                        axis=1)

    def score(self, r: np.ndarray) -> np.ndarray:
        """sum_j A_j' r_j, (d,), for r (n, m)."""
        g = np.zeros(self.width)
        for j, (f, c, cols) in enumerate(zip(self.F, self.coefs, self.cols)):
            g[:self.k] += f.T @ r[:, j]
            g[self.k + cols] += c * (self.Zt @ r[:, j])
        return g

    def gram(self, w: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        """sum_jl A_j' diag(w[:, j, l]) A_l + diag(penalty), (d, d)."""
        k, m = self.k, len(self.F)
        H = np.diag(penalty).astype(float)
        for j in range(m):
            for l in range(j, m):
                wl = w[:, j, l][:, None]
                fixed, effects = slice(0, k), k + self.cols[j]
                T = np.zeros((self.width, self.width))
                WF = wl * self.F[l]
                T[fixed, fixed] = self.F[j].T @ WF
                T[np.ix_(effects, np.arange(k))] = self.coefs[j][:, None] * (self.Zt @ WF)
                WZ = wl * self.Zd * self.coefs[l]
                T[np.ix_(np.arange(k), k + self.cols[l])] = self.F[j].T @ WZ
                T[np.ix_(effects, k + self.cols[l])] = self.coefs[j][:, None] * (self.Zt @ WZ)
                H += T if j == l else T + T.T
        return H

    def dense(self) -> np.ndarray:
        """The designs A_j as one dense (m, n_cells, d) array (for JAX)."""
        Zd = self.Zd
        A = np.zeros((len(self.F), Zd.shape[0], self.width))
        for j, (f, c, cols) in enumerate(zip(self.F, self.coefs, self.cols)):
            A[j, :, :self.k] = f
            A[j, :, self.k + cols] = (Zd * c).T
        return A


def _mode(family, stats, A: np.ndarray, base: np.ndarray, penalty: np.ndarray, v: np.ndarray):
    """Maximize loglik(base + A_j v) - |penalty^(1/2) v|^2 / 2 over v by Newton with step halving.

    A : a StackedDesign; base : (n, m); penalty : (d,) 1 on u, 0 elsewhere. Returns (v, the penalized negative
    Hessian (d, d) at the mode, the penalized log-likelihood)."""
    def value(v):
        eta = base + A.predictors(v)
        return eta, float(family.loglik(stats, eta, constant=False).sum()) - 0.5 * float(np.sum(penalty * v * v))

    eta, current = value(v)
    for _ in range(100):
        _, w, r, _ = family.working(stats, eta)
        g = A.score(r) - penalty * v
        step = spd_solve(A.gram(w, penalty), g)
        for _ in range(30):
            new_eta, new = value(v + step)
            if np.isfinite(new) and new >= current - 1e-12 * abs(current):
                break
            step = step / 2
        else:  # no step improves: v is the mode to rounding (or the start was no place to move from)
            break
        v, eta, moved, current = v + step, new_eta, np.abs(step).max(initial=0.0), new
        if moved < NEWTON_TOL:
            break
    _, w, _, _ = family.working(stats, eta)
    return v, A.gram(w, penalty), current


class LaplaceObjective:
    """-2 log L of the Laplace approximation, in (fixed part, sigma) or, the fixed part profiled at the joint
    mode, in sigma; each call starts Newton from the last mode."""

    def __init__(self, cells: Cells, layout: Layout):
        self.cells, self.layout = cells, layout
        self.X, self.Z = cells.X, cells.design.random_matrix(cells.table)
        self.base = np.broadcast_to(cells.offset[:, None], (cells.n_cells, layout.m))
        self.start = layout.start(cells.family, cells.stats)
        self.fixed, self.u = self.start.copy(), np.zeros(layout.n_u)

    def _mode(self, A, base, penalty, v):
        return _mode(self.cells.family, self.cells.stats, A, base, penalty, v)

    def full(self, fixed: np.ndarray, sigma: np.ndarray) -> float:
        """nAGQ = 1: u at its mode given the fixed part and sigma (from the last mode, else from 0)."""
        A = self.layout.design(self.X, self.Z, sigma)
        base = self.base + A.fixed_predictors(fixed)
        effects = A.effects_only()
        for u0 in (self.u, np.zeros(self.layout.n_u)):
            u, H, penalized = self._mode(effects, base, np.ones(self.layout.n_u), u0)
            value = -2.0 * penalized + np.linalg.slogdet(H)[1]
            if np.isfinite(value):
                self.u = u
                return value
        return np.inf

    def profiled(self, sigma: np.ndarray) -> float:
        """nAGQ = 0: the fixed part and u at their joint mode given sigma (from the last mode, else from the
        start); the log determinant over u alone."""
        layout, k = self.layout, self.layout.n_fixed
        A = layout.design(self.X, self.Z, sigma)
        penalty = np.concatenate([np.zeros(k), np.ones(layout.n_u)])
        for v0 in (np.concatenate([self.fixed, self.u]), np.concatenate([self.start, np.zeros(layout.n_u)])):
            v, H, penalized = self._mode(A, self.base, penalty, v0)
            value = -2.0 * penalized + np.linalg.slogdet(H[k:, k:])[1]
            if np.isfinite(value):
                self.fixed, self.u = v[:k], v[k:]
                return value
        return np.inf


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


def stacked_fit(cells: Cells, start: "StackedFit | None" = None) -> "StackedFit":
    """The Laplace maximum-likelihood fit of a multi-predictor family (see the module's notes); from
    ``start``'s optimum (a bootstrap refit), the joint stage alone."""
    layout = Layout(cells)
    objective = LaplaceObjective(cells, layout)
    k, s = layout.n_fixed, layout.n_sd
    if s:
        if start is None:
            first = _minimize(objective.profiled, np.ones(s), np.zeros(s))
            objective.profiled(first.x)  # the modes at the optimum, not at the search's last trial point
            x0, ok = np.concatenate([objective.fixed, first.x]), first.success
        else:
            objective.u = start.b / np.where(layout.scales(start.sds) > 0, layout.scales(start.sds), 1.0)
            x0, ok = np.concatenate([start.fixed, start.sds]), True
        lower = np.concatenate([np.full(k, -np.inf), np.zeros(s)])
        second = _minimize(lambda x: objective.full(x[:k], x[k:]), x0, lower)
        fixed, sigma, converged = second.x[:k], second.x[k:], bool(ok and second.success)
    else:  # no grouping terms: the maximum likelihood itself (as ordinal::clm, nnet::multinom)
        objective.profiled(np.zeros(0))
        fixed, sigma, converged = objective.fixed, np.zeros(0), True
    deviance = objective.full(fixed, sigma)  # leaves objective.u at this mode
    # the normal approximation of (fixed part, u) at the mode, mapped to (fixed part, b)
    A = layout.design(objective.X, objective.Z, sigma)
    v = np.concatenate([fixed, objective.u])
    _, w, _, _ = cells.family.working(cells.stats, objective.base + A.predictors(v))
    H = A.gram(w, np.concatenate([np.zeros(k), np.ones(layout.n_u)]))
    scale = np.concatenate([np.ones(k), layout.scales(sigma)])
    cov = spd_solve(H, np.eye(len(v))) * np.outer(scale, scale)
    loglik = -0.5 * deviance + cells.row_constant
    return StackedFit(cells, fixed, layout.scales(sigma) * objective.u, sigma, cov, loglik, converged)


@dataclass(frozen=True, repr=False)
class StackedFit(Fit):
    """A multi-predictor family's Laplace fit (see :class:`Layout` for its parameters).

    Attributes
    ----------
    fixed : (n_fixed,) array
        The fixed part: each predictor's fixed effects, or the cut points then the slopes.
    b : (n_u,) array
        The group effects at their conditional mode (each predictor's, or the shared ones).
    sds : (n_sd,) array
        The group sds.
    cov : (n_fixed + n_u, n_fixed + n_u) array
        The normal approximation of (fixed, b) at the mode.
    loglik : float
        The Laplace approximation of the log-likelihood at the maximum.
    """

    cells: Cells
    fixed: np.ndarray
    b: np.ndarray
    sds: np.ndarray
    cov: np.ndarray
    loglik: float
    converged: bool

    kind = "laplace-stacked"
    method = "normal-approx"
    interval = "draws"
    unseen = "level"

    @property
    def layout(self) -> Layout:
        return Layout(self.cells)

    @property
    def coef(self) -> pd.Series:
        """The fixed part, named (clmm's cut points then slopes; per category for a categorical outcome)."""
        return pd.Series(self.fixed, index=self.layout.fixed_names(self.family))

    def fixef(self) -> pd.Series:
        return self.coef

    def varcorr(self) -> pd.DataFrame:
        """The group sds (term, predictor, sd); the predictor is "" where the predictors share them."""
        names = self.layout.sd_names(self.family, self.design.group_names)
        return pd.DataFrame([(t, k, s) for (t, k), s in zip(names, self.sds)], columns=["term", "predictor", "sd"])

    def summary(self) -> str:
        se = np.sqrt(np.diag(self.cov))[:len(self.fixed)]
        fixed = pd.DataFrame({"Estimate": self.fixed, "Std. Error": se}, index=self.coef.index)
        kind = "cumulative-logit" if self.family.shares_slopes else "multinomial-logit"
        return "\n".join([
            f"{kind.capitalize()} mixed model fit by maximum likelihood (Laplace approximation) [{self.family.name}]",
            f" Formula: {self.design.formula.text}   categories: {', '.join(self.family.categories)}",
            f" logLik: {self.loglik:.4f}", "", "Random effects (sd):", self.varcorr().to_string(index=False), "",
            "Fixed effects:", fixed.to_string(float_format=lambda v: f"{v:.5f}")])

    # -- the Fit protocol --------------------------------------------------------
    def point_coef(self) -> np.ndarray:
        return self.layout.stacked(self.fixed, self.b)

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        n_draws = 1000 if n_draws is None else n_draws
        layout = self.layout
        v = normal_draws(np.concatenate([self.fixed, self.b]), self.cov, n_draws, rng)
        coef = layout.stacked(v[:, :layout.n_fixed], v[:, layout.n_fixed:])
        # per predictor, its terms' factors: an unseen level's effect in that predictor's linear predictor (shared
        # effects enter every eta_j with sign -1, and draw one z for all, see cell_draws)
        sigma = np.reshape(self.sds, (-1, layout.n_terms)) if layout.n_terms else np.zeros((layout.m, 0))
        sign = -1.0 if layout.shared else 1.0
        scale = [[np.full((n_draws, 1, 1), sign * sd) for sd in sigma[0 if layout.shared else j]]
                 for j in range(layout.m)]
        return ParameterDraws(coef, scale)

    def problems(self) -> list[str]:
        cells, layout = self.cells, self.layout
        design = layout.design(cells.X, cells.design.random_matrix(cells.table), np.ones(layout.n_sd))
        eta = cells.offset[:, None] + design.predictors(np.concatenate([self.fixed, self.b]))
        notes = [] if self.converged else ["the Laplace optimization did not report convergence; check the sds"]
        return rank_problems(cells) + notes + separation_problems(cells, eta)

    def saved_state(self) -> tuple[dict, dict]:
        return ({"loglik": self.loglik, "converged": self.converged},
                {"fixed": self.fixed, "b": self.b, "sds": self.sds, "cov": self.cov})

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "StackedFit":
        return cls(cells, arrays["fixed"], arrays["b"], arrays["sds"], arrays["cov"], meta["loglik"],
                   meta["converged"])


def stacked_bootstrap(fit: StackedFit, nsim: int, use_u: bool = True, seed=None,
                      progress: bool = True) -> "StackedBootstrapFit":
    """Parametric bootstrap of a multi-predictor Laplace fit, as lme4's bootMer: ``nsim`` outcomes simulated
    from the fit (its group effects at their modes with ``use_u``, else drawn afresh from N(0, sd^2)), each
    refitted from the fit's optimum; the refits' (fixed, b) and sds are the draws."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    cells, layout = fit.cells, fit.layout
    A = layout.design(cells.X, cells.design.random_matrix(cells.table), np.ones(layout.n_sd))
    base = cells.offset[:, None]
    coef = np.full((nsim, len(fit.point_coef())), np.nan)
    sds = np.full((nsim, layout.n_sd), np.nan)
    for i in tqdm(range(nsim), desc="bootstrap", unit="refit", disable=None if progress else True):
        b = fit.b if use_u else layout.scales(fit.sds) * rng.standard_normal(layout.n_u)
        mu = cells.family.mean(base + A.predictors(np.concatenate([fit.fixed, b])))
        simulated = cells.with_stats(cells.family.simulate(cells.stats, mu, rng))
        try:
            refit = stacked_fit(simulated, start=fit)
        except (np.linalg.LinAlgError, FloatingPointError, MisterpInputError):
            continue
        if refit.converged:
            coef[i], sds[i] = refit.point_coef(), refit.sds
    return StackedBootstrapFit(fit, coef, sds, int(np.isnan(sds).any(axis=1).sum() if layout.n_sd else 0), use_u)


@dataclass(frozen=True, repr=False)
class StackedBootstrapFit(Fit):
    """A parametric bootstrap of a :class:`StackedFit`: the original and its refits' stacked coefficients
    (nsim, m (p + q)) and sds (nsim, n_sd); rows of failed refits are NaN."""

    original: StackedFit
    coef: np.ndarray
    sds: np.ndarray
    failed: int
    use_u: bool

    kind = "bootstrap-stacked"
    method = "bootstrap"
    interval = "draws"
    unseen = "zero"  # b = 0 for unseen levels in every refit, as bootMer's predictions

    @property
    def cells(self) -> Cells:
        return self.original.cells

    def point_coef(self) -> np.ndarray:
        return self.original.point_coef()

    def parameter_draws(self, n_draws: int | None, rng: np.random.Generator) -> ParameterDraws:
        ok = ~np.isnan(self.coef).any(axis=1)
        layout = self.original.layout
        sds = self.sds[ok][:n_draws]
        per_predictor = sds.reshape(len(sds), -1, layout.n_terms) if layout.n_terms else np.zeros((len(sds), 1, 0))
        scale = [[per_predictor[:, 0 if layout.shared else j, t, None, None] for t in range(layout.n_terms)]
                 for j in range(layout.m)]
        return ParameterDraws(self.coef[ok][:n_draws], scale)

    def problems(self) -> list[str]:
        failed = [f"{self.failed} of {len(self.coef)} bootstrap refits failed and were left out"] if self.failed else []
        return self.original.problems() + failed

    def summary(self) -> str:
        return self.original.summary() + (f"\nParametric bootstrap (bootMer, use.u = {self.use_u}): "
                                          f"{len(self.coef) - self.failed} refits")

    def saved_state(self) -> tuple[dict, dict]:
        meta, arrays = self.original.saved_state()
        return ({"original": meta, "failed": self.failed, "use_u": self.use_u},
                {**{f"original.{k}": v for k, v in arrays.items()}, "coef": self.coef, "sds": self.sds})

    @classmethod
    def from_saved_state(cls, cells: Cells, meta: dict, arrays: dict) -> "StackedBootstrapFit":
        original = StackedFit.from_saved_state(cells, meta["original"], {
            k[len("original."):]: v for k, v in arrays.items() if k.startswith("original.")})
        return cls(original, arrays["coef"], arrays["sds"], meta["failed"], meta["use_u"])
