"""DP mechanisms: the OpenDP measurements that add noise to bounded aggregates, and what they cost.

Every published number passes through one of these OpenDP core measurements; nothing here samples
noise itself (no ``numpy.random``, no home-made sampler):

- **Public key sets** (every zone or zone pair is published, whether or not anyone was seen
  there): the whole vector of exact bounded integer aggregates goes through one measurement,
  ``dp.m.make_laplace`` over ``vector_domain(atom_domain(T="i64"))`` with ``l1_distance`` (discrete
  Laplace, pure ε-DP, the default) or ``dp.m.make_gaussian`` with ``l2_distance`` (discrete
  Gaussian, ρ-zCDP). See :func:`discrete_laplace`, :func:`discrete_gaussian`, :func:`plan_vector`.
- **Private key sets** (the keys themselves reveal something: fine geographies, tower pairs): DP
  partition selection with ``dp.m.make_laplace_threshold`` / ``dp.m.make_gaussian_threshold``
  over a map of key → count; a key is published only if its noisy count reaches the threshold, and
  the δ of that test is accounted. See :func:`laplace_threshold`, :func:`gaussian_threshold`.

Each constructor picks the noise scale for the declared :class:`~schemas.privacy.Sensitivity` and
the requested budget, builds the measurement, and records the cost that the measurement's
privacy map returns (``meas.map(d_in)``), checked against the request. The resulting
:class:`VectorMechanism` / :class:`PartitionMechanism` explains itself (``.spec``: scale, cost,
expected error, CI half-width) without touching data, and ``.release(...)`` invokes the very same
measurement on the data: ``explain_*`` and ``release_*`` share everything but the invocation.

Bounded sums (``mobility_distance``): each subscriber-day's distance is clipped to [0, U] as an
integer (metres or km) *before* aggregation, and each subscriber-day contributes to one home zone,
so adding or removing one privacy unit moves one cell by at most U: l1 = l2 = linf = U
(:func:`bounded_sum_sensitivity`). The sums then go through the same vector mechanism; a mean is
the post-processed ratio of the noisy sum and a separately released noisy count, and the two
releases' costs add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
from opendp import combinators, measurements
from opendp.domains import atom_domain, map_domain, vector_domain
from opendp.metrics import (
    absolute_distance,
    l01inf_distance,
    l02inf_distance,
    l1_distance,
    l2_distance,
)
from opendp.mod import Measurement, binary_search, binary_search_param, enable_features

from aggregation.budget import rho_for_epsilon
from schemas.errors import InternalError
from schemas.privacy import Mechanism, NoiseSpec, PrivacyCost, Sensitivity

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

CONFIDENCE = 0.95
"""Default coverage of the CI half-width stated with every release."""

EXACT_GAUSSIAN_SCALE_LIMIT = 10_000.0
"""Up to this scale discrete-Gaussian accuracy figures are exact sums over the pmf; above it
they are rigorous bounds (CI) or continuous limits (mean error, std), see :func:`ci_half_width`."""

_TAIL_SIGMAS = 12
"""Discrete-Gaussian pmf sums stop at 12 σ: the mass beyond is below 1e-32, under float rounding."""

_MAX_NUDGES = 64
"""Float steps a scale may be raised to absorb the rounding of OpenDP's conservative map."""

_INT = "i64"
"""OpenDP atom type of every aggregate: 64-bit, so bounded sums in metres cannot overflow."""


def _opendp() -> None:
    """Opt in to OpenDP's contributed constructors (required for every ``make_*`` used here)."""
    enable_features("contrib")


def _privacy_map(measurement: Measurement, d_in: object) -> Any:
    """``measurement.map(d_in)``: the only place OpenDP's privacy map is called."""
    # opendp 0.16 ships Measurement.map without annotations; its result type depends on the measure.
    return measurement.map(d_in)  # type: ignore[no-untyped-call]


def _map_scalar(measurement: Measurement, d_in: object) -> float:
    """The privacy map of a measurement whose measure is a number (ε or ρ)."""
    return float(_privacy_map(measurement, d_in))


