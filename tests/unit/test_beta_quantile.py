"""beta_quantile (Newton inside a bisection bracket) inverts beta_cdf across the shapes
ranking meets: tiny and huge pseudo-counts, skewed both ways, tail and central levels."""

from __future__ import annotations

import itertools

import pytest

from agent_dispatch.domain.betadist import beta_cdf, beta_quantile

SHAPES = [0.3, 0.5, 1.0, 2.5, 12.0, 100.0, 450.0, 5000.0]
LEVELS = [0.01, 0.05, 0.5, 0.95, 0.99]


@pytest.mark.parametrize(("a", "b"), list(itertools.product(SHAPES, SHAPES)))
def test_the_quantile_is_where_the_cdf_reaches_the_level(a: float, b: float) -> None:
    for q in LEVELS:
        x = beta_quantile(q, a, b)
        assert 0.0 < x < 1.0
        assert beta_cdf(x, a, b) == pytest.approx(q, rel=1e-7, abs=1e-12), (q, x)


def test_quantiles_of_the_uniform_and_a_known_shape_are_exact() -> None:
    assert beta_quantile(0.05, 1, 1) == pytest.approx(0.05, abs=1e-12)
    assert beta_quantile(0.25, 2, 1) == pytest.approx(0.5, abs=1e-12)  # cdf x^2
    assert beta_quantile(0.0, 3, 4) == 0.0 and beta_quantile(1.0, 3, 4) == 1.0
