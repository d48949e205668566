"""``mobility_distance``: daily distance travelled per home zone, as a bounded sum and a count.

Columns ``date, home_zone, distance_m, subscribers``; key set date × zone. For each subscriber
with a home (:mod:`aggregation.indicators.homes`) seen on a release day: ``distance_m`` adds their
distance that day — the sum over their trips of the great-circle distance between the centroids
of ``distance_zones`` (admin3 for the finest measure), each trip rounded to whole metres —
clipped to [0, U] with U = ``max_distance_km`` · 1000; ``subscribers`` adds 1. The mean daily
distance of a home zone is ``noisy distance_m / noisy subscribers``: post-processing of the two
releases. Default ``max_distance_km = 100``: covers commutes; long-distance travel days are
clipped.

From GPS (``feed="gps"``): for each device with a home (the same rule over its accurate fixes of
the home period) and an accurate fix on a release day, ``distance_m`` adds the device-day's path
length through its fixes — each fix of a stay at the stay's centre, so a device at rest adds
nothing (:func:`aggregation.gps_stays.stays_and_paths`), whole metres — clipped to [0, U];
``subscribers`` adds 1 (a device). ``distance_zones`` are not used (paths run through the fixes).

CDR homes may come from the day-zone summaries (``AggregateRequest.day_zones``); distances always
come from the events of the release days, whose order they need.

Per-unit bound (one subscriber-day or device-day): ``distance_m`` ``B = (U, U, U)``,
``subscribers`` ``B = (1, 1, 1)``, both in the one cell of the home zone. Home-based (a unit in
the home period can move the contribution to another home zone), each vector with its own
sensitivity, per release day: ``distance_m`` l1 = 2U, l2 = sqrt(2)·U, linf = U (200000, 141421,
100000 m with the default); ``subscribers`` l1 = 2, l2 = sqrt(2), linf = 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.indicators.definition import IndicatorDefinition, one_key
from aggregation.indicators.distance import mobility_distance
from schemas.indicators import SPECS, Indicator
from schemas.privacy import Sensitivity

if TYPE_CHECKING:
    from schemas.indicators import ContributionBounds


def per_subscriber(b: ContributionBounds) -> dict[str, Sensitivity]:
    """``distance_m``: ``B = (U, U, U)``; ``subscribers``: ``B = (1, 1, 1)``."""
    u = b.max_distance_m
    return {
        "distance_m": Sensitivity(l1=u, l2=float(u), linf=u),
        "subscribers": Sensitivity(l1=1, l2=1.0, linf=1),
    }


DEFINITION = IndicatorDefinition(
    SPECS[Indicator.MOBILITY_DISTANCE], per_subscriber, one_key, mobility_distance
)
