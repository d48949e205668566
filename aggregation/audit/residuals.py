"""Statistical tests of a release's noise against its declared distribution, given the exact
aggregates.

**What is observed.** For every candidate cell i the auditor knows the exact bounded value x_i.
The release drew Z_i (independent, from the declared distribution at the declared scale) and
published x_i + Z_i only when it reached the release threshold T (k, or the partition-selection
threshold if larger): cell i is *released* iff Z_i >= t_i = T - x_i. So a released cell shows its
residual r_i = released - exact = Z_i, conditioned on Z_i >= t_i; a suppressed cell shows only
that Z_i < t_i. Ignoring the conditioning would be wrong: near the threshold only cells with
positive noise survive, so released residuals are biased upwards and a naive test of them against
the untruncated distribution fails honest releases (or, restricted to cells far above k, throws
most of the data away). Both tests below use the exact truncation instead.

**Scale test** (likelihood ratio). The censored log-likelihood over *all* candidate cells,
LL(s) = Σ_released log P_s(Z = r_i) + Σ_suppressed log P_s(Z < t_i), is maximised over the scale
s (a log grid over [s0/1000, 1000·s0], refined by Brent's method); LR = 2(LL(ŝ) - LL(s0)) is
compared with χ²(1) (Wilks). Noise removed drives ŝ to the grid's floor; noise halved gives
ŝ ≈ s0/2. Both give LR in the hundreds on a release with a few hundred informative cells.

**Shape test** (randomised PIT). For released cells, U_i = P(Z < r_i | Z >= t_i) +
V_i·P(Z = r_i | Z >= t_i) with V_i uniform on [0, 1) is *exactly* uniform under the declared
distribution (the randomisation makes a discrete PIT continuous), whatever the truncation; a
Kolmogorov-Smirnov test against U(0, 1) checks location and shape, e.g. a biased or wrongly
shaped noise at the right scale. The V_i come from a generator seeded with the release id, so
re-running the audit gives the same answer; they are test randomisation, not privacy noise.

**Decision.** Each test runs at α/2 (Bonferroni): the release fails if either rejects, so the
false-alarm rate of an honest release is at most α (up to the χ² approximation of the LR, checked
by simulation in ``tests/test_audit_noise.py``). When the scale test cannot reject half the
declared scale either (too few informative cells), the verdict is ``inconclusive``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import optimize, stats

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aggregation.audit.noise_models import NoiseModel

DEFAULT_ALPHA = 1e-3
"""Default false-alarm rate of ``audit noise`` per release (split between its two tests)."""

SCALE_RANGE = 1000.0
"""The fitted scale is searched within [s0/1000, 1000·s0]."""

_GRID_POINTS = 121

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Residuals:
    """What the release shows about its noise: residuals of released cells and the floors t_i.

    ``released_floor[i]`` is t_i of the i-th released cell (its residual must be >= it);
    ``suppressed_floor`` the t_i of suppressed cells (their noise was below it).
    """

    residuals: NDArray[np.int64]
    released_floor: NDArray[np.int64]
    suppressed_floor: NDArray[np.int64]

    def __post_init__(self) -> None:
        if self.residuals.shape != self.released_floor.shape:
            msg = "residuals and released_floor must have one value per released cell."
            raise ValueError(msg)


@dataclass(frozen=True)
class ScaleTest:
    """The likelihood-ratio test of the declared scale."""

    declared: float
    fitted: float
    statistic: float
    p_value: float
    p_value_half: float
    """p-value of the hypothesis "the scale is half the declared one" (power diagnostic)."""


@dataclass(frozen=True)
class ShapeTest:
    """The Kolmogorov-Smirnov test of the conditional randomised PIT of released residuals."""

    cells: int
    statistic: float
    p_value: float


@dataclass(frozen=True)
class NoiseTests:
    """Both tests and the verdict at ``alpha``."""

    alpha: float
    scale: ScaleTest
    shape: ShapeTest

    @property
    def verdict(self) -> Verdict:
        """``fail`` if either test rejects at α/2; ``inconclusive`` if half noise cannot be
        told apart either; else ``pass``."""
        level = self.alpha / 2.0
        if self.scale.p_value < level or self.shape.p_value < level:
            return "fail"
        if self.scale.p_value_half >= level:
            return "inconclusive"
        return "pass"


def log_likelihood(model: NoiseModel, scale: float, data: Residuals) -> float:
    """LL(scale): released cells at their residual, suppressed cells below their floor."""
    released = model.log_pmf(data.residuals, scale)
    suppressed = model.log_sf(1 - data.suppressed_floor, scale)  # P(Z < t) = P(Z >= 1 - t)
    return math.fsum(released.tolist()) + math.fsum(suppressed.tolist())


def fit_scale(model: NoiseModel, data: Residuals, declared: float) -> tuple[float, float]:
    """(ŝ, LL(ŝ)): the maximum-likelihood scale within :data:`SCALE_RANGE` of ``declared``."""
    logs = np.linspace(-math.log(SCALE_RANGE), math.log(SCALE_RANGE), _GRID_POINTS)
    values = [log_likelihood(model, declared * math.exp(x), data) for x in logs]
    best = int(np.argmax(values))
    low, high = logs[max(best - 1, 0)], logs[min(best + 1, _GRID_POINTS - 1)]
    refined = optimize.minimize_scalar(
        lambda x: -log_likelihood(model, declared * math.exp(x), data),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-6},
    )
    if -float(refined.fun) > values[best]:
        return declared * math.exp(float(refined.x)), -float(refined.fun)
    return declared * math.exp(float(logs[best])), values[best]


def scale_test(model: NoiseModel, data: Residuals, declared: float) -> ScaleTest:
    """Likelihood-ratio test of ``declared`` against the best-fitting scale (χ², 1 d.f.)."""
    fitted, best = fit_scale(model, data, declared)
    at_declared = log_likelihood(model, declared, data)
    at_half = log_likelihood(model, declared / 2.0, data)
    best = max(best, at_declared, at_half)
    statistic = 2.0 * (best - at_declared)
    return ScaleTest(
        declared=declared,
        fitted=fitted,
        statistic=statistic,
        p_value=float(stats.chi2.sf(statistic, 1)),
        p_value_half=float(stats.chi2.sf(2.0 * (best - at_half), 1)),
    )


def conditional_pit(
    model: NoiseModel, data: Residuals, scale: float, uniforms: NDArray[np.float64]
) -> NDArray[np.float64]:
    """U_i = P(Z < r_i | Z >= t_i) + V_i·P(Z = r_i | Z >= t_i), uniform under the model."""
    floor = model.log_sf(data.released_floor, scale)
    above = np.exp(model.log_sf(data.residuals + 1, scale) - floor)
    at = np.exp(model.log_pmf(data.residuals, scale) - floor)
    pit = 1.0 - above - (1.0 - uniforms) * at
    return np.clip(pit, 0.0, 1.0)


def shape_test(model: NoiseModel, data: Residuals, scale: float, seed: str) -> ShapeTest:
    """KS test of the conditional randomised PIT of released cells against U(0, 1)."""
    cells = int(data.residuals.size)
    if cells == 0:
        return ShapeTest(cells=0, statistic=0.0, p_value=1.0)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]))
    pit = conditional_pit(model, data, scale, rng.random(cells))
    result = stats.kstest(pit, "uniform")
    return ShapeTest(cells=cells, statistic=float(result.statistic), p_value=float(result.pvalue))


def run_noise_tests(
    model: NoiseModel,
    data: Residuals,
    declared: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    seed: str = "",
) -> NoiseTests:
    """Both tests of ``data`` against ``model`` at the ``declared`` scale."""
    if not 0 < alpha < 1:
        msg = f"alpha (the false-alarm rate) must lie strictly between 0 and 1; got {alpha!r}."
        raise ValueError(msg)
    return NoiseTests(
        alpha=alpha,
        scale=scale_test(model, data, declared),
        shape=shape_test(model, data, declared, seed),
    )
