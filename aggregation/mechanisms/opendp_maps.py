"""The OpenDP plumbing shared by the vector and partition mechanisms.

The only call of a measurement's privacy map, the scale fitted past the map's conservative
rounding, and the :class:`~schemas.privacy.NoiseSpec` every mechanism describes itself with. The
budgets a mechanism is built from are checked by the one rule of :mod:`schemas.privacy`
(:func:`~schemas.privacy.check_budget`, :func:`~schemas.privacy.check_delta`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from opendp import combinators
from opendp.mod import Measurement, enable_features

from aggregation.mechanisms.accuracy import ci_half_width, expected_abs_error, noise_std
from schemas.errors import InternalError
from schemas.privacy import Mechanism, NoiseSpec, PrivacyCost, Sensitivity

if TYPE_CHECKING:
    from collections.abc import Callable


MAX_NUDGES = 64
"""Float steps a scale may be raised to absorb the rounding of OpenDP's conservative map."""

INT = "i64"
"""OpenDP atom type of every aggregate: 64-bit, so bounded sums in metres cannot overflow."""


def enable_opendp() -> None:
    """Opt in to OpenDP's contributed constructors (required for every ``make_*`` used here)."""
    enable_features("contrib")


def privacy_map(measurement: Measurement, d_in: object) -> Any:
    """``measurement.map(d_in)``: the only place OpenDP's privacy map is called."""
    # opendp 0.16 ships Measurement.map without annotations; its result type depends on the measure.
    return measurement.map(d_in)  # type: ignore[no-untyped-call]


def map_scalar(measurement: Measurement, d_in: object) -> float:
    """The privacy map of a measurement whose measure is a number (ε or ρ)."""
    return float(privacy_map(measurement, d_in))


def map_pair(measurement: Measurement, d_in: object) -> tuple[float, float]:
    """The privacy map of an approximate measure: (ε or ρ, δ)."""
    first, delta = privacy_map(measurement, d_in)
    return float(first), float(delta)


def epsilon_at(measurement: Measurement, d_in: object, delta: float) -> tuple[float, float]:
    """(ε, δ_extra) of a zCDP or approximate-zCDP measurement stated as (ε, delta + δ_extra)-DP.

    OpenDP converts with ``make_zCDP_to_approxDP``; its map is a privacy profile (plus, for an
    approximate measure, the δ that the conversion carries over), evaluated at ``delta``.
    """
    mapped = privacy_map(combinators.make_zCDP_to_approxDP(measurement), d_in)
    profile, carried = mapped if isinstance(mapped, tuple) else (mapped, 0.0)
    return float(profile.epsilon(delta)), float(carried)


def fit_scale(ideal: float, cost_at: Callable[[float], float], target: float) -> float:
    """The smallest float >= ``ideal`` whose privacy-map cost is at most ``target``.

    ``ideal`` is the textbook scale (e.g. l1/ε); OpenDP rounds its map conservatively, so the
    map at ``ideal`` may exceed the target by a float step. Raise the scale one step at a time.
    """
    scale = ideal
    for _ in range(MAX_NUDGES):
        if cost_at(scale) <= target:
            return scale
        scale = math.nextafter(scale, math.inf)
    msg = f"OpenDP's privacy map stays above {target!r} near scale {ideal!r}: this is a bug."
    raise InternalError(msg)


def verify(what: str, spent: float, target: float) -> None:
    if spent > target:
        msg = f"{what} from OpenDP's privacy map is {spent!r}, above the requested {target!r}."
        raise InternalError(msg)


def noise_spec(
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