def _map_pair(measurement: Measurement, d_in: object) -> tuple[float, float]:
    """The privacy map of an approximate measure: (ε or ρ, δ)."""
    first, delta = _privacy_map(measurement, d_in)
    return float(first), float(delta)


def _epsilon_at(measurement: Measurement, d_in: object, delta: float) -> tuple[float, float]:
    """(ε, δ_extra) of a zCDP or approximate-zCDP measurement stated as (ε, delta + δ_extra)-DP.

    OpenDP converts with ``make_zCDP_to_approxDP``; its map is a privacy profile (plus, for an
    approximate measure, the δ that the conversion carries over), evaluated at ``delta``.
    """
    mapped = _privacy_map(combinators.make_zCDP_to_approxDP(measurement), d_in)
    profile, carried = mapped if isinstance(mapped, tuple) else (mapped, 0.0)
    return float(profile.epsilon(delta)), float(carried)


# --------------------------------------------------------------------------------------------
# Accuracy of one cell's noise, computed from the distribution alone
# --------------------------------------------------------------------------------------------


def _laplace_p(scale: float) -> tuple[float, float]:
    """p = exp(-1/scale) and 1 - p, the latter without cancellation."""
    return math.exp(-1.0 / scale), -math.expm1(-1.0 / scale)


def _laplace_tail(scale: float, h: int) -> float:
    """P(|Z| > h) = 2·p^(h+1)/(1+p) for the discrete Laplace P(Z=k) ∝ p^|k|."""
    p, _ = _laplace_p(scale)
    return 2.0 * math.exp(-(h + 1) / scale) / (1.0 + p)


def _laplace_ci(scale: float, confidence: float) -> int:
    p, _ = _laplace_p(scale)
    alpha = 1.0 - confidence
    # Solve 2·p^(h+1)/(1+p) <= α for h, then fix the float rounding of the solution exactly.
    h = max(0, math.ceil(-scale * math.log(alpha * (1.0 + p) / 2.0)) - 1)
    while h > 0 and _laplace_tail(scale, h - 1) <= alpha:
        h -= 1
    while _laplace_tail(scale, h) > alpha:
        h += 1
    return h


def _gaussian_weights(scale: float) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """exp(-k²/(2σ²)) for k = 0 .. 12σ (unnormalised pmf of the discrete Gaussian on k >= 0)."""
    k = np.arange(0, math.ceil(_TAIL_SIGMAS * scale) + 2, dtype=np.float64)
    return np.exp(-(k * k) / (2.0 * scale * scale))


def _gaussian_norm(w: np.ndarray[tuple[int], np.dtype[np.float64]]) -> float:
    """Σ_k exp(-k²/(2σ²)) over all integers k, from the weights of k >= 0."""
    return float(w[0]) + 2.0 * math.fsum(w[1:])


def _gaussian_ci_exact(scale: float, confidence: float) -> int:
    w = _gaussian_weights(scale)
    total = _gaussian_norm(w)
    covered = (w[0] + 2.0 * np.cumsum(w) - 2.0 * w[0]) / total  # P(|Z| <= h) for h = 0, 1, ...
    return int(np.argmax(covered >= confidence))


def _erfcinv(value: float) -> float:
    """The inverse of ``math.erfc`` on (0, 2): erfc(x) = 2·(1 - Φ(x√2))."""
    return -NormalDist().inv_cdf(value / 2.0) / math.sqrt(2.0)


