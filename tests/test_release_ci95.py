"""``ci95`` is worded as what it is: a noise interval, not a coverage promise for published cells
(issue 16.9). The figure the wording quotes is computed here exactly."""

from __future__ import annotations

import math

from aggregation.export.datapackage import COLUMN_DOCS
from aggregation.mechanisms import ci_half_width
from schemas.indicators import Indicator
from schemas.release import release_contract


def _coverage_given_published(true: int, k: int, scale: float, h: int) -> float:
    """P(|Z| <= h | true + Z >= k) for the discrete Laplace, summed term by term."""
    p = math.exp(-1.0 / scale)
    pmf = {z: p ** abs(z) for z in range(-2000, 2001)}
    published = [z for z in pmf if true + z >= k]
    covered = [z for z in published if abs(z) <= h]
    return math.fsum(pmf[z] for z in covered) / math.fsum(pmf[z] for z in published)


def test_a_true_zero_published_at_k_10_is_covered_78_percent_of_the_time() -> None:
    h = ci_half_width("discrete_laplace", 6.0)
    assert h == 18
    coverage = _coverage_given_published(0, 10, 6.0, h)
    assert round(coverage, 2) == 0.78
    p = math.exp(-1 / 6)
    assert math.isclose(coverage, 1 - p ** (0 + h - 10 + 1))  # the formula in docs/analysts.md
    assert _coverage_given_published(10 + h, 10, 6.0, h) >= 0.95


def test_the_ci95_column_is_described_as_a_noise_interval() -> None:
    contract = {c.name: c.description for c in release_contract(Indicator.PRESENCE).columns}
    for text in (contract["ci95"], COLUMN_DOCS["ci95"]):
        assert "interval of the noise" in text
        assert "not a confidence interval for a published cell" in text
        assert "78 %" in text
        assert "the true bounded value lies in" not in text
