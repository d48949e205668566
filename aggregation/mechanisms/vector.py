"""Public key sets: one OpenDP measurement over the whole vector of integer aggregates.

Every zone (or zone pair) is published, whether or not anyone was seen there, so the keys are
public and the vector of exact bounded aggregates goes through one measurement:
``make_laplace`` over ``vector_domain(atom_domain(T="i64"))`` with ``l1_distance`` (discrete
Laplace, pure ε-DP, the default) or ``make_gaussian`` with ``l2_distance`` (discrete Gaussian,
ρ-zCDP, stated as (ε, δ)-DP for basic composition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from opendp import combinators, measurements
from opendp.domains import atom_domain, vector_domain
from opendp.metrics import l1_distance, l2_distance
from opendp.mod import Measurement, binary_search

from aggregation.budget import rho_for_epsilon
from aggregation.mechanisms.accuracy import CONFIDENCE
from aggregation.mechanisms.opendp_maps import (
    INT,
    enable_opendp,
    epsilon_at,
    fit_scale,
    map_scalar,
    noise_spec,
    verify,
)
from schemas.privacy import PrivacyCost, check_budget, check_delta

if TYPE_CHECKING:
    from collections.abc import Iterable

    from schemas.privacy import Mechanism, NoiseSpec, Sensitivity


@dataclass(frozen=True, slots=True)
class VectorMechanism:
    """An OpenDP measurement over a vector of integer aggregates, and its self-description."""

    spec: NoiseSpec
    measurement: Measurement

    def release(self, values: Iterable[int]) -> list[int]:
        """Invoke the OpenDP measurement on the exact vector: each cell gets independent noise."""
        exact = [as_int(v) for v in values]
        return [int(v) for v in self.measurement(exact)]


def as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"Aggregates passed to a DP mechanism must be integers; got {value!r}."
        raise TypeError(msg)
    return int(value)


def _laplace_vector(scale: float) -> Measurement:
    enable_opendp()
    space = vector_domain(atom_domain(T=INT)), l1_distance(T=INT)
    return measurements.make_laplace(*space, scale=scale)


def _gaussian_vector(scale: float) -> Measurement:
    enable_opendp()
    space = vector_domain(atom_domain(T=INT)), l2_distance(T=float)
    return measurements.make_gaussian(*space, scale=scale)


def discrete_laplace(
    sensitivity: Sensitivity, epsilon: float, *, confidence: float = CONFIDENCE
) -> VectorMechanism:
    """Discrete Laplace noise on every cell, pure ε-DP: scale = l1/ε (raised past map rounding).

    Cost recorded: ε = ``meas.map(l1)``; ρ = ``make_pureDP_to_zCDP(meas).map(l1)`` (= ε²/2), so
    the release can also be charged under zCDP composition.
    """
    check_budget("Epsilon", epsilon, positive=True)
    l1 = sensitivity.l1
    scale = fit_scale(l1 / epsilon, lambda s: map_scalar(_laplace_vector(s), l1), epsilon)
    measurement = _laplace_vector(scale)
    spent = map_scalar(measurement, l1)
    verify("ε", spent, epsilon)
    rho = map_scalar(combinators.make_pureDP_to_zCDP(measurement), l1)
    cost = PrivacyCost(epsilon=spent, delta=0.0, rho=rho)
    return VectorMechanism(
        noise_spec("discrete_laplace", scale, sensitivity, cost, confidence), measurement
    )


def _gaussian_mechanism(
    sensitivity: Sensitivity, scale: float, delta: float, confidence: float
) -> VectorMechanism:
    measurement = _gaussian_vector(scale)
    l2 = float(sensitivity.l2)
    rho = map_scalar(measurement, l2)
    epsilon, _ = epsilon_at(measurement, l2, delta)
    cost = PrivacyCost(epsilon=epsilon, delta=delta, rho=rho, zcdp_delta=0.0)
    return VectorMechanism(
        noise_spec("discrete_gaussian", scale, sensitivity, cost, confidence), measurement
    )


def gaussian_scale_for_epsilon(l2: float, epsilon: float, delta: float) -> float:
    """Smallest discrete-Gaussian scale whose (ε, δ) statement at ``delta`` is within ε.

    Searched with ``dp.binary_search`` over OpenDP's own zCDP → (ε, δ) conversion, which is
    tighter than the closed form ρ + 2·sqrt(ρ·ln(1/δ)). Search bounds: ε at δ always exceeds ρ,
    so ρ < ε (scale > l2/sqrt(2ε)); the closed form's ρ is feasible, so twice its scale passes.
    """

    def fits(scale: float) -> bool:
        return epsilon_at(_gaussian_vector(scale), l2, delta)[0] <= epsilon

    lower = l2 / math.sqrt(2.0 * epsilon)
    upper = 2.0 * l2 / math.sqrt(2.0 * rho_for_epsilon(epsilon, delta))
    return float(binary_search(fits, bounds=(lower, upper), T=float))


def discrete_gaussian_for_epsilon(
    sensitivity: Sensitivity, epsilon: float, *, delta: float, confidence: float = CONFIDENCE
) -> VectorMechanism:
    """Discrete Gaussian sized from an (ε, δ) target: the least noise whose OpenDP conversion of
    ρ at ``delta`` stays within ε. Cost recorded: ρ = ``meas.map(l2)``, and ε at ``delta`` from
    OpenDP's conversion ``make_zCDP_to_approxDP(meas).map(l2).epsilon(delta)``."""
    check_budget("Epsilon", epsilon, positive=True)
    check_delta("Delta", delta, positive=True)
    scale = gaussian_scale_for_epsilon(float(sensitivity.l2), epsilon, delta)
    mechanism = _gaussian_mechanism(sensitivity, scale, delta, confidence)
    verify("ε", mechanism.spec.cost.epsilon, epsilon)
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

    ``explain`` states its ``spec``; the release invokes it (``.release(values)``).
    """
    if mechanism == "discrete_laplace":
        if delta:
            msg = f"The discrete Laplace is pure ε-DP and takes no δ; got delta={delta!r}."
            raise ValueError(msg)
        return discrete_laplace(sensitivity, epsilon, confidence=confidence)
    return discrete_gaussian_for_epsilon(sensitivity, epsilon, delta=delta, confidence=confidence)
