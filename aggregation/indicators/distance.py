"""``mobility_distance``: daily distance travelled per home zone, as a bounded sum and a count.

Columns ``date, home_zone, distance_m, subscribers``. For each subscriber with a home (see
:mod:`aggregation.indicators.homes`) seen on a release day: ``distance_m`` adds their distance that
day — the sum over their trips of the great-circle distance between the centroids of
``distance_zones`` (admin3 for the finest measure), each trip rounded to whole metres — clipped
to [0, U] with U = ``max_distance_km`` · 1000; ``subscribers`` adds 1.

Two vectors, each with its own sensitivity (home from a reference period, so a unit there can
move a subscriber's contribution to another home zone): ``distance_m`` l1 = 2U, l2 = sqrt(2)·U,
linf = U; ``subscribers`` l1 = 2, l2 = sqrt(2), linf = 1 (per release day). The mean daily distance
of a home zone is ``noisy distance_m / noisy subscribers``: post-processing of the two releases.

From GPS (``feed="gps"``): for each device with a home (the same rule over its accurate fixes of
the home period) and an accurate fix on a release day, ``distance_m`` adds the device-day's path
length through its fixes — each fix of a stay at the stay's centre, so a device at rest adds
nothing (:func:`aggregation.gps_stays.stays_and_paths`), whole metres — clipped to [0, U];
``subscribers`` adds 1 (a device). Same bounds, same derivation, unit one device-day: the same
declared sensitivities. ``distance_zones`` are not used (paths run through the fixes).

CDR homes may come from the day-zone summaries (``AggregateRequest.day_zones``); distances always
come from the events of the release days, whose order they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.extract import daily_distances, gps_stays, staged_events
from aggregation.indicators._days import release_days
from aggregation.indicators.homes import with_homes
from aggregation.sql import SqlPlan, sql

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest


def mobility_distance(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``mobility_distance``."""
    if request.feed == "gps":
        return _gps_distance(request, key)
    dz = request.centroid_zones
    plan = with_homes(SqlPlan(), request, key)
    plan = staged_events(
        plan, "day_events", request.source, release_days(request), request.zones.level, dz.level
    )
    # Distances only of subscribers with a home (the others are dropped below anyway): the
    # per-subscriber window over events is the costly part, and nobody else needs it.
    plan = plan.with_cte(
        "home_events",
        sql("SELECT * FROM day_events e SEMI JOIN homes h ON e.pseudonym = h.pseudonym"),
    )
    plan = daily_distances(plan, "home_events", "dist", dz)
    plan = plan.with_cte(
        "contrib",
        sql("""SELECT d.pseudonym, d.local_date AS date, h.home_zone,
    least(d.distance_m, $max_distance_m) AS distance_m, 1 AS subscribers
FROM dist d JOIN homes h ON d.pseudonym = h.pseudonym"""),
        max_distance_m=request.bounds.max_distance_m,
    )
    return plan, "contrib"


def _gps_distance(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """``mobility_distance`` from GPS: clipped path lengths of devices with a home."""
    plan = with_homes(SqlPlan(), request, key)
    days, level = release_days(request), request.zones.level
    plan = gps_stays(plan, "day", request.source, days, level, request.stay_rule)
    plan = plan.with_cte(
        "contrib",
        sql("""SELECT d.pseudonym, d.local_date AS date, h.home_zone,
    least(d.distance_m, $max_distance_m) AS distance_m, 1 AS subscribers
FROM day_paths d JOIN homes h ON d.pseudonym = h.pseudonym"""),
        max_distance_m=request.bounds.max_distance_m,
    )
    return plan, "contrib"
