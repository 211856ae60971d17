"""Random-effect terms as latent Gaussian blocks: each a precision Q(φ) on a fixed pattern, its
constraints, and its hyperparameters' prior, shared by the laplace, inla and bayes engines.

Every term maps its hyperparameters φ (unconstrained, as Stan's) and the residual sd ``aux`` (1 without
a dispersion) to the precision of its latent effects, and says which of those effects enter the linear
predictor (``observed``: all but bym2's spatial field). The sds all scale as rstanarm's decov does:
sd = sd_scale · e^φ_0 · aux with e^φ_0 ~ exponential(1) (gamma(1, 1): rstanarm's decov for one effect).

- :class:`DecovTerm`: ``(1|g)``, ``(1 + x|g)``: each level's K effects N(0, T T'), T from rstanarm's
  decov coordinates;
- :class:`StructuredTerm`: what the structured terms below share (their sd, rho and reports);
- :class:`IntrinsicTerm`: ``rw1``, ``rw2``, ``icar``: Q = R / sd² on the structure matrix R
  (:mod:`misterp.model.terms`), improper along R's null space, which the constraints remove;
- :class:`Ar1Term`: the stationary AR(1) with marginal sd, φ = (log sd, atanh rho), rho ~ uniform(-1, 1);
- :class:`Bym2Term`: latent (b, phi) with b | phi ~ N(sd sqrt(rho / s) phi, sd² (1 - rho)) and phi the icar
  field, φ = (log sd, logit rho), rho ~ beta(1/2, 1/2) (INLA's augmented form: Q stays sparse).

Everything accepts complex φ, so that derivatives come by the complex step; ``reported`` and
``factor`` also take leading batch axes.

Example
-------
>>> from misterp.model.terms import Structure
>>> term = IntrinsicTerm(Structure("rw1", ("a", "b", "c")), sd_scale=1.0)
>>> Q = term.precision(np.array([0.0]), 1.0).toarray()
>>> np.round(Q, 3).tolist()[0], term.constraints().tolist()
([1.0, -1.0, 0.0], [[1.0, 1.0, 1.0]])
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

# An intrinsic precision is made proper by EPS on its diagonal: its null space is then removed exactly by
# the constraints, and what EPS adds inside the constrained space is below 1e-5 of R's smallest eigenvalue
# on every structure here (a random walk's, a county graph's)
EPS = 1e-7


class LatentTerm:
    """What every term offers (see the module's docstring).

    Attributes
    ----------
    n_phi : int
        Hyperparameters.
    n_latent : int
        Latent effects.
    observed : (J K,) int array
        The latent position of each of the term's effects in the linear predictor (its Z columns).
    rows, cols : (nnz,) int arrays
        The precision's pattern, both triangles.
    K : int
        Effects per level (1 but for decov terms with slopes).
    """

    n_phi: int
    n_latent: int
    observed: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    K: int = 1

    def q_values(self, phi: np.ndarray, aux) -> np.ndarray:
        """Q's entries at (rows, cols), (nnz,)."""
        raise NotImplementedError

    def log_det(self, phi: np.ndarray, aux):
        """log det of Q restricted to the constraints' null space, up to a constant."""
        raise NotImplementedError

    def constraints(self) -> np.ndarray:
        """Rows c with c'x = 0 for the term's latent x, (n_constraints, n_latent)."""
        return np.zeros((0, self.n_latent))

    def log_prior(self, phi: np.ndarray):
        raise NotImplementedError

    def start(self) -> np.ndarray:
        raise NotImplementedError

    def factor(self, phi: np.ndarray, aux) -> np.ndarray:
        """The factor T (..., K, K) of a new level's effects' covariance (its sd for a structured term:
        a level outside the structure is an island)."""
        raise NotImplementedError

    def reported(self, phi: np.ndarray, aux) -> np.ndarray:
        """The sds (and correlations, or rho) at φ (..., n_phi), (..., n_reported)."""
        raise NotImplementedError

    def labels(self, name: str, effects: list[str]) -> list[str]:
        raise NotImplementedError

    def precision(self, phi: np.ndarray, aux) -> sp.csr_matrix:
        """Q as a sparse matrix (n_latent, n_latent)."""
        return sp.csr_matrix((self.q_values(phi, aux), (self.rows, self.cols)), shape=(self.n_latent,) * 2)


def _sd(sd_scale: float, phi: np.ndarray, aux):
    return sd_scale * np.exp(phi[..., 0]) * aux


def _sd_prior(phi: np.ndarray):
    """exponential(1) on e^φ_0, with the log map's Jacobian."""
    return phi[..., 0] - np.exp(phi[..., 0])


class DecovTerm(LatentTerm):
    """A grouping term's factor T(φ) and log prior under rstanarm's decov prior, for ``n_effects`` effects
    and ``n_levels`` levels.

    A term with K effects has the factor T = diag(sqrt(K π)) · s · C of its effects' covariance T T'
    (as the bayes engine samples it, :mod:`misterp.engines.bayes.model`): s = sd_scale · tau · aux with
    tau ~ gamma(1, 1), π ~ Dirichlet(1) a simplex that splits the trace, and C the Cholesky factor of an
    LKJ(1) correlation matrix, on unconstrained coordinates, as Stan's:

        φ = (log tau,  y_1..y_(K-1),  w_1..w_(K(K-1)/2)),

    π from y by Stan's stick-breaking (z_k = logistic(y_k - log(K - k)), π_k = (1 - Σ_(j<k) π_j) z_k),
    C from w by Stan's canonical partial correlations (tanh, row by row), and the log prior includes
    each map's log Jacobian. A random intercept (K = 1) has φ = (log tau) alone and T = s.

    >>> term = DecovTerm(n_effects=2, sd_scale=1.0)
    >>> term.n_phi, np.round(term.factor(np.zeros(3), 1.0), 3).tolist()
    (3, [[1.0, 0.0], [0.0, 1.0]])
    """

    def __init__(self, n_effects: int, sd_scale: float, n_levels: int = 1):
        self.K, self.sd_scale, self.J = int(n_effects), float(sd_scale), int(n_levels)
        self.n_corr = self.K * (self.K - 1) // 2
        self.n_phi = 1 if self.K == 1 else self.K + self.n_corr
        self.n_latent = self.J * self.K
        self.observed = np.arange(self.n_latent)
        base = (np.arange(self.J) * self.K)[:, None, None]
        r, c = np.meshgrid(np.arange(self.K), np.arange(self.K), indexing="ij")
        self.rows, self.cols = (base + r).ravel(), (base + c).ravel()  # each level's K x K block

    def q_values(self, phi: np.ndarray, aux) -> np.ndarray:
        T = self.factor(phi, aux)
        return np.tile(np.linalg.inv(T @ T.T).ravel(), self.J)

    def log_det(self, phi: np.ndarray, aux):
        """J log det (T T')^-1 = -2 J Σ log T_kk: T is lower triangular."""
        return -2.0 * self.J * np.sum(np.log(np.diagonal(self.factor(phi, aux))))

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

    def reported(self, phi: np.ndarray, aux) -> np.ndarray:
        """The sds (K) then the correlations (K(K-1)/2, :meth:`correlation_pairs`) of T T',
        (..., K + K(K-1)/2)."""
        T = self.factor(phi, aux)
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


class StructuredTerm(LatentTerm):
    """What the structured terms share: φ_0 = log(sd / sd_scale / aux) with e^φ_0 ~ exponential(1), and for
    a term with rho (``n_phi`` = 2) φ_1 = rho on an unconstrained scale (:meth:`rho`, its prior
    :meth:`rho_log_prior` with the map's Jacobian). A level outside the structure is an island: its factor
    is the sd."""

    n_phi = 1

    def __init__(self, structure, sd_scale: float):
        self.structure, self.sd_scale = structure, float(sd_scale)

    def rho(self, phi):
        raise NotImplementedError

    def rho_log_prior(self, phi):
        raise NotImplementedError

    def log_prior(self, phi):
        return _sd_prior(phi) + (self.rho_log_prior(phi) if self.n_phi == 2 else 0.0)

    def start(self):
        return np.concatenate([[np.log(0.5 / self.sd_scale)], np.zeros(self.n_phi - 1)])

    def factor(self, phi, aux):
        return _sd(self.sd_scale, np.asarray(phi), aux)[..., None, None]

    def reported(self, phi, aux):
        phi = np.asarray(phi)
        sd = _sd(self.sd_scale, phi, aux) * np.ones(phi.shape[:-1])
        return np.stack([sd] + ([self.rho(phi)] if self.n_phi == 2 else []), axis=-1)

    def labels(self, name, effects):
        return [f"sd for {name}"] + ([f"rho for {name}"] if self.n_phi == 2 else [])


class IntrinsicTerm(StructuredTerm):
    """rw1, rw2 or icar: Q = (R + EPS I) / sd², with R the structure's matrix and its null space constrained
    away."""

    def __init__(self, structure, sd_scale: float):
        super().__init__(structure, sd_scale)
        R = sp.coo_matrix(structure.matrix() + EPS * sp.eye(structure.n_levels))
        self.rows, self.cols, self._r = R.row, R.col, R.data
        self.n_latent = structure.n_levels
        self.observed = np.arange(self.n_latent)
        self._constraints = structure.constraints()
        self.rank = self.n_latent - len(self._constraints)

    def q_values(self, phi, aux):
        return self._r / _sd(self.sd_scale, phi, aux) ** 2

    def log_det(self, phi, aux):
        return -2.0 * self.rank * np.log(_sd(self.sd_scale, phi, aux))

    def constraints(self):
        return self._constraints


class Ar1Term(StructuredTerm):
    """The stationary AR(1) with marginal sd: u_1 ~ N(0, sd²), u_k = rho u_(k-1) + N(0, sd² (1 - rho²));
    Q = tridiag(-rho; 1, 1 + rho², ..., 1; -rho) / (sd² (1 - rho²)). φ_1 = atanh rho, rho ~ uniform(-1, 1)."""

    n_phi = 2

    def __init__(self, structure, sd_scale: float):
        super().__init__(structure, sd_scale)
        J = self.n_latent = structure.n_levels
        self.observed = np.arange(J)
        k = np.arange(J - 1)
        self.rows = np.concatenate([np.arange(J), k, k + 1])
        self.cols = np.concatenate([np.arange(J), k + 1, k])
        self._inner = np.zeros(J)
        self._inner[1:-1] = 1.0  # levels whose diagonal has 1 + rho²

    def rho(self, phi):
        return np.tanh(phi[..., 1])

    def rho_log_prior(self, phi):
        return np.log(1.0 - self.rho(phi) ** 2) - math.log(2.0)

    def q_values(self, phi, aux):
        sd, rho = _sd(self.sd_scale, phi, aux), self.rho(phi)
        scale = 1.0 / (sd ** 2 * (1.0 - rho ** 2))
        off = np.full(self.n_latent - 1, -rho * scale)
        return np.concatenate([(1.0 + self._inner * rho ** 2) * scale, off, off])

    def log_det(self, phi, aux):
        sd, rho = _sd(self.sd_scale, phi, aux), self.rho(phi)
        return -2.0 * self.n_latent * np.log(sd) - (self.n_latent - 1) * np.log(1.0 - rho ** 2)


class Bym2Term(StructuredTerm):
    """BYM2 in INLA's augmented form: latent (b, phi), 2J effects, b in the linear predictor.

    b_i | phi ~ N(sd sqrt(rho / s_i) phi_i, sd² (1 - rho)) and phi ~ icar (sum zero on each component),
    so the joint precision is sparse:

        Q_bb = I / (sd² v),  Q_b,phi = -sqrt(rho / s) / (sd v),  Q_phi,phi = R + rho / (s v) + EPS,

    v = 1 - rho; an island has v = 1 and no phi (b_i = sd theta_i). φ_1 = logit rho, rho ~ beta(1/2, 1/2)."""

    n_phi = 2

    def __init__(self, structure, sd_scale: float):
        super().__init__(structure, sd_scale)
        J = structure.n_levels
        self.n_latent = 2 * J
        self.observed = np.arange(J)
        R = sp.coo_matrix(structure.matrix() + EPS * sp.eye(J))
        self._connected = np.ones(J)
        self._connected[structure.islands] = 0.0
        self._s = structure.scale_factors
        i = np.arange(J)
        self.rows = np.concatenate([i, i, J + i, J + R.row, J + i])
        self.cols = np.concatenate([i, J + i, i, J + R.col, J + i])
        self._r = R.data
        constraints = structure.constraints()
        self._constraints = np.hstack([np.zeros_like(constraints), constraints])

    def rho(self, phi):
        return 1.0 / (1.0 + np.exp(-phi[..., 1]))

    def rho_log_prior(self, phi):
        rho = self.rho(phi)
        return 0.5 * np.log(rho) + 0.5 * np.log(1.0 - rho) - math.log(math.pi)

    def _v(self, rho):
        return 1.0 - rho * self._connected

    def q_values(self, phi, aux):
        sd, rho = _sd(self.sd_scale, phi, aux), self.rho(phi)
        v = self._v(rho)
        cross = -np.sqrt(rho / self._s) * self._connected / (sd * v)
        return np.concatenate([1.0 / (sd ** 2 * v), cross, cross, self._r, rho * self._connected / (self._s * v)])

    def log_det(self, phi, aux):
        sd, rho = _sd(self.sd_scale, phi, aux), self.rho(phi)
        return -np.sum(np.log(sd ** 2 * self._v(rho)))

    def constraints(self):
        return self._constraints


STRUCTURED = {"rw1": IntrinsicTerm, "rw2": IntrinsicTerm, "icar": IntrinsicTerm, "ar1": Ar1Term, "bym2": Bym2Term}


def latent_terms(design, sd_scale: float) -> list[LatentTerm]:
    """Each grouping term of ``design`` as a :class:`LatentTerm`, in the design's order."""
    out = []
    for k, (K, J) in enumerate(zip(design.n_effects, design.n_levels)):
        structure = design.structure(k)
        out.append(DecovTerm(int(K), sd_scale, int(J)) if structure is None
                   else STRUCTURED[structure.kind](structure, sd_scale))
    return out
