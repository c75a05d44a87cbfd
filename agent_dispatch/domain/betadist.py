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


def _first_guess(q: float, a: float, b: float) -> float:
    """Numerical Recipes' start for the inverse incomplete beta (6.4): a normal-based guess
    for shapes of 1 and more, the power laws of the two tails for smaller ones."""
    if a >= 1.0 and b >= 1.0:
        t = math.sqrt(-2.0 * math.log(min(q, 1.0 - q)))
        z = (2.30753 + t * 0.27061) / (1.0 + t * (0.99229 + t * 0.04481)) - t
        z = -z if q < 0.5 else z
        al = (z * z - 3.0) / 6.0
        h = 2.0 / (1.0 / (2.0 * a - 1.0) + 1.0 / (2.0 * b - 1.0))
        w = z * math.sqrt(al + h) / h - (1.0 / (2.0 * b - 1.0) - 1.0 / (2.0 * a - 1.0)) * (
            al + 5.0 / 6.0 - 2.0 / (3.0 * h)
        )
        return a / (a + b * math.exp(min(2.0 * w, 700.0)))
    t = math.exp(a * math.log(a / (a + b))) / a
    u = math.exp(b * math.log(b / (a + b))) / b
    w = t + u
    if q < t / w:
        return float((a * w * q) ** (1.0 / a))
    return float(1.0 - (b * w * (1.0 - q)) ** (1.0 / b))


def beta_quantile(q: float, a: float, b: float) -> float:
    """The x with I_x(a, b) = q: Halley steps on the density, kept inside a shrinking
    bisection bracket (monotone cdf), so it converges fast and never leaves (0, 1).
    It starts from Numerical Recipes' guess and stops once the cdf is within a thousandth of
    the level (relative to the nearer tail), after one last step that needs no cdf: Halley's
    error shrinks with its cube, so that step lands as close as a tolerance of a billionth
    did (200,000 quantiles of ranking's shapes: within 1e-11 of it, none different at 4
    decimals), with 1.85 cdf evaluations on average instead of 2.7. Newton from the mean,
    chasing the cdf's own rounding, took 7 to 27. Planning shows intervals, to 4 decimals,
    for every chosen agent of every plan."""
    if not 0.0 < q < 1.0:
        return 0.0 if q <= 0.0 else 1.0
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    tolerance = 1e-3 * min(q, 1.0 - q)
    x = _first_guess(q, a, b)
    lo, hi = 0.0, 1.0
    if not 0.0 < x < 1.0:
        x = a / (a + b)
    for _ in range(100):
        f = beta_cdf(x, a, b) - q
        if f < 0.0:
            lo = x
        else:
            hi = x
        if hi - lo < 1e-15:
            break
        pdf = math.exp(log_norm + (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x))
        if pdf > 0.0:  # Halley's step (the density's slope too), as Numerical Recipes takes
            u = f / pdf
            bend = u * ((a - 1.0) / x - (b - 1.0) / (1.0 - x))
            step = x - u / (1.0 - 0.5 * min(1.0, bend))
            if abs(f) <= tolerance:  # close enough: this last step costs no cdf
                return step if lo <= step <= hi else x
        else:
            step = -1.0  # a vanishing density: bisect instead
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