def _gaussian_ci_bound(scale: float, confidence: float) -> int:
    """Smallest h whose *lower bound* on P(|Z| <= h) reaches ``confidence`` (large scales).

    With f(k) = exp(-k²/2σ²) decreasing on k >= 0: the tail sum over k > h is at most
    ∫_h^∞ f = σ·sqrt(π/2)·erfc(h/(σ√2)) and the normaliser 1 + 2·Σ_{k>=1} f(k) is at least
    1 + σ·sqrt(2π)·erfc(1/(σ√2)). The result is never below the exact half-width and, for
    σ > 10 000, exceeds it by at most one unit (the bounds differ by f(h)/normaliser < 1e-4).
    """
    alpha = 1.0 - confidence
    norm_low = 1.0 + scale * math.sqrt(2.0 * math.pi) * math.erfc(1.0 / (scale * math.sqrt(2)))

    def uncovered(h: int) -> float:
        tail = scale * math.sqrt(math.pi / 2.0) * math.erfc(h / (scale * math.sqrt(2.0)))
        return float(2.0 * tail / norm_low)

    target = alpha * norm_low / (scale * math.sqrt(2.0 * math.pi))
    h = max(0, math.ceil(scale * math.sqrt(2.0) * _erfcinv(target)))
    while h > 0 and uncovered(h - 1) <= alpha:
        h -= 1
    while uncovered(h) > alpha:
        h += 1
    return h


def ci_half_width(mechanism: Mechanism, scale: float, confidence: float = CONFIDENCE) -> int:
    """Smallest integer h with P(|Z| <= h) >= ``confidence`` for one cell's noise Z.

    Discrete Laplace (P(Z=k) ∝ exp(-|k|/scale)): exact, from the closed form
    P(|Z| > h) = 2·p^(h+1)/(1+p), p = exp(-1/scale). Discrete Gaussian (P(Z=k) ∝
    exp(-k²/(2·scale²))): an exact sum over the pmf up to :data:`EXACT_GAUSSIAN_SCALE_LIMIT`;
    above it, the rigorous bound of :func:`_gaussian_ci_bound` (never too small).
    """
    if not 0 < confidence < 1:
        msg = f"Confidence must lie strictly between 0 and 1; got {confidence!r}."
        raise ValueError(msg)
    if mechanism == "discrete_laplace":
        return _laplace_ci(scale, confidence)
    if scale <= EXACT_GAUSSIAN_SCALE_LIMIT:
        return _gaussian_ci_exact(scale, confidence)
    return _gaussian_ci_bound(scale, confidence)


def expected_abs_error(mechanism: Mechanism, scale: float) -> float:
    """E|Z| of one cell's noise: 2p/(1-p²) (discrete Laplace); a pmf sum (discrete Gaussian).

    For discrete-Gaussian scales above :data:`EXACT_GAUSSIAN_SCALE_LIMIT` the continuous value
    σ·sqrt(2/π) is returned (relative difference below 1e-8 there).
    """
    if mechanism == "discrete_laplace":
        p, one_minus_p = _laplace_p(scale)
        return 2.0 * p / (one_minus_p * (1.0 + p))
    if scale > EXACT_GAUSSIAN_SCALE_LIMIT:
        return scale * math.sqrt(2.0 / math.pi)
    w = _gaussian_weights(scale)
    k = np.arange(w.size, dtype=np.float64)
    return 2.0 * math.fsum(k * w) / _gaussian_norm(w)


