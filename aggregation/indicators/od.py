"""``od_trips`` and ``od_connections``: origin-destination matrices per day.

``od_trips`` — trips between consecutive distinct zones per day (columns ``date, origin,
destination, count``; origin ≠ destination). A subscriber-day's events are ordered by time, runs
in the same zone collapse into stays, and each change of zone is one trip (see
:mod:`aggregation.extract`). At most ``max_trips_per_day`` trips per subscriber-day are kept, chosen
in keyed random order (not the first ones by time). Declared sensitivity (one subscriber-day):
l1 = l2 = linf = L (all kept trips may be the same ordered pair).

``od_connections`` — subscribers seen in both zones of an unordered pair on the same day (columns
``date, zone_a, zone_b, count``; zone_a < zone_b). The at most ``max_zones_per_day`` zones kept per
subscriber-day (the same keyed choice as ``presence``) give at most C(z, 2) pairs, each counted
once. Declared sensitivity: l1 = C(z, 2), l2 = sqrt(C(z, 2)), linf = 1.

``od_trips`` from GPS (``feed="gps"``) — moves between consecutive *stays* in distinct zones per
device-day: the stays of the device-day's fixes (:mod:`aggregation.gps_stays`, rule
:class:`schemas.gps.StayRule`), each in the zone of its fix nearest its centre, in time order; a
change of zone between consecutive stays is one trip (stays A, A, B make one trip A→B), departing
at nothing finer than the stays. Short stops (under the dwell time) and passing through are not
trips. The same bound and keyed choice as for CDR (at most L trips per device-day), so the unit
one device-day has the same declared sensitivity, l1 = l2 = linf = L.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.bounding import keep_trips, keep_zones
from aggregation.extract import gps_stays, staged_events, trips
from aggregation.indicators._days import release_days
from aggregation.sql import SqlPlan, sql

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest


def od_trips(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``od_trips`` (from CDR events or GPS stays)."""
    days, level = release_days(request), request.zones.level
    if request.feed == "gps":
        plan = gps_stays(SqlPlan(), "events", request.source, days, level, request.stay_rule)
    else:
        plan = staged_events(SqlPlan(), "events", request.source, days, level)
    plan = trips(plan, "events", "trips")
    plan = keep_trips(plan, "trips", "kept", limit=request.bounds.max_trips_per_day, key=key)
    plan = plan.with_cte(
        "contrib",
        sql("SELECT pseudonym, local_date AS date, origin, destination, 1 AS count FROM kept"),
    )
    return plan, "contrib"


def od_connections(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``od_connections``."""
    plan = staged_events(
        SqlPlan(), "events", request.source, release_days(request), request.zones.level
    )
    plan = keep_zones(plan, "events", "kept", limit=request.bounds.max_zones_per_day, key=key)
    plan = plan.with_cte(
        "contrib",
        sql("""SELECT a.pseudonym, a.local_date AS date, a.zone AS zone_a, b.zone AS zone_b,
    1 AS count
FROM kept a JOIN kept b
    ON a.pseudonym = b.pseudonym AND a.local_date = b.local_date AND a.zone < b.zone"""),
    )
    return plan, "contrib"
