"""DP mechanisms: exact noise scales, costs straight from OpenDP's maps, accuracy, and the noise.

Sensitivities used below, worked out from the contribution bounds:

- ``od_trips``: at most L = 4 trips per subscriber-day, each adds 1 to one OD cell
  → l1 = 4; worst case all four in one cell → l2 = linf = 4.
- ``presence``: one count per subscriber per zone-day, at most 5 zones per subscriber-day
  → l1 = 5, l2 = sqrt(5), linf = 1.
- ``mobility_distance``: daily distance clipped to [0, 50] km, added to one home zone
  → l1 = l2 = linf = 50.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import opendp.prelude as dp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from aggregation.mechanisms import (
    accuracy,
    ci_half_width,
    discrete_gaussian_for_epsilon,
    discrete_laplace,
    expected_abs_error,
    laplace_threshold,
    noise_std,
    plan_partitions,
    plan_vector,
)
from schemas.privacy import Sensitivity
from tests.mechanisms_rho import discrete_gaussian, gaussian_threshold

if TYPE_CHECKING:
    from collections.abc import Callable

OD_TRIPS = Sensitivity(l1=4, l2=4.0, linf=4)
PRESENCE = Sensitivity(l1=5, l2=math.sqrt(5), linf=1)
DISTANCE = Sensitivity(l1=50, l2=50.0, linf=50)  # distances clipped to [0, 50] km, one home

DRAWS = 30_000
P_MIN = 1e-6
"""Goodness-of-fit tests fail when p <= 1e-6: under a correct sampler that happens about once in
a million runs per test (the chi-square statistic is near its limit law: every bin expects >= 20),
so CI does not flake; a sampler 10 % off its scale gives p below 1e-30 at 30 000 draws."""


# -- exact scales and costs -----------------------------------------------------------------------


def test_od_trips_laplace_scale_is_l1_over_epsilon() -> None:
    # L1 = 4 (four trips), ε = 1 → scale = 4/1 = 4; OpenDP's map gives back ε = 4/4 = 1.
    spec = discrete_laplace(OD_TRIPS, 1.0).spec
    assert spec.mechanism == "discrete_laplace"
    assert spec.scale == 4.0
    assert spec.cost.epsilon == 1.0
    assert spec.cost.delta == 0.0
    assert spec.cost.rho == 0.5  # pure ε-DP → ε²/2-zCDP
    assert spec.threshold is None


def test_presence_laplace_scale() -> None:
    # L1 = 5 (five zones), ε = 0.5 → scale = 5/0.5 = 10.
    spec = discrete_laplace(PRESENCE, 0.5).spec
    assert spec.scale == 10.0
    assert spec.cost.epsilon == 0.5


def test_bounded_distance_sum_scale() -> None:
    # Distances clipped to [0, 50] km, one home zone: L1 = 50; ε = 2 → scale = 25.
    assert discrete_laplace(DISTANCE, 2.0).spec.scale == 25.0


def test_presence_gaussian_scale_is_l2_over_sqrt_two_rho() -> None:
    # L2 = sqrt(5), ρ = 0.5 → scale = sqrt(5)/sqrt(2·0.5) = sqrt(5) (up to OpenDP's rounding).
    spec = discrete_gaussian(PRESENCE, 0.5, delta=1e-7).spec
    assert spec.mechanism == "discrete_gaussian"
    assert spec.scale == pytest.approx(math.sqrt(5), rel=1e-15)
    assert spec.scale >= math.sqrt(5)
    assert spec.cost.rho is not None
    assert spec.cost.rho <= 0.5
    assert spec.cost.rho == pytest.approx(0.5, rel=1e-14)
    assert spec.cost.zcdp_delta == 0.0
    assert spec.cost.delta == 1e-7
    # ε at δ = 1e-7 from OpenDP's conversion: tighter than ρ + 2·sqrt(ρ·ln(1/δ)) = 6.18.
    assert 0.5 < spec.cost.epsilon < 0.5 + 2 * math.sqrt(0.5 * math.log(1e7))


def test_od_trips_gaussian_scale() -> None:
    # L2 = 4, ρ = 0.5 → scale = 4/sqrt(1) = 4 exactly.
    spec = discrete_gaussian(OD_TRIPS, 0.5, delta=1e-7).spec
    assert spec.scale == 4.0
    assert spec.cost.rho == 0.5


def test_cost_is_what_the_opendp_map_returns() -> None:
    laplace = discrete_laplace(OD_TRIPS, 0.3)
    assert laplace.spec.cost.epsilon == laplace.measurement.map(4)
    gaussian = discrete_gaussian(PRESENCE, 0.2, delta=1e-7)
    assert gaussian.spec.cost.rho == gaussian.measurement.map(math.sqrt(5))
    converted = dp.c.make_zCDP_to_approxDP(gaussian.measurement).map(math.sqrt(5))
    assert gaussian.spec.cost.epsilon == converted.epsilon(1e-7)


@settings(max_examples=40, deadline=None)
@given(
    l1=st.integers(min_value=1, max_value=1000),
    epsilon=st.floats(min_value=0.01, max_value=10, allow_nan=False, allow_subnormal=False),
)
def test_scale_is_the_textbook_one_raised_only_past_map_rounding(l1: int, epsilon: float) -> None:
    spec = discrete_laplace(Sensitivity(l1=l1, l2=float(l1), linf=1), epsilon).spec
    assert spec.cost.epsilon <= epsilon
    ideal = l1 / epsilon
    assert ideal <= spec.scale <= ideal * (1 + 1e-15)


def test_gaussian_sized_from_epsilon_spends_at_most_that_epsilon() -> None:
    spec = discrete_gaussian_for_epsilon(OD_TRIPS, 1.0, delta=1e-7).spec
    assert spec.cost.epsilon <= 1.0
    assert spec.cost.epsilon == pytest.approx(1.0, rel=1e-6)
    # OpenDP's conversion beats the closed form ρ + 2·sqrt(ρ·ln(1/δ)) = ε by ~14 % in noise.
    log_term = math.log(1e7)
    closed_form_rho = (math.sqrt(log_term + 1.0) - math.sqrt(log_term)) ** 2
    assert spec.scale < 4.0 / math.sqrt(2 * closed_form_rho)


def test_plan_dispatches_on_the_mechanism_and_rejects_delta_for_laplace() -> None:
    assert plan_vector("discrete_laplace", OD_TRIPS, epsilon=1.0).spec.scale == 4.0
    gaussian = plan_vector("discrete_gaussian", OD_TRIPS, epsilon=1.0, delta=1e-7).spec
    assert gaussian.mechanism == "discrete_gaussian"
    with pytest.raises(ValueError, match="pure ε-DP and takes no δ"):
        plan_vector("discrete_laplace", OD_TRIPS, epsilon=1.0, delta=1e-7)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: discrete_laplace(OD_TRIPS, 0.0), "Epsilon must be a finite positive number"),
        (lambda: discrete_laplace(OD_TRIPS, math.inf), "Epsilon must be a finite positive"),
        (lambda: discrete_gaussian(OD_TRIPS, -1.0, delta=1e-7), "Rho must be a finite positive"),
        (lambda: discrete_gaussian(OD_TRIPS, 0.5, delta=0.0), "Delta must lie strictly"),
        (lambda: laplace_threshold(OD_TRIPS, 1.0, 1e-7, l0=0), "l0"),
        (lambda: laplace_threshold(OD_TRIPS, 1.0, 1e-7, min_threshold=-1), "min_threshold"),
    ],
)
def test_bad_budgets_are_refused_with_the_rule(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# -- explain and release share one path -----------------------------------------------------------


def test_explain_touches_no_data_and_release_states_the_same_spec() -> None:
    explained = plan_vector("discrete_laplace", OD_TRIPS, epsilon=1.0).spec
    planned = plan_vector("discrete_laplace", OD_TRIPS, epsilon=1.0)
    released = planned.release([10, 0, 7])
    assert planned.spec == explained
    assert len(released) == 3
    assert all(isinstance(v, int) for v in released)


def test_release_refuses_non_integer_aggregates() -> None:
    mechanism = discrete_laplace(OD_TRIPS, 1.0)
    with pytest.raises(TypeError, match=r"must be integers; got 1\.5"):
        mechanism.release([1, 1.5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be integers; got True"):
        mechanism.release([True])
    assert len(mechanism.release(np.array([1, 2, 3], dtype=np.int64))) == 3


def test_opendp_is_what_adds_the_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    constructed: list[float] = []
    invoked: list[object] = []
    real_make_laplace = dp.m.make_laplace

    def spy_make_laplace(
        input_domain: dp.Domain, input_metric: dp.Metric, scale: float
    ) -> dp.Measurement:
        constructed.append(scale)
        return real_make_laplace(input_domain, input_metric, scale=scale)

    def fake_invoke(self: dp.Measurement, arg: object) -> list[int]:
        invoked.append(arg)
        return [101, 202, 303]

    monkeypatch.setattr(dp.m, "make_laplace", spy_make_laplace)
    monkeypatch.setattr(dp.Measurement, "__call__", fake_invoke)
    released = plan_vector("discrete_laplace", OD_TRIPS, epsilon=1.0).release([1, 2, 3])
    assert constructed[-1] == 4.0  # the measurement was built by OpenDP at scale l1/ε
    assert invoked == [[1, 2, 3]]  # OpenDP's measurement received the exact vector …
    assert released == [101, 202, 303]  # … and its output is the release, untouched


def test_partition_release_goes_through_the_opendp_threshold_measurement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoked: list[object] = []

    def fake_invoke(self: dp.Measurement, arg: object) -> dict[str, int]:
        invoked.append(arg)
        return {"b": 99, "a": 88}

    monkeypatch.setattr(dp.Measurement, "__call__", fake_invoke)
    planned = plan_partitions("discrete_laplace", OD_TRIPS, epsilon=1.0, delta=1e-7)
    released = planned.release({"a": 1, "b": 2})
    assert invoked == [{"a": 1, "b": 2}]
    assert released == {"a": 88, "b": 99}


# -- accuracy -------------------------------------------------------------------------------------


def _laplace_coverage(scale: float, h: int) -> float:
    law = stats.dlaplace(1.0 / scale)
    return float(law.cdf(h) - law.cdf(-h - 1))


def _gaussian_coverage(scale: float, h: int) -> float:
    k = np.arange(-math.ceil(14 * scale) - 1, math.ceil(14 * scale) + 2)
    w = np.exp(-(k.astype(np.float64) ** 2) / (2 * scale * scale))
    return float(w[np.abs(k) <= h].sum() / w.sum())


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0, 10.0, 25.0, 1234.5])
def test_laplace_ci_is_the_smallest_exact_95_percent_half_width(scale: float) -> None:
    h = ci_half_width("discrete_laplace", scale)
    assert _laplace_coverage(scale, h) >= 0.95
    assert h == 0 or _laplace_coverage(scale, h - 1) < 0.95


def test_laplace_ci_of_the_od_trips_release() -> None:
    # scale 4: P(|Z| > h) = 2·p^(h+1)/(1+p), p = e^(-1/4): h = 11 → 0.0560, h = 12 → 0.0436.
    assert ci_half_width("discrete_laplace", 4.0) == 12
    assert discrete_laplace(OD_TRIPS, 1.0).spec.ci_half_width == 12


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5, math.sqrt(5), 40.0, 700.0])
def test_gaussian_ci_is_the_smallest_exact_95_percent_half_width(scale: float) -> None:
    h = ci_half_width("discrete_gaussian", scale)
    assert _gaussian_coverage(scale, h) >= 0.95
    assert h == 0 or _gaussian_coverage(scale, h - 1) < 0.95


@pytest.mark.parametrize("scale", [10_000.5, 12_345.6, 31_415.9])
def test_gaussian_ci_bound_for_large_scales_is_safe_and_tight(scale: float) -> None:
    h = ci_half_width("discrete_gaussian", scale)
    exact = accuracy._gaussian_ci_exact(scale, 0.95)
    assert exact <= h <= exact + 1


def test_other_confidence_levels() -> None:
    h = ci_half_width("discrete_laplace", 4.0, confidence=0.99)
    assert _laplace_coverage(4.0, h) >= 0.99 > _laplace_coverage(4.0, h - 1)
    with pytest.raises(ValueError, match="Confidence"):
        ci_half_width("discrete_laplace", 4.0, confidence=1.0)


@pytest.mark.parametrize("scale", [0.5, 4.0, 37.0])
def test_laplace_error_figures_match_the_distribution(scale: float) -> None:
    law = stats.dlaplace(1.0 / scale)
    assert noise_std("discrete_laplace", scale) == pytest.approx(law.std(), rel=1e-12)
    k = np.arange(-60 * math.ceil(scale), 60 * math.ceil(scale) + 1)
    mean_abs = float((np.abs(k) * law.pmf(k)).sum())
    assert expected_abs_error("discrete_laplace", scale) == pytest.approx(mean_abs, rel=1e-9)


def test_gaussian_error_figures() -> None:
    # σ = 50: std is σ to float precision; E|Z| is below the continuous σ·sqrt(2/π) by about
    # 1/(6·σ·sqrt(2π)) (Euler-Maclaurin: |x| has a kink at 0), i.e. by 1.3e-3.
    continuous = 50.0 * math.sqrt(2 / math.pi)
    correction = 1 / (6 * 50.0 * math.sqrt(2 * math.pi))
    assert expected_abs_error("discrete_gaussian", 50.0) == pytest.approx(
        continuous - correction, rel=1e-7
    )
    assert noise_std("discrete_gaussian", 50.0) == pytest.approx(50.0, rel=1e-9)
    # Small σ: std is strictly below σ (CKS20), computed from the pmf.
    assert noise_std("discrete_gaussian", 0.3) < 0.3
    assert expected_abs_error("discrete_gaussian", 2e4) == 2e4 * math.sqrt(2 / math.pi)


# -- partition selection --------------------------------------------------------------------------


def test_laplace_threshold_is_the_smallest_meeting_delta() -> None:
    # d_in = (l0, l1, linf) = (4, 4, 4); scale = 4/1 = 4; threshold searched on OpenDP's map.
    mechanism = laplace_threshold(OD_TRIPS, 1.0, 1e-7)
    spec = mechanism.spec
    assert spec.scale == 4.0
    assert spec.l0 == 4
    assert spec.threshold == 71
    assert (spec.cost.epsilon, spec.cost.delta) == mechanism.measurement.map((4, 4, 4))
    assert spec.cost.delta <= 1e-7
    assert spec.cost.rho is None
    below = dp.m.make_laplace_threshold(
        mechanism.measurement.input_domain,
        mechanism.measurement.input_metric,
        scale=4.0,
        threshold=70,
    )
    assert below.map((4, 4, 4))[1] > 1e-7


def test_fewer_keys_per_unit_lower_the_threshold() -> None:
    assert laplace_threshold(OD_TRIPS, 1.0, 1e-7, l0=1).spec.threshold == 66
    assert laplace_threshold(OD_TRIPS, 1.0, 1e-7, l0=99).spec.l0 == 4  # never above l1


def test_threshold_never_goes_below_k() -> None:
    assert laplace_threshold(OD_TRIPS, 1.0, 1e-7, min_threshold=100).spec.threshold == 100


def test_partition_release_keeps_only_keys_whose_noisy_count_reaches_the_threshold() -> None:
    counts = {"A|B": 5_000, "A|C": 1, "B|C": 0, "C|A": 3_000}
    planned = plan_partitions("discrete_laplace", OD_TRIPS, epsilon=1.0, delta=1e-7)
    released = planned.release(counts)
    # A count of 0 or 1 reaches 71 only if the noise is >= 70: probability below 1e-7.
    assert set(released) == {"A|B", "C|A"}
    assert abs(released["A|B"] - 5_000) < 200
    assert (
        planned.spec == plan_partitions("discrete_laplace", OD_TRIPS, epsilon=1.0, delta=1e-7).spec
    )
    with pytest.raises(TypeError, match="keys must be strings"):
        laplace_threshold(OD_TRIPS, 1.0, 1e-7).release({("A", "B"): 1})  # type: ignore[dict-item]


def test_gaussian_partition_selection_sized_from_epsilon() -> None:
    spec = plan_partitions("discrete_gaussian", OD_TRIPS, epsilon=1.0, delta=1e-7).spec
    assert spec.mechanism == "discrete_gaussian"
    assert spec.cost.epsilon <= 1.0
    assert spec.cost.delta <= 1e-7
    assert spec.cost.rho is not None
    assert spec.threshold is not None
    planned = plan_partitions("discrete_gaussian", OD_TRIPS, epsilon=1.0, delta=1e-7)
    assert set(planned.release({"big": 10_000, "none": 0})) == {"big"}


def test_gaussian_threshold_costs() -> None:
    mechanism = gaussian_threshold(OD_TRIPS, 0.5, 1e-7)
    spec = mechanism.spec
    assert spec.scale == 4.0  # l2 = 4, ρ = 0.5 → 4/sqrt(1)
    rho, threshold_delta = mechanism.measurement.map((4, 4.0, 4.0))
    assert (spec.cost.rho, spec.cost.zcdp_delta) == (rho, threshold_delta)
    assert threshold_delta <= 0.5e-7
    assert spec.cost.delta == pytest.approx(threshold_delta + 0.5e-7)
    assert spec.cost.delta <= 1e-7
    assert spec.threshold is not None
    assert spec.threshold >= 4


# -- the noise itself (statistical) ---------------------------------------------------------------


def _chi_square_p(draws: list[int], pmf: Callable[[np.ndarray], np.ndarray]) -> float:
    """p-value of a chi-square goodness-of-fit test, bins pooled so each expects >= 20 draws."""
    values = np.asarray(draws)
    half = 0
    while DRAWS * float(pmf(np.array([half + 1]))[0]) >= 20:
        half += 1
    inner = np.arange(-half, half + 1)
    expected_inner = DRAWS * pmf(inner)
    tail = (DRAWS - expected_inner.sum()) / 2
    observed = [int((values < -half).sum())]
    observed += [int((values == k).sum()) for k in inner]
    observed += [int((values > half).sum())]
    expected = np.concatenate([[tail], expected_inner, [tail]])
    return float(stats.chisquare(observed, expected * (len(values) / expected.sum())).pvalue)


@pytest.mark.slow
@pytest.mark.parametrize("sensitivity", [OD_TRIPS, PRESENCE])
def test_laplace_noise_follows_the_discrete_laplace_pmf(sensitivity: Sensitivity) -> None:
    mechanism = discrete_laplace(sensitivity, 1.0)
    noise = mechanism.release([0] * DRAWS)
    law = stats.dlaplace(1.0 / mechanism.spec.scale)  # pmf ∝ exp(-|k|/scale)
    assert _chi_square_p(noise, law.pmf) > P_MIN
    h = mechanism.spec.ci_half_width
    covered = float(np.mean(np.abs(noise) <= h))
    # Binomial(30 000, ~0.95) has sd 0.0013: 0.01 is over 7 sd.
    assert covered == pytest.approx(_laplace_coverage(mechanism.spec.scale, h), abs=0.01)


@pytest.mark.slow
def test_gaussian_noise_follows_the_discrete_gaussian_pmf() -> None:
    mechanism = discrete_gaussian(OD_TRIPS, 0.5, delta=1e-7)  # scale 4
    noise = mechanism.release([1000] * DRAWS)
    scale = mechanism.spec.scale
    support = np.arange(-math.ceil(14 * scale), math.ceil(14 * scale) + 1)
    norm = np.exp(-(support.astype(np.float64) ** 2) / (2 * scale**2)).sum()

    def pmf(k: np.ndarray) -> np.ndarray:
        return np.asarray(np.exp(-(k.astype(np.float64) ** 2) / (2 * scale**2)) / norm)

    assert _chi_square_p([v - 1000 for v in noise], pmf) > P_MIN
