"""R-compatible random streams, to reproduce published R results exactly.

Implements R's default generators (R >= 3.6): Mersenne-Twister seeded the way
``set.seed`` seeds it, ``unif_rand`` with its (0, 1) fix-up, ``sample`` with
"Rejection" sampling and with probabilities (R's heapsort ``revsort`` for up to
200 likely categories, Walker's alias method above that), and ``rbinom``
(inversion for n*p < 30, BTPE otherwise, as in R 4.2).

Only the article's simulation needs these; everything else in misterp uses
numpy Generators.

Example
-------
>>> rng = RRandom(10)
>>> rng.sample([1, 2, 3, 4, 5], 3, replace=True, prob=[4, 4, 4, 4, 7]).tolist()
[4, 3, 3]
"""

from __future__ import annotations

import math

import numpy as np

_MT_N = 624
_TWO_POW_MINUS_32 = 2.3283064365386963e-10
_I2_32M1 = 2.328306437080797e-10  # 1 / (2^32 - 1): R's fix-up for 0 and 1
_WALKER_THRESHOLD = 200


class RRandom:
    """One R random stream: ``set.seed(seed)`` followed by R's draws.

    Parameters
    ----------
    seed : int
        The value given to R's ``set.seed``.
    """

    def __init__(self, seed: int):
        self.set_seed(seed)

    # -- the generator -------------------------------------------------------
    def set_seed(self, seed: int) -> None:
        """Seed Mersenne-Twister as ``set.seed(seed)`` does (RNG_Init)."""
        s = int(seed) & 0xFFFFFFFF
        for _ in range(50):  # R's initial scrambling
            s = (69069 * s + 1) & 0xFFFFFFFF
        key = np.empty(_MT_N + 1, dtype=np.uint32)
        for j in range(_MT_N + 1):
            s = (69069 * s + 1) & 0xFFFFFFFF
            key[j] = s
        # key[0] is R's position slot; FixupSeeds sets it to 624 so the first
        # draw regenerates the whole state from key[1:].
        bitgen = np.random.MT19937()
        bitgen.state = {
            "bit_generator": "MT19937",
            "state": {"key": key[1:].copy(), "pos": _MT_N},
        }
        self._bitgen = bitgen

    def _raw(self, size: int) -> np.ndarray:
        """Next ``size`` tempered 32-bit outputs of the twister."""
        return self._bitgen.random_raw(size).astype(np.uint64)

    def unif_rand(self, size: int = 1) -> np.ndarray:
        """``size`` draws of R's ``unif_rand()``, in (0, 1), shape (size,)."""
        u = self._raw(size).astype(np.float64) * _TWO_POW_MINUS_32
        u[u <= 0.0] = 0.5 * _I2_32M1
        u[1.0 - u <= 0.0] = 1.0 - 0.5 * _I2_32M1
        return u

    def _unif1(self) -> float:
        return float(self.unif_rand(1)[0])

    # -- distributions -------------------------------------------------------
    def runif(self, n: int, min: float = 0.0, max: float = 1.0) -> np.ndarray:
        """R's ``runif(n, min, max)``, shape (n,)."""
        u = self.unif_rand(n)
        return min + (max - min) * u

    def unif_index(self, dn: int) -> int:
        """R's ``R_unif_index``: uniform on 0..dn-1 by rejection on random bits."""
        if dn <= 0:
            return 0
        bits = int(math.ceil(math.log2(dn)))
        while True:
            v = 0
            for _ in range(0, bits + 1, 16):
                v = 65536 * v + int(math.floor(self._unif1() * 65536))
            v &= (1 << bits) - 1
            if v < dn:
                return v

    def sample(self, x, size: int | None = None, replace: bool = False, prob=None) -> np.ndarray:
        """R's ``sample(x, size, replace, prob)``.

        ``x`` is a sequence (as R's ``sample(x, ...)`` with ``length(x) > 1``)
        or a positive integer n (as ``sample(n, ...)``, meaning 1..n).
        Returns the sampled elements, shape (size,).
        """
        if np.ndim(x) == 0:
            n = int(x)
            population = np.arange(1, n + 1)
        else:
            population = np.asarray(x)
            n = len(population)
        size = n if size is None else int(size)
        if prob is not None:
            index = self._sample_prob(n, size, replace, prob)
        elif replace or size < 2:
            index = np.array([self.unif_index(n) for _ in range(size)], dtype=np.int64)
        elif n > 10_000_000 and size <= n / 2:
            index = self._sample_hashed(n, size)
        else:
            pool = np.arange(n)
            index = np.empty(size, dtype=np.int64)
            remaining = n
            for i in range(size):
                j = self.unif_index(remaining)
                index[i] = pool[j]
                remaining -= 1
                pool[j] = pool[remaining]
        return population[index]

    def _sample_hashed(self, n: int, size: int) -> np.ndarray:
        """``sample.int``'s hashed path for n > 1e7: redraw duplicates."""
        seen: set[int] = set()
        out = np.empty(size, dtype=np.int64)
        for i in range(size):
            j = self.unif_index(n)
            while j in seen:
                j = self.unif_index(n)
            seen.add(j)
            out[i] = j
        return out

    def _sample_prob(self, n: int, size: int, replace: bool, prob) -> np.ndarray:
        p = np.asarray(prob, dtype=np.float64).copy()
        if p.shape != (n,):
            raise ValueError("incorrect number of probabilities")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError("probabilities must be finite and non-negative")
        if not np.any(p > 0):
            raise ValueError("too few positive probabilities")
        p = p / p[p > 0].sum()
        if not replace:
            return self._prob_sample_no_replace(p, size)
        if np.count_nonzero(n * p > 0.1) > _WALKER_THRESHOLD:
            return self._walker_sample(p, size)
        perm = np.arange(n)
        revsort(p, perm)
        cum = p.copy()
        for i in range(1, n):  # sequential sums, in R's order
            cum[i] += cum[i - 1]
        u = self.unif_rand(size)
        # first j (< n-1) with u <= cum[j]; otherwise the last category
        j = np.searchsorted(cum[: n - 1], u, side="left")
        return perm[j]

    def _prob_sample_no_replace(self, p: np.ndarray, size: int) -> np.ndarray:
        n = len(p)
        if size > np.count_nonzero(p > 0):
            raise ValueError("too few positive probabilities")
        perm = np.arange(n)
        revsort(p, perm)
        p, perm = list(p), list(perm)
        out = np.empty(size, dtype=np.int64)
        total = 1.0
        for i in range(size):
            rt = total * self._unif1()
            mass = 0.0
            j = 0
            for j in range(len(p) - 1):
                mass += p[j]
                if rt <= mass:
                    break
            else:
                j = len(p) - 1
            out[i] = perm[j]
            total -= p[j]
            del p[j], perm[j]
        return out

    def _walker_sample(self, p: np.ndarray, size: int) -> np.ndarray:
        """Walker's alias method, as R builds and walks its tables."""
        n = len(p)
        q = p * n
        alias = np.zeros(n, dtype=np.int64)
        small = [i for i in range(n) if q[i] < 1.0]
        large = [i for i in range(n) if not q[i] < 1.0]
        # R keeps one array: the small labels in order, then the large ones in
        # reverse order of discovery; the "L" pointer walks it from the first
        # large label.
        hl = small + large[::-1]
        low = len(small)
        if small and large:
            for k in range(n - 1):
                i = hl[k]
                j = hl[low]
                alias[i] = j
                q[j] += q[i] - 1.0
                if q[j] < 1.0:
                    low += 1
                if low >= n:
                    break
        q = q + np.arange(n)
        out = np.empty(size, dtype=np.int64)
        for i in range(size):
            # R >= 3.6 ("Rejection"): the column by R_unif_index, then a uniform within it
            k = self.unif_index(n)
            out[i] = k if k + self._unif1() < q[k] else alias[k]
        return out

    def rbinom(self, n: int, size, prob) -> np.ndarray:
        """R's ``rbinom(n, size, prob)``, recycling ``size`` and ``prob``; shape (n,)."""
        sizes = np.broadcast_to(np.asarray(size, dtype=np.float64), (n,)) if np.ndim(size) == 0 else np.asarray(size, dtype=np.float64)
        probs = np.broadcast_to(np.asarray(prob, dtype=np.float64), (n,)) if np.ndim(prob) == 0 else np.asarray(prob, dtype=np.float64)
        out = np.empty(n, dtype=np.float64)
        for i in range(n):
            out[i] = self._rbinom1(sizes[i % len(sizes)], probs[i % len(probs)])
        return out

    def _rbinom1(self, nin: float, pp: float) -> float:
        if not math.isfinite(nin) or not math.isfinite(pp):
            return math.nan
        r = math.floor(nin + 0.5)
        if r != nin or r < 0 or pp < 0.0 or pp > 1.0:
            return math.nan
        if r == 0 or pp == 0.0:
            return 0.0
        if pp == 1.0:
            return r
        n = int(r)
        p = min(pp, 1.0 - pp)
        q = 1.0 - p
        np_ = n * p
        rr = p / q
        g = rr * (n + 1)
        if np_ < 30.0:
            ix = self._rbinom_inversion(_pow_di(q, n), g, rr)
        else:
            ix = self._rbinom_btpe(n, p, q, np_, rr, g)
        return float(n - ix if pp > 0.5 else ix)

    def _rbinom_inversion(self, qn: float, g: float, r: float) -> int:
        while True:
            ix = 0
            f = qn
            u = self._unif1()
            while True:
                if u < f:
                    return ix
                if ix > 110:
                    break
                u -= f
                ix += 1
                f *= g / ix - r

    def _rbinom_btpe(self, n, p, q, np_, r, g) -> int:
        """Kachitvichyanukul & Schmeiser's BTPE, with R 4.2's constants."""
        ffm = np_ + p
        m = int(ffm)
        fm = float(m)
        npq = np_ * q
        p1 = int(2.195 * math.sqrt(npq) - 4.6 * q) + 0.5
        xm = fm + 0.5
        xl = xm - p1
        xr = xm + p1
        c = 0.134 + 20.5 / (15.3 + fm)
        al = (ffm - xl) / (ffm - xl * p)
        xll = al * (1.0 + 0.5 * al)
        al = (xr - ffm) / (xr * q)
        xlr = al * (1.0 + 0.5 * al)
        p2 = p1 * (1.0 + c + c)
        p3 = p2 + c / xll
        p4 = p3 + c / xlr
        while True:
            u = self._unif1() * p4
            v = self._unif1()
            if u <= p1:
                return int(xm - p1 * v + u)
            if u <= p2:
                x = xl + (u - p1) / c
                v = v * c + 1.0 - abs(xm - x) / p1
                if v > 1.0 or v <= 0.0:
                    continue
                ix = int(x)
            elif u > p3:
                ix = int(xr - math.log(v) / xlr)
                if ix > n:
                    continue
                v = v * (u - p3) * xlr
            else:
                ix = int(xl + math.log(v) / xll)
                if ix < 0:
                    continue
                v = v * (u - p2) * xll
            k = abs(ix - m)
            if k <= 20 or k >= npq / 2 - 1:
                f = 1.0
                if m < ix:
                    for i in range(m + 1, ix + 1):
                        f *= g / i - r
                elif m != ix:
                    for i in range(ix + 1, m + 1):
                        f /= g / i - r
                if v <= f:
                    return ix
            else:
                amaxp = (k / npq) * ((k * (k / 3.0 + 0.625) + 0.1666666666666) / npq + 0.5)
                ynorm = -k * k / (2.0 * npq)
                alv = math.log(v)
                if alv < ynorm - amaxp:
                    return ix
                if alv <= ynorm + amaxp:
                    x1 = ix + 1
                    f1 = fm + 1.0
                    z = n + 1 - fm
                    w = n - ix + 1.0
                    bound = (
                        xm * math.log(f1 / x1)
                        + (n - m + 0.5) * math.log(z / w)
                        + (ix - m) * math.log(w * p / (x1 * q))
                        + _stirling_tail(f1) / 166320.0
                        + _stirling_tail(z) / 166320.0
                        + _stirling_tail(x1) / 166320.0
                        + _stirling_tail(w) / 166320.0
                    )
                    if alv <= bound:
                        return ix


