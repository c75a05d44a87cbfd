"""Beta distribution quantiles and the Wilson interval, standard library only.

The domain may not import scipy; the regularized incomplete beta function by Lentz's
continued fraction (Numerical Recipes 6.4) is accurate to ~1e-10 here, which is far more
than a displayed "0.87-0.96" needs.
"""

from __future__ import annotations

import math

_EPS = 1e-12
_TINY = 1e-300


def _continued_fraction(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """P(X <= x) for X ~ Beta(a, b): the regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The fraction converges fast only on one side of the mean; use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction(a, b, x) / a
    return 1.0 - front * _continued_fraction(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """The x with I_x(a, b) = q: Newton steps on the density, kept inside a shrinking
    bisection bracket (monotone cdf), so it converges like Newton and never leaves (0, 1).
    A handful of cdf evaluations instead of bisection's 60: planning shows intervals."""
    if not 0.0 < q < 1.0:
        return 0.0 if q <= 0.0 else 1.0
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    lo, hi, x = 0.0, 1.0, a / (a + b)
    for _ in range(100):
        f = beta_cdf(x, a, b) - q
        if f == 0.0:
            return x
        if f < 0.0:
            lo = x
        else:
            hi = x
        if hi - lo < 1e-15:
            break
        pdf = math.exp(log_norm + (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x))
        step = x - f / pdf if pdf > 0.0 else -1.0  # a vanishing density: bisect instead
        if not lo < step < hi:
            x = (lo + hi) / 2
        elif abs(step - x) < 1e-13:
            return step
        else:
            x = step
    return x


def beta_interval(a: float, b: float, level: float = 0.9) -> tuple[float, float]:
    """Equal-tailed credible interval; its lower end is the reputation we display."""
    tail = (1.0 - level) / 2
    return beta_quantile(tail, a, b), beta_quantile(1.0 - tail, a, b)


def wilson_interval(
    successes: float, n: float, z: float = 1.6448536269514722
) -> tuple[float, float]:
    """Wilson score interval for a (possibly decayed, non-integer) count; (0, 1) without data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
