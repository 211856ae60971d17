"""The hyperparameters' posterior log π(φ | y), by the Laplace approximation over the latent effects.

The model is the bayes engine's (rstanarm's ``stan_glmer``, :mod:`misterp.engines.bayes`), with its
structured terms. Given φ, everything else is a latent Gaussian field x = (f, b) of dimension d = p + q:

    eta = offset + F f + Z b,     f ~ N(m_f, diag(s_f^2)),   b_k ~ N(0, Q_k(φ)^-1) on A_k b_k = 0 for each term k,

with F = [1, centred X], the priors' locations and scales exactly the bayes engine's
(:func:`misterp.engines.bayes.model_data`), and Q_k, A_k each term's precision and constraints
(:mod:`misterp.engines.terms`: decov blocks for ``(1 + x|g)``, random walks, AR(1), icar and bym2, whose
latent phi has no column in Z). A gaussian's residual sd is aux = sd(y) * a, a ~ exponential(1), φ's last
entry log a; every sd scales with aux, as rstanarm's decov does (binomial and poisson have aux = 1 and
no a).

At each φ, Newton's method finds the mode x̂ of g(x) = log p(y | x) + log p(x | φ) on the constraints'
space, with H = A'WA / disp + Q the negative Hessian (A = [F, Z], W the family's working weights,
disp = aux^2, Q the prior precision, sparse), and

    log π(φ | y) = g(x̂) + 1/2 log det Q - 1/2 log det H + log p(φ) + constant,

both determinants taken on the constraints' space (:class:`.latent.ConstrainedSystem`), exact for a
gaussian outcome. Its gradient is exact too: the envelope theorem for g, and for log det H the
derivative through Q (tr(Σ dQ) needs Σ = H^-1 on Q's pattern alone) and, as x̂ moves
(dx̂ = Σ d(grad g)), through W: the cells' leverages a_i' Σ a_i times dW/deta. Each term's dQ/dφ comes
by the complex step. A family with a dispersion is taken to be an exponential-dispersion family: its
weights and residuals are those at dispersion 1 over disp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...model.cells import Cells
from ..bayes import Priors, model_data
from ..bayes.model import uncentring
from ..linalg import Elimination
from ..terms import latent_terms
from .hyper import hyperparameters
from .latent import ConstrainedSystem, DenseSystem, SparseSystem

# misterp fit's default engine is inla up to this many latent effects, laplace above: on 3,050 counties
# inla's fit and its importance-corrected draws took 13.4 s as a whole process, laplace 1.7 s (2 cores)
DEFAULT_MAX_EFFECTS = 1000
# Above this many group effects H's b block is factorised sparse (deviance.py's threshold)
SPARSE_EFFECTS = 300
STEP = 1e-20  # the complex step
SATURATION = 0.2  # a cell's next-order terms saturate near this (see correction)
LARGE_TERM = 0.015  # a cell's next-order terms past the range where the correction was checked (large_term_share)


@dataclass
class Inner:
    """The latent field's conditional mode at one φ: x (d,), eta (n_cells,), H factorised
    (:mod:`.latent`), and ``laplace`` = the Laplace approximation of log π(φ | y) up to the model's
    constant."""

    phi: np.ndarray
    x: np.ndarray
    eta: np.ndarray
    system: DenseSystem | SparseSystem | ConstrainedSystem
    laplace: float


class HyperPosterior:
    """log π(φ | y) and its gradient for a model on cells.

    Parameters
    ----------
    cells : Cells
        Training cells with at least one grouping term.
    priors : Priors
        The bayes engine's priors.
    """

    def __init__(self, cells: Cells, priors: Priors = Priors()):
        design = cells.design
        data = model_data(cells, priors, likelihood="cells")
        self.cells, self.family, self.stats = cells, cells.family, cells.stats
        self.xbar, self.has_intercept = data["xbar"], bool(data["has_intercept"])
        self.F = np.hstack([np.ones((cells.n_cells, int(self.has_intercept))), data["Xc"]])
        self.m_f = np.concatenate([[data["intercept_loc"]] * int(self.has_intercept), np.zeros(data["Xc"].shape[1])])
        self.s_f = np.concatenate([[data["intercept_scale"]] * int(self.has_intercept),
                                   np.atleast_1d(data["coef_scale"])[:data["Xc"].shape[1]]])
        self.aux_scale = data["aux_scale"]
        self.p = self.F.shape[1]
        self.offset = cells.offset
        self.hyper = hyperparameters(design, data)
        self._effects(design)
        self.constant = float(self.family.log_constant(self.stats).sum())

    def _effects(self, design) -> None:
        """Z on the latent layout (sparse), each cell's entries (cols, vals: (E, n_cells)), Z'WZ's sparse map,
        the prior precision's pattern and the constraints.

        The latent group effects are the terms' (:mod:`misterp.engines.terms`) side by side; a term's
        effects in the linear predictor (``observed``) take the design's Z columns, in order."""
        table = self.cells.table
        terms = self.hyper.terms
        sizes = [t.n_latent for t in terms]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.q = q = int(self.offsets[-1])
        self.d = self.p + q
        # the design's Z column of each observed latent effect
        self.latent_of_column = np.concatenate([off + t.observed for off, t in zip(self.offsets, terms)]
                                               + [np.zeros(0, int)]).astype(int)
        Zd = design.random_matrix(table).tocsr()
        self.Z = sp.csr_matrix((Zd.data, self.latent_of_column[Zd.indices], Zd.indptr), shape=(Zd.shape[0], q))
        self.ZT = self.Z.T.tocsr()
        cols, vals = design.random_entries(table)
        cols = self.latent_of_column[cols] if q else cols
        self.cols, self.vals = cols.T, vals.T
        n, width = self.cells.n_cells, cols.shape[1]
        flat = (cols[:, :, None] * q + cols[:, None, :]).ravel()
        value = (vals[:, :, None] * vals[:, None, :]).ravel()
        cell = np.repeat(np.arange(n), width * width)
        # every pair of a cell's entries and its values' product, as a map (pairs, n): the sum over a cell's
        # pairs of H^-1's entry times the product is its leverage's b part
        self.pair_value = sp.csr_matrix((value, (np.arange(len(flat)), cell)), shape=(len(flat), n))
        self.pairs_flat, self.pairs_cell, self.pairs_product = flat, cell, value
        self.phi_slices = self.hyper.slices
        self.q_rows = np.concatenate([off + t.rows for off, t in zip(self.offsets, terms)] + [np.zeros(0, int)])
        self.q_cols = np.concatenate([off + t.cols for off, t in zip(self.offsets, terms)] + [np.zeros(0, int)])
        rows = [np.pad(t.constraints(), ((0, 0), (self.p + off, self.d - self.p - off - t.n_latent)))
                for off, t in zip(self.offsets, terms)]
        self.constraints = np.vstack(rows + [np.zeros((0, self.d))])
        self.sparse = q > SPARSE_EFFECTS
        if self.sparse:  # C on the pattern of Z'Z and the prior's, factorised with a fill-reducing order
            term = np.repeat(np.arange(len(terms)), sizes)
            pr, pc = self.pairs_flat // q, self.pairs_flat % q
            self.elim = Elimination(q, np.concatenate([pr, self.q_rows]), np.concatenate([pc, self.q_cols]), groups=term)
            positions = self.elim.positions(pr, pc)
            self.c_map = sp.csr_matrix((self.pairs_product, (positions, self.pairs_cell)), shape=(self.elim.nnz, n))
            self.q_positions = self.elim.positions(self.q_rows, self.q_cols)
            self.lev_pairs = (positions, self.pair_value)
        else:
            self.c_map = sp.csr_matrix((self.pairs_product, (self.pairs_flat, self.pairs_cell)), shape=(q * q, n))
            self.lev_pairs = (self.pairs_flat, self.pair_value)

    # -- the hyperparameters (see :class:`.hyper.Hyperparameters`) ------------------
    @property
    def m(self) -> int:
        return self.hyper.m

    def aux(self, phi: np.ndarray):
        return self.hyper.aux(phi)

    def factors(self, phi: np.ndarray) -> list[np.ndarray]:
        return self.hyper.factors(phi)

    def start(self) -> np.ndarray:
        return self.hyper.start()

    def log_prior(self, phi: np.ndarray):
        return self.hyper.log_prior(phi)

    def q_values(self, phi: np.ndarray) -> np.ndarray:
        """The prior precision's b-block entries at (q_rows, q_cols) (complex when φ is)."""
        aux = self.aux(phi)
        return np.concatenate([t.q_values(phi[sl], aux) for t, sl in zip(self.hyper.terms, self.phi_slices)]
                              + [np.zeros(0)])

    def log_det_q(self, phi: np.ndarray):
        """log det of the b block's prior precision on the constraints' space, up to a constant."""
        aux = self.aux(phi)
        return sum(t.log_det(phi[sl], aux) for t, sl in zip(self.hyper.terms, self.phi_slices))

    # -- the latent field at one φ ---------------------------------------------------
    def _q_times(self, q_values: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Q_b b, (q,) or (q, n)."""
        return sp.csr_matrix((q_values, (self.q_rows, self.q_cols)), shape=(self.q, self.q)) @ b

    def eta(self, x: np.ndarray) -> np.ndarray:
        """offset + F f + Z b, (n_cells,) for x (d,)."""
        return self.offset + self.F @ x[:self.p] + self.Z @ x[self.p:]

    def _factor(self, w: np.ndarray, q_values: np.ndarray, disp: float) -> DenseSystem | SparseSystem:
        """H = A'WA / disp + Q factorised: dense, or with its b block sparse."""
        wf = w[:, None] * self.F
        p = self.p
        A = self.F.T @ wf / disp
        A[np.diag_indices(p)] += self.s_f ** -2.0
        B = np.asarray(self.ZT @ wf) / disp
        c = np.asarray(self.c_map @ w) / disp
        if self.sparse:
            np.add.at(c, self.q_positions, q_values)
            return self.constrained(SparseSystem(A, B, self.elim, c))
        H = np.empty((self.d, self.d))
        H[:p, :p], H[p:, :p], H[:p, p:] = A, B, B.T
        H[p:, p:] = c.reshape(self.q, self.q)
        np.add.at(H, (p + self.q_rows, p + self.q_cols), q_values)  # a term's pattern may name an entry twice
        return self.constrained(DenseSystem(np.linalg.cholesky(H), p))

    def constrained(self, system: DenseSystem | SparseSystem):
        """``system`` restricted to the terms' constraints (itself when there are none)."""
        return ConstrainedSystem(system, self.constraints) if len(self.constraints) else system

    def _g(self, x: np.ndarray, eta: np.ndarray, q_values: np.ndarray, disp: float) -> float:
        """log p(y | x) + the prior's exponent, -1/2 (x - m)' Q (x - m)."""
        dev = x[:self.p] - self.m_f
        b = x[self.p:]
        loglik = float(self.family.loglik(self.stats, eta, constant=False, dispersion=disp).sum())
        return loglik + self.constant - 0.5 * float(dev @ (dev / self.s_f ** 2)) - 0.5 * float(b @ self._q_times(q_values, b))

    def inner(self, phi: np.ndarray, x0: np.ndarray | None = None, tol: float = 1e-14, max_iter: int = 60) -> Inner:
        """The conditional mode of x at φ: Newton steps from ``x0`` (the prior's mean by default),
        halved while g falls, until the Newton decrement is below ``tol`` |g|."""
        phi = np.asarray(phi, float)
        q_values, disp = self.q_values(phi), float(self.aux(phi)) ** 2
        x = np.concatenate([self.m_f, np.zeros(self.q)]) if x0 is None else np.array(x0, float)
        eta = self.eta(x)
        g = self._g(x, eta, q_values, disp)
        for _ in range(max_iter):
            _, w, r, _ = self.family.working(self.stats, eta)
            prior = np.concatenate([(x[:self.p] - self.m_f) / self.s_f ** 2, self._q_times(q_values, x[self.p:])])
            grad = np.concatenate([self.F.T @ r, self.ZT @ r]) / disp - prior
            system = self._factor(w, q_values, disp)
            step = system.solve(grad)  # on the constraints' space: x stays on it
            if grad @ step < tol * max(abs(g), 1.0):
                log_pi = g + 0.5 * float(self.log_det_q(phi)) - 0.5 * system.logdet + self.log_prior(phi)
                return Inner(phi, x, eta, system, float(log_pi))
            t = 1.0
            for _ in range(30):
                x_new = x + t * step
                eta_new = self.eta(x_new)
                g_new = self._g(x_new, eta_new, q_values, disp)
                if g_new >= g - 1e-12 * abs(g):
                    break
                t *= 0.5
            x, eta, g = x_new, eta_new, g_new
        raise FloatingPointError(f"the latent effects' mode did not converge at the hyperparameters {phi}")

    def log_joint(self, phi: np.ndarray, X: np.ndarray) -> np.ndarray:
        """log p(y | x) + log p(x | φ) for a batch of latent vectors X (d, n), up to a constant, (n,):
        what importance weights against the Gaussian approximation need."""
        phi = np.asarray(phi, float)
        q_values, disp = self.q_values(phi), float(self.aux(phi)) ** 2
        p = self.p
        eta = self.offset[:, None] + self.F @ X[:p] + np.asarray(self.Z @ X[p:])
        stats = {k: v[:, None] for k, v in self.stats.items()}
        out = self.family.loglik(stats, eta, constant=False, dispersion=disp).sum(axis=0)
        out -= 0.5 * (((X[:p] - self.m_f[:, None]) / self.s_f[:, None]) ** 2).sum(axis=0)
        return out - 0.5 * np.einsum("in,in->n", X[p:], np.asarray(self._q_times(q_values, X[p:])))

    # -- the gradient ---------------------------------------------------------------
    def _shifted(self, phi: np.ndarray, j: int) -> np.ndarray:
        shifted = phi.astype(complex)
        shifted[j] += 1j * STEP
        return shifted

    def gradient(self, state: Inner) -> np.ndarray:
        """Exact d log π(φ | y) / dφ at ``state`` (a converged :meth:`inner`), (m,).

        Each hyperparameter moves the prior precision Q_b (dQ by the complex step): g's explicit
        -1/2 b' dQ b, 1/2 d log det Q, and -1/2 tr(Σ dQ), Σ = H^-1 on the constraints' space, which needs
        Σ on Q's pattern alone. A gaussian's log a also scales the likelihood's part of H, A'WA / disp =
        H - Q: -1/2 tr(Σ dH) takes (d - k) - tr(Σ Q) from it. Then the move of x̂ through W."""
        phi, x, system, p = state.phi, state.x, state.system, self.p
        q_values, disp = self.q_values(phi), float(self.aux(phi)) ** 2
        _, w, _, dw = self.family.working(self.stats, state.eta)
        b = x[p:]
        grad = np.zeros(self.m)
        c = np.zeros((self.d, self.m))  # d(grad g)/dφ, one column per hyperparameter
        inverse = system.inverse_entries(self.q_rows, self.q_cols)
        for j in range(self.m):
            shifted = self._shifted(phi, j)
            dv = self.q_values(shifted).imag / STEP
            d_log_det = float(np.imag(self.log_det_q(shifted))) / STEP
            grad[j] = -0.5 * dv @ (b[self.q_rows] * b[self.q_cols]) + 0.5 * d_log_det - 0.5 * dv @ inverse
            c[p:, j] = -np.bincount(self.q_rows, dv * b[self.q_cols], minlength=self.q)
        if self.aux_scale is not None:
            fixed_trace = float(np.sum(np.diag(system.fixed_inverse()) / self.s_f ** 2))
            grad[-1] += (self._likelihood_dispersion_derivative(state, disp) + self.d - len(self.constraints)
                         - fixed_trace - q_values @ inverse)
            c[:p, -1] = -2.0 * (x[:p] - self.m_f) / self.s_f ** 2
            c[p:, -1] -= 2.0 * self._q_times(q_values, b)
        dx = system.solve(c)                                            # (d, m)
        a_dx = self.F @ dx[:p] + (self.vals[:, :, None] * dx[p:][self.cols]).sum(axis=0)   # (n_cells, m)
        grad -= 0.5 * (self._leverage(system) * dw / disp) @ a_dx
        return grad + self._log_prior_gradient(phi)

    def _log_prior_gradient(self, phi: np.ndarray) -> np.ndarray:
        return np.array([np.imag(self.log_prior(self._shifted(phi, j))) / STEP for j in range(self.m)])

    def correction(self, state: Inner) -> float:
        """The Laplace approximation's next-order term (Shun and McCullagh 1995), ε in
        log p(y | φ) ≈ Laplace + ε, with S = H^-1 and each cell's log-likelihood derivatives l3, l4:

            ε = 1/8 Σ_c l4_c lev_c² + 1/8 v' S v + 1/12 Σ_c l3_c² lev_c³,   v = A'(l3 ∘ lev),

        lev_c = a_c' S a_c. The general last term is 1/12 Σ over pairs of cells of l3 l3' (a_c' S a_c')³;
        its diagonal, kept here, carried nearly all of it where it matters (binary data, one to five
        answers per group: the group sd's posterior mean 0.744 with every pair, 0.743 with the
        diagonal, 0.625 with none, the bayes engine 0.735), and costs n_cells, not n_cells², operations.
        The Laplace step alone under-states the group sds when groups hold few binary answers, as
        lme4's does; this term restores most of it.

        The series holds while each cell's own terms, x_c = l4_c lev_c² / 8 + l3_c² lev_c³ / 12 (its
        standardised cumulants), are small. Where one cell alone decides its effect (one binary answer
        in a group whose sd grows large) they grow without bound, as σ², and so would ε; each cell's
        derivatives are therefore scaled by tanh(|x_c| / c) / (|x_c| / c), c = SATURATION: 1 for the
        small terms of the expansion's own range, and a cell's terms never past about c."""
        system = state.system
        l3, l4 = self.family.higher_derivatives(self.stats, state.eta)
        if not np.any(l3) and not np.any(l4):
            return 0.0
        disp = float(self.aux(state.phi)) ** 2
        lev = self._leverage(system)
        l3, l4 = l3 / disp, l4 / disp
        own = self._own_terms(l3, l4, lev)
        scale = np.where(own > 1e-8, np.tanh(own) / np.maximum(own, 1e-8), 1.0)
        l3, l4 = scale * l3, scale * l4
        u = l3 * lev
        v = np.concatenate([self.F.T @ u, self.ZT @ u])
        return float(np.sum(l4 * lev ** 2) / 8 + v @ system.solve(v) / 8 + np.sum(l3 ** 2 * lev ** 3) / 12)

    @staticmethod
    def _own_terms(l3: np.ndarray, l4: np.ndarray, lev: np.ndarray) -> np.ndarray:
        """Each cell's next-order terms |x_c| over SATURATION, (n_cells,)."""
        return np.abs(l4 * lev ** 2 / 8 + l3 ** 2 * lev ** 3 / 12) / SATURATION

    def large_term_share(self, state: Inner) -> float:
        """The share of respondents in cells whose own next-order terms |x_c| exceed LARGE_TERM at
        ``state``: where the Laplace approximation, and the series that corrects it, are both at their
        limit. Groups of one or two binary answers with a large group sd put most respondents there
        (300 such groups: a median |x_c| of 0.021, where the bayes engine's sd(g) was 0.94 and this
        engine's 1.44); the coverage study's sparse groups of 1-5 answers had a median of 0.004 and
        0.009 at the 99th percentile."""
        l3, l4 = self.family.higher_derivatives(self.stats, state.eta)
        if not np.any(l3) and not np.any(l4):
            return 0.0
        disp = float(self.aux(state.phi)) ** 2
        own = self._own_terms(l3 / disp, l4 / disp, self._leverage(state.system)) * SATURATION
        n = self.family.count(self.stats)
        return float(n[own > LARGE_TERM].sum() / n.sum())

    def _likelihood_dispersion_derivative(self, state: Inner, disp: float) -> float:
        """d log p(y | x̂) / d log a at fixed eta, by a central difference in the dispersion (a function
        evaluation, not a solve)."""
        h = 1e-5

        def loglik(log_aux):
            return float(self.family.loglik(self.stats, state.eta, constant=False, dispersion=np.exp(2 * log_aux)).sum())

        log_aux = 0.5 * np.log(disp)
        return (loglik(log_aux + h) - loglik(log_aux - h)) / (2 * h)

    def _leverage(self, system) -> np.ndarray:
        """Each cell's a_c' H^-1 a_c, (n_cells,), without forming A (:mod:`.latent`)."""
        return system.leverage(self.F, self.cols, self.vals, self.lev_pairs)


def reporting_matrix(fixed_names: list[str], xbar: np.ndarray, latent_of_column: np.ndarray, q: int) -> np.ndarray:
    """R (p + q, p + n_columns) such that x R lays out latent x = (alpha, beta, b) (b: q latent group effects)
    as a Fit's coefficients: the fixed effects as the bayes engine reports them
    (:func:`misterp.engines.bayes.model.uncentring`), then each design column's latent effect
    (``latent_of_column``, (n_columns,))."""
    p = len(fixed_names)
    R = np.zeros((p + q, p + len(latent_of_column)))
    R[:p, :p] = uncentring(fixed_names, xbar)
    R[p + np.asarray(latent_of_column, int), p + np.arange(len(latent_of_column))] = 1.0
    return R


def latent_size(cells: Cells) -> int:
    """The number of latent effects, fixed and random, that the inla engine integrates out."""
    sd_scale = 1.0  # the sizes do not depend on it
    return sum(t.n_latent for t in latent_terms(cells.design, sd_scale)) + cells.X.shape[1]