def _stirling_tail(x: float) -> float:
    """R 4.2's series term (13860 - (462 - (132 - (99 - 140/x²)/x²)/x²)/x²)/x."""
    x2 = x * x
    return (13860.0 - (462.0 - (132.0 - (99.0 - 140.0 / x2) / x2) / x2) / x2) / x


def _pow_di(x: float, n: int) -> float:
    """R's ``R_pow_di``: x**n by repeated squaring (its rounding matters)."""
    xn = 1.0
    while True:
        if n & 1:
            xn *= x
        n >>= 1
        if not n:
            return xn
        x *= x


def revsort(a: np.ndarray, ib: np.ndarray) -> None:
    """R's ``revsort``: heapsort ``a`` into decreasing order, carrying ``ib``.

    Works in place. The tie order is R's, which decides which category a
    uniform draw lands in when probabilities are equal.
    """
    n = len(a)
    if n <= 1:
        return
    # 1-based views, as in the C code
    A = [0.0] + list(a)
    B = [0] + list(ib)
    l = (n >> 1) + 1
    ir = n
    while True:
        if l > 1:
            l -= 1
            ra, ii = A[l], B[l]
        else:
            ra, ii = A[ir], B[ir]
            A[ir], B[ir] = A[1], B[1]
            ir -= 1
            if ir == 1:
                A[1], B[1] = ra, ii
                break
        i = l
        j = l << 1
        while j <= ir:
            if j < ir and A[j] > A[j + 1]:
                j += 1
            if ra > A[j]:
                A[i], B[i] = A[j], B[j]
                i = j
                j += j
            else:
                j = ir + 1
        A[i], B[i] = ra, ii
    a[:] = A[1:]
    ib[:] = B[1:]
