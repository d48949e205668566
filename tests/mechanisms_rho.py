"""The mechanisms sized from a ρ target (zCDP), which only the tests use.

The pipeline sizes every measurement from the ε a release asks for
(:func:`aggregation.mechanisms.plan_vector`, :func:`aggregation.mechanisms.plan_partitions`);
these two size a discrete Gaussian from ρ, so that the tests can check the textbook scale
l2/sqrt(2ρ) exactly and what OpenDP's maps return for it. They build the same measurements as
the pipeline, through its own private constructors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aggregation.mechanisms.accuracy import CONFIDENCE
from aggregation.mechanisms.opendp_maps import fit_scale, map_pair, map_scalar, verify
from aggregation.mechanisms.partitions import (
    _gaussian_partition_mechanism,
    _gaussian_partitions,
    _partition_l0,
    _threshold_floor,
)
from aggregation.mechanisms.vector import _gaussian_mechanism, _gaussian_vector
from schemas.privacy import check_budget, check_delta

if TYPE_CHECKING:
    from aggregation.mechanisms import PartitionMechanism, VectorMechanism
    from schemas.privacy import Sensitivity


def discrete_gaussian(
    sensitivity: Sensitivity, rho: float, *, delta: float, confidence: float = CONFIDENCE
) -> VectorMechanism:
    """Discrete Gaussian noise on every cell, ρ-zCDP: scale = l2/sqrt(2ρ) (raised past rounding).

    Cost recorded: ρ = ``meas.map(l2)``; and, for basic composition, ε at ``delta`` from OpenDP's
    conversion ``make_zCDP_to_approxDP(meas).map(l2).epsilon(delta)``.
    """
    check_budget("Rho", rho, positive=True)
    check_delta("Delta", delta, positive=True)
    l2 = float(sensitivity.l2)
    ideal = l2 / math.sqrt(2.0 * rho)
    scale = fit_scale(ideal, lambda s: map_scalar(_gaussian_vector(s), l2), rho)
    mechanism = _gaussian_mechanism(sensitivity, scale, delta, confidence)
    verify("ρ", map_scalar(mechanism.measurement, l2), rho)
    return mechanism


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
    check_budget("Rho", rho, positive=True)
    check_delta("Delta", delta, positive=True)
    floor = _threshold_floor(sensitivity, min_threshold)
    keys = _partition_l0(sensitivity, l0)
    d_in = (keys, float(sensitivity.l2), float(sensitivity.linf))
    scale = fit_scale(
        float(sensitivity.l2) / math.sqrt(2.0 * rho),
        lambda s: map_pair(_gaussian_partitions(s, floor), d_in)[0],
        rho,
    )
    mechanism = _gaussian_partition_mechanism(
        sensitivity, scale, delta, keys=keys, floor=floor, confidence=confidence
    )
    verify("ρ", map_pair(mechanism.measurement, d_in)[0], rho)
    return mechanism
