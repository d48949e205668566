"""Private key sets: DP partition selection over a map of key -> count.

When the keys themselves reveal something (fine geographies, tower pairs), only keys whose noisy
count reaches a threshold are published: ``make_laplace_threshold`` / ``make_gaussian_threshold``
over a map of key -> count, and the δ of that test is accounted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opendp import measurements
from opendp.domains import atom_domain, map_domain
from opendp.metrics import absolute_distance, l01inf_distance, l02inf_distance
from opendp.mod import Measurement, binary_search_param

from aggregation.mechanisms.accuracy import CONFIDENCE
from aggregation.mechanisms.opendp_maps import (
    INT,
    enable_opendp,
    epsilon_at,
    fit_scale,
    map_pair,
    noise_spec,
    verify,
)
from aggregation.mechanisms.vector import as_int, gaussian_scale_for_epsilon
from schemas.privacy import PrivacyCost, check_budget, check_delta

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from schemas.privacy import Mechanism, NoiseSpec, Sensitivity


@dataclass(frozen=True, slots=True)
class PartitionMechanism:
    """An OpenDP threshold measurement over key → count, and its self-description."""

    spec: NoiseSpec
    measurement: Measurement

    def release(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Noisy counts of the keys whose noisy count reaches the threshold, sorted by key.

        Keys are strings (encode pairs, e.g. ``"origin|destination"``); counts are integers.
        """
        exact = {_as_key(key): as_int(value) for key, value in counts.items()}
        noisy = self.measurement(exact)
        return {key: int(noisy[key]) for key in sorted(noisy)}


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
    enable_opendp()
    domain = map_domain(atom_domain(T=str), atom_domain(T=INT))
    metric = l01inf_distance(absolute_distance(T=INT))
    return measurements.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


def _gaussian_partitions(scale: float, threshold: int) -> Measurement:
    enable_opendp()
    domain = map_domain(atom_domain(T=str), atom_domain(T=INT))
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
    check_budget("Epsilon", epsilon, positive=True)
    check_delta("Delta", delta, positive=True)
    floor = _threshold_floor(sensitivity, min_threshold)
    keys = _partition_l0(sensitivity, l0)
    d_in = (keys, sensitivity.l1, sensitivity.linf)
    scale = fit_scale(
        sensitivity.l1 / epsilon,
        lambda s: map_pair(_laplace_partitions(s, floor), d_in)[0],
        epsilon,
    )
    threshold = _smallest_threshold(
        lambda t: _laplace_partitions(scale, t), d_in, (epsilon, delta), floor
    )
    measurement = _laplace_partitions(scale, threshold)
    spent_epsilon, spent_delta = map_pair(measurement, d_in)
    verify("ε", spent_epsilon, epsilon)
    verify("δ", spent_delta, delta)
    cost = PrivacyCost(epsilon=spent_epsilon, delta=spent_delta)
    spec = noise_spec(
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
    spent_rho = map_pair(_gaussian_partitions(scale, floor), d_in)[0]
    threshold = _smallest_threshold(
        lambda t: _gaussian_partitions(scale, t), d_in, (spent_rho, delta / 2.0), floor
    )
    measurement = _gaussian_partitions(scale, threshold)
    spent_rho, threshold_delta = map_pair(measurement, d_in)
    verify("threshold δ", threshold_delta, delta / 2.0)
    epsilon, carried_delta = epsilon_at(measurement, d_in, delta / 2.0)
    cost = PrivacyCost(
        epsilon=epsilon,
        delta=carried_delta + delta / 2.0,
        rho=spent_rho,
        zcdp_delta=threshold_delta,
    )
    spec = noise_spec(
        "discrete_gaussian", scale, sensitivity, cost, confidence, threshold=threshold, l0=keys
    )
    return PartitionMechanism(spec, measurement)


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
    check_budget("Epsilon", epsilon, positive=True)
    check_delta("Delta", delta, positive=True)
    scale = gaussian_scale_for_epsilon(float(sensitivity.l2), epsilon, delta / 2.0)
    mechanism = _gaussian_partition_mechanism(
        sensitivity,
        scale,
        delta,
        keys=_partition_l0(sensitivity, l0),
        floor=_threshold_floor(sensitivity, min_threshold),
        confidence=confidence,
    )
    verify("ε", mechanism.spec.cost.epsilon, epsilon)
    verify("δ", mechanism.spec.cost.delta, delta)
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

    ``explain`` states its ``spec``; the release invokes it (``.release(counts)``).
    """
    build = laplace_threshold if mechanism == "discrete_laplace" else gaussian_threshold_for_epsilon
    return build(
        sensitivity, epsilon, delta, l0=l0, min_threshold=min_threshold, confidence=confidence
    )