def noise_std(mechanism: Mechanism, scale: float) -> float:
    """Standard deviation of one cell's noise: sqrt(2p)/(1-p) (discrete Laplace); a pmf sum
    (discrete Gaussian, at most ``scale``; ``scale`` itself above the exact limit)."""
    if mechanism == "discrete_laplace":
        p, one_minus_p = _laplace_p(scale)
        return math.sqrt(2.0 * p) / one_minus_p
    if scale > EXACT_GAUSSIAN_SCALE_LIMIT:
        return scale
    w = _gaussian_weights(scale)
    k = np.arange(w.size, dtype=np.float64)
    return math.sqrt(2.0 * math.fsum(k * k * w) / _gaussian_norm(w))


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _check_budget(name: str, value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        msg = f"{name} must be a finite positive number; got {value!r}."
        raise ValueError(msg)


def _check_delta(value: float) -> None:
    if not 0 < value < 1:
        msg = f"Delta must lie strictly between 0 and 1 for this mechanism; got {value!r}."
        raise ValueError(msg)


def _fit_scale(ideal: float, cost_at: Callable[[float], float], target: float) -> float:
    """The smallest float >= ``ideal`` whose privacy-map cost is at most ``target``.

    ``ideal`` is the textbook scale (e.g. l1/ε); OpenDP rounds its map conservatively, so the
    map at ``ideal`` may exceed the target by a float step. Raise the scale one step at a time.
    """
    scale = ideal
    for _ in range(_MAX_NUDGES):
        if cost_at(scale) <= target:
            return scale
        scale = math.nextafter(scale, math.inf)
    msg = f"OpenDP's privacy map stays above {target!r} near scale {ideal!r}: this is a bug."
    raise InternalError(msg)


def _verify(what: str, spent: float, target: float) -> None:
    if spent > target:
        msg = f"{what} from OpenDP's privacy map is {spent!r}, above the requested {target!r}."
        raise InternalError(msg)


def _spec(
    mechanism: Mechanism,
    scale: float,
    sensitivity: Sensitivity,
    cost: PrivacyCost,
    confidence: float,
    *,
    threshold: int | None = None,
    l0: int | None = None,
) -> NoiseSpec:
    return NoiseSpec(
        mechanism=mechanism,
        scale=scale,
        sensitivity=sensitivity,
        cost=cost,
        confidence=confidence,
        ci_half_width=ci_half_width(mechanism, scale, confidence),
        expected_abs_error=expected_abs_error(mechanism, scale),
        std_dev=noise_std(mechanism, scale),
        threshold=threshold,
        l0=l0,
    )


def bounded_sum_sensitivity(upper: int, *, cells_per_unit: int = 1) -> Sensitivity:
    """Sensitivity of per-cell sums of values clipped to [0, ``upper``].

    One privacy unit contributes at most one clipped value to each of at most ``cells_per_unit``
    cells (for ``mobility_distance``: its daily distance to its one home zone), so adding or
    removing it moves the vector by l1 <= cells·U, l2 <= sqrt(cells)·U, linf <= U.
    """
    if isinstance(upper, bool) or upper < 1 or cells_per_unit < 1:
        msg = (
            "Clipping bound and cells per unit must be positive whole numbers; got "
            f"upper={upper!r}, cells_per_unit={cells_per_unit!r}."
        )
        raise ValueError(msg)
    return Sensitivity(l1=cells_per_unit * upper, l2=math.sqrt(cells_per_unit) * upper, linf=upper)


# --------------------------------------------------------------------------------------------
# Public key sets: one measurement over the whole vector of integer aggregates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VectorMechanism:
    """An OpenDP measurement over a vector of integer aggregates, and its self-description."""

    spec: NoiseSpec
    measurement: Measurement

    def release(self, values: Iterable[int]) -> list[int]:
        """Invoke the OpenDP measurement on the exact vector: each cell gets independent noise."""
        exact = [_as_int(v) for v in values]
        return [int(v) for v in self.measurement(exact)]


@dataclass(frozen=True, slots=True)
class VectorRelease:
    """Noisy values released by a :class:`VectorMechanism`, in the order of the exact values."""

    values: list[int]
    spec: NoiseSpec


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"Aggregates passed to a DP mechanism must be integers; got {value!r}."
        raise TypeError(msg)
    return int(value)


def _laplace_vector(scale: float) -> Measurement:
    _opendp()
    space = vector_domain(atom_domain(T=_INT)), l1_distance(T=_INT)
    return measurements.make_laplace(*space, scale=scale)


def _gaussian_vector(scale: float) -> Measurement:
    _opendp()
    space = vector_domain(atom_domain(T=_INT)), l2_distance(T=float)
    return measurements.make_gaussian(*space, scale=scale)


def discrete_laplace(
    sensitivity: Sensitivity, epsilon: float, *, confidence: float = CONFIDENCE
) -> VectorMechanism:
    """Discrete Laplace noise on every cell, pure ε-DP: scale = l1/ε (raised past map rounding).

    Cost recorded: ε = ``meas.map(l1)``; ρ = ``make_pureDP_to_zCDP(meas).map(l1)`` (= ε²/2), so
    the release can also be charged under zCDP composition.
    """
    _check_budget("Epsilon", epsilon)
    l1 = sensitivity.l1
    scale = _fit_scale(l1 / epsilon, lambda s: _map_scalar(_laplace_vector(s), l1), epsilon)
    measurement = _laplace_vector(scale)
    spent = _map_scalar(measurement, l1)
    _verify("ε", spent, epsilon)
    rho = _map_scalar(combinators.make_pureDP_to_zCDP(measurement), l1)
    cost = PrivacyCost(epsilon=spent, delta=0.0, rho=rho)
    return VectorMechanism(
        _spec("discrete_laplace", scale, sensitivity, cost, confidence), measurement
    )


def _gaussian_mechanism(
    sensitivity: Sensitivity, scale: float, delta: float, confidence: float
) -> VectorMechanism:
    measurement = _gaussian_vector(scale)
    l2 = float(sensitivity.l2)
    rho = _map_scalar(measurement, l2)
    epsilon, _ = _epsilon_at(measurement, l2, delta)
    cost = PrivacyCost(epsilon=epsilon, delta=delta, rho=rho, zcdp_delta=0.0)
    return VectorMechanism(
        _spec("discrete_gaussian", scale, sensitivity, cost, confidence), measurement
    )


def discrete_gaussian(
    sensitivity: Sensitivity, rho: float, *, delta: float, confidence: float = CONFIDENCE
) -> VectorMechanism:
    """Discrete Gaussian noise on every cell, ρ-zCDP: scale = l2/sqrt(2ρ) (raised past rounding).

    Cost recorded: ρ = ``meas.map(l2)``; and, for basic composition, ε at ``delta`` from OpenDP's
    conversion ``make_zCDP_to_approxDP(meas).map(l2).epsilon(delta)``.
    """
    _check_budget("Rho", rho)
    _check_delta(delta)
    l2 = float(sensitivity.l2)
    ideal = l2 / math.sqrt(2.0 * rho)
    scale = _fit_scale(ideal, lambda s: _map_scalar(_gaussian_vector(s), l2), rho)
    mechanism = _gaussian_mechanism(sensitivity, scale, delta, confidence)
    _verify("ρ", _map_scalar(mechanism.measurement, l2), rho)
    return mechanism


def _gaussian_scale_for_epsilon(l2: float, epsilon: float, delta: float) -> float:
    """Smallest discrete-Gaussian scale whose (ε, δ) statement at ``delta`` is within ε.

    Searched with ``dp.binary_search`` over OpenDP's own zCDP → (ε, δ) conversion, which is
    tighter than the closed form ρ + 2·sqrt(ρ·ln(1/δ)). Search bounds: ε at δ always exceeds ρ,
    so ρ < ε (scale > l2/sqrt(2ε)); the closed form's ρ is feasible, so twice its scale passes.
    """

    def fits(scale: float) -> bool:
        return _epsilon_at(_gaussian_vector(scale), l2, delta)[0] <= epsilon

    lower = l2 / math.sqrt(2.0 * epsilon)
    upper = 2.0 * l2 / math.sqrt(2.0 * rho_for_epsilon(epsilon, delta))
    return float(binary_search(fits, bounds=(lower, upper), T=float))


def discrete_gaussian_for_epsilon(
    sensitivity: Sensitivity, epsilon: float, *, delta: float, confidence: float = CONFIDENCE
) -> VectorMechanism:
    """Discrete Gaussian sized from an (ε, δ) target: the least noise whose OpenDP conversion of
    ρ at ``delta`` stays within ε. Cost recorded as in :func:`discrete_gaussian`."""
    _check_budget("Epsilon", epsilon)
    _check_delta(delta)
    scale = _gaussian_scale_for_epsilon(float(sensitivity.l2), epsilon, delta)
    mechanism = _gaussian_mechanism(sensitivity, scale, delta, confidence)
    _verify("ε", mechanism.spec.cost.epsilon, epsilon)
    return mechanism


def plan_vector(
    mechanism: Mechanism,
    sensitivity: Sensitivity,
    *,
    epsilon: float,
    delta: float = 0.0,
    confidence: float = CONFIDENCE,
) -> VectorMechanism:
    """The vector mechanism for an ε target (and δ for the Gaussian).

    :func:`explain_vector` and :func:`release_vector` both go through here.
    """
    if mechanism == "discrete_laplace":
        if delta:
            msg = f"The discrete Laplace is pure ε-DP and takes no δ; got delta={delta!r}."
            raise ValueError(msg)
        return discrete_laplace(sensitivity, epsilon, confidence=confidence)
    return discrete_gaussian_for_epsilon(sensitivity, epsilon, delta=delta, confidence=confidence)


def explain_vector(
    mechanism: Mechanism,
    sensitivity: Sensitivity,
    *,
    epsilon: float,
    delta: float = 0.0,
    confidence: float = CONFIDENCE,
) -> NoiseSpec:
    """What a vector release would cost and how accurate it would be; touches no data."""
    return plan_vector(
        mechanism, sensitivity, epsilon=epsilon, delta=delta, confidence=confidence
    ).spec


def release_vector(
    values: Iterable[int],
    mechanism: Mechanism,
    sensitivity: Sensitivity,
    *,
    epsilon: float,
    delta: float = 0.0,
    confidence: float = CONFIDENCE,
) -> VectorRelease:
    """Noisy ``values`` through the mechanism :func:`explain_vector` describes."""
    planned = plan_vector(
        mechanism, sensitivity, epsilon=epsilon, delta=delta, confidence=confidence
    )
    return VectorRelease(values=planned.release(values), spec=planned.spec)


# --------------------------------------------------------------------------------------------
# Private key sets: DP partition selection over a map of key -> count
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionMechanism:
    """An OpenDP threshold measurement over key → count, and its self-description."""

    spec: NoiseSpec
    measurement: Measurement

    def release(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Noisy counts of the keys whose noisy count reaches the threshold, sorted by key.

        Keys are strings (encode pairs, e.g. ``"origin|destination"``); counts are integers.
        """
        exact = {_as_key(key): _as_int(value) for key, value in counts.items()}
        noisy = self.measurement(exact)
        return {key: int(noisy[key]) for key in sorted(noisy)}


@dataclass(frozen=True, slots=True)
class PartitionRelease:
    """Keys kept by a :class:`PartitionMechanism`, with their noisy counts."""

    values: dict[str, int]
    spec: NoiseSpec


def _as_key(key: object) -> str:
    if not isinstance(key, str):
        msg = f"Partition keys must be strings; got {key!r}."
        raise TypeError(msg)
    return key


def _partition_l0(sensitivity: Sensitivity, l0: int | None) -> int:
    """Keys one unit can touch: each touched key changes by an integer >= 1, so l0 <= l1."""
    if l0 is None:
        return sensitivity.l1
    if isinstance(l0, bool) or l0 < 1:
        msg = f"l0 (keys one privacy unit can touch) must be a positive whole number; got {l0!r}."
        raise ValueError(msg)
    return min(l0, sensitivity.l1)


def _laplace_partitions(scale: float, threshold: int) -> Measurement:
    _opendp()
    domain = map_domain(atom_domain(T=str), atom_domain(T=_INT))
    metric = l01inf_distance(absolute_distance(T=_INT))
    return measurements.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


def _gaussian_partitions(scale: float, threshold: int) -> Measurement:
    _opendp()
    domain = map_domain(atom_domain(T=str), atom_domain(T=_INT))
    metric = l02inf_distance(absolute_distance(T=float))
    return measurements.make_gaussian_threshold(domain, metric, scale=scale, threshold=threshold)


def _smallest_threshold(
    make: Callable[[int], Measurement], d_in: object, d_out: object, minimum: int
) -> int:
    """Smallest integer threshold >= ``minimum`` whose map is within ``d_out`` (δ falls with it)."""
    if make(minimum).check(d_in, d_out):
        return minimum
    found = binary_search_param(lambda t: make(int(t)), d_in, d_out, bounds=(minimum, None), T=int)
    return int(found)


def _threshold_floor(sensitivity: Sensitivity, min_threshold: int) -> int:
    """Lowest threshold to search from: ``min_threshold``, and never below linf (OpenDP's rule)."""
    if isinstance(min_threshold, bool) or min_threshold < 0:
        msg = f"min_threshold must be a non-negative whole number; got {min_threshold!r}."
        raise ValueError(msg)
    return max(1, sensitivity.linf, min_threshold)


def laplace_threshold(
    sensitivity: Sensitivity,
    epsilon: float,
    delta: float,
    *,
    l0: int | None = None,
    min_threshold: int = 0,
    confidence: float = CONFIDENCE,
) -> PartitionMechanism:
    """DP partition selection with discrete Laplace noise, (ε, δ)-DP.

    scale = l1/ε (raised past map rounding); the threshold is the smallest integer
    >= ``min_threshold`` (use the k of suppression) for which ``meas.map((l0, l1, linf))`` has
    δ <= ``delta``. Cost recorded: (ε, δ) from that map; no zCDP statement.
    """
    _check_budget("Epsilon", epsilon)
    _check_delta(delta)
    floor = _threshold_floor(sensitivity, min_threshold)
    keys = _partition_l0(sensitivity, l0)
    d_in = (keys, sensitivity.l1, sensitivity.linf)
    scale = _fit_scale(
        sensitivity.l1 / epsilon,
        lambda s: _map_pair(_laplace_partitions(s, floor), d_in)[0],
        epsilon,
    )
    threshold = _smallest_threshold(
        lambda t: _laplace_partitions(scale, t), d_in, (epsilon, delta), floor
    )
    measurement = _laplace_partitions(scale, threshold)
    spent_epsilon, spent_delta = _map_pair(measurement, d_in)
    _verify("ε", spent_epsilon, epsilon)
    _verify("δ", spent_delta, delta)
    cost = PrivacyCost(epsilon=spent_epsilon, delta=spent_delta)
    spec = _spec(
        "discrete_laplace", scale, sensitivity, cost, confidence, threshold=threshold, l0=keys
    )
    return PartitionMechanism(spec, measurement)


def _gaussian_partition_mechanism(
    sensitivity: Sensitivity,
    scale: float,
    delta: float,
    *,
    keys: int,
    floor: int,
    confidence: float,
) -> PartitionMechanism:
    """Gaussian threshold at ``scale``: threshold for δ/2, (ε, δ) statement at the other δ/2."""
    d_in = (keys, float(sensitivity.l2), float(sensitivity.linf))
    spent_rho = _map_pair(_gaussian_partitions(scale, floor), d_in)[0]
    threshold = _smallest_threshold(
        lambda t: _gaussian_partitions(scale, t), d_in, (spent_rho, delta / 2.0), floor
    )
    measurement = _gaussian_partitions(scale, threshold)
    spent_rho, threshold_delta = _map_pair(measurement, d_in)
    _verify("threshold δ", threshold_delta, delta / 2.0)
    epsilon, carried_delta = _epsilon_at(measurement, d_in, delta / 2.0)
    cost = PrivacyCost(
        epsilon=epsilon,
        delta=carried_delta + delta / 2.0,
        rho=spent_rho,
        zcdp_delta=threshold_delta,
    )
    spec = _spec(
        "discrete_gaussian", scale, sensitivity, cost, confidence, threshold=threshold, l0=keys
    )
    return PartitionMechanism(spec, measurement)


def gaussian_threshold(
    sensitivity: Sensitivity,
    rho: float,
    delta: float,
    *,
    l0: int | None = None,
    min_threshold: int = 0,
    confidence: float = CONFIDENCE,
) -> PartitionMechanism:
    """DP partition selection with discrete Gaussian noise, δ-approximate ρ-zCDP.

    scale = l2/sqrt(2ρ); half of ``delta`` goes to the threshold test (the smallest threshold
    >= ``min_threshold`` whose map δ is within it), half to stating the release as (ε, δ)-DP for
    basic composition. Cost recorded: (ρ, zCDP δ) = ``meas.map((l0, l2, linf))``; ε from
    ``make_zCDP_to_approxDP(meas)`` at δ/2, and δ = zCDP δ + δ/2.
    """
    _check_budget("Rho", rho)
    _check_delta(delta)
    floor = _threshold_floor(sensitivity, min_threshold)
    keys = _partition_l0(sensitivity, l0)
    d_in = (keys, float(sensitivity.l2), float(sensitivity.linf))
    scale = _fit_scale(
        float(sensitivity.l2) / math.sqrt(2.0 * rho),
        lambda s: _map_pair(_gaussian_partitions(s, floor), d_in)[0],
        rho,
    )
    mechanism = _gaussian_partition_mechanism(
        sensitivity, scale, delta, keys=keys, floor=floor, confidence=confidence
    )
    _verify("ρ", _map_pair(mechanism.measurement, d_in)[0], rho)
    return mechanism


def gaussian_threshold_for_epsilon(
    sensitivity: Sensitivity,
    epsilon: float,
    delta: float,
    *,
    l0: int | None = None,
    min_threshold: int = 0,
    confidence: float = CONFIDENCE,
) -> PartitionMechanism:
    """Gaussian partition selection sized from an (ε, δ) target: the least noise whose OpenDP
    conversion of ρ at δ/2 stays within ε; the threshold test takes the other δ/2."""
    _check_budget("Epsilon", epsilon)
    _check_delta(delta)
    scale = _gaussian_scale_for_epsilon(float(sensitivity.l2), epsilon, delta / 2.0)
    mechanism = _gaussian_partition_mechanism(
        sensitivity,
        scale,
        delta,
        keys=_partition_l0(sensitivity, l0),
        floor=_threshold_floor(sensitivity, min_threshold),
        confidence=confidence,
    )
    _verify("ε", mechanism.spec.cost.epsilon, epsilon)
    _verify("δ", mechanism.spec.cost.delta, delta)
    return mechanism


def plan_partitions(
    mechanism: Mechanism,
    sensitivity: Sensitivity,
    *,
    epsilon: float,
    delta: float,
    l0: int | None = None,
    min_threshold: int = 0,
    confidence: float = CONFIDENCE,
) -> PartitionMechanism:
    """The partition-selection mechanism for an (ε, δ) target.

    :func:`explain_partitions` and :func:`release_partitions` both go through here.
    """
    build = laplace_threshold if mechanism == "discrete_laplace" else gaussian_threshold_for_epsilon
    return build(
        sensitivity, epsilon, delta, l0=l0, min_threshold=min_threshold, confidence=confidence
    )


def explain_partitions(
    mechanism: Mechanism,
    sensitivity: Sensitivity,
    *,
    epsilon: float,
    delta: float,
    l0: int | None = None,
    min_threshold: int = 0,
    confidence: float = CONFIDENCE,
) -> NoiseSpec:
    """What a partition selection would cost and how accurate it would be; touches no data."""
    return plan_partitions(
        mechanism,
        sensitivity,
        epsilon=epsilon,
        delta=delta,
        l0=l0,
        min_threshold=min_threshold,
        confidence=confidence,
    ).spec


def release_partitions(
    counts: Mapping[str, int],
    mechanism: Mechanism,
    sensitivity: Sensitivity,
    *,
    epsilon: float,
    delta: float,
    l0: int | None = None,
    min_threshold: int = 0,
    confidence: float = CONFIDENCE,
) -> PartitionRelease:
    """Kept keys and noisy counts through the mechanism :func:`explain_partitions` describes."""
    planned = plan_partitions(
        mechanism,
        sensitivity,
        epsilon=epsilon,
        delta=delta,
        l0=l0,
        min_threshold=min_threshold,
        confidence=confidence,
    )
    return PartitionRelease(values=planned.release(counts), spec=planned.spec)
