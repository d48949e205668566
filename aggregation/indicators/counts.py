"""``event_counts`` and ``presence``: activity and present population per zone and day.

``event_counts`` — events per zone per local hour per day (columns ``date, zone, hour, count``).
Each subscriber-day keeps at most ``max_events_per_zone_hour`` events in any (zone, hour) cell
and at most ``max_events_per_day`` events in all: whole cells in keyed random order, the cell that
crosses the day cap in part (:func:`aggregation.bounding.cap_events`); every kept event adds 1.
Declared sensitivity (one subscriber-day): l1 = M, linf = min(M, c),
l2 = sqrt(⌊M/c⌋·c² + (M mod c)²).

``presence`` — unique subscribers seen per zone per day (columns ``date, zone, count``). A
subscriber counts at most once per zone-day and in at most ``max_zones_per_day`` zones a day,
chosen in keyed random order. Declared sensitivity: l1 = z, l2 = sqrt(z), linf = 1.

``presence`` from GPS (``feed="gps"``) — unique *devices* with a fix in each zone per day: the
device-day's fixes accurate to the stay rule's ``max_accuracy_m`` (or of unknown accuracy) are
its events, bounded exactly as above (at most z zones, keyed order of the device's own zones).
Unit: one device-day; declared sensitivity the same, l1 = z, l2 = sqrt(z), linf = 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.bounding import cap_events, keep_zones
from aggregation.extract import staged_events, staged_fixes
from aggregation.indicators._days import release_days
from aggregation.sql import SqlPlan, sql

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest


def event_counts(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``event_counts``."""
    b = request.bounds
    plan = staged_events(
        SqlPlan(), "events", request.source, release_days(request), request.zones.level
    )
    plan = cap_events(
        plan,
        "events",
        "kept",
        per_zone_hour=b.max_events_per_zone_hour,
        per_day=b.max_events_per_day,
        key=key,
    )
    plan = plan.with_cte(
        "contrib",
        sql("SELECT pseudonym, local_date AS date, zone, local_hour AS hour, n AS count FROM kept"),
    )
    return plan, "contrib"


def presence(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``presence`` (from CDR events or GPS fixes)."""
    days, level = release_days(request), request.zones.level
    if request.feed == "gps":
        accuracy = request.stay_rule.max_accuracy_m
        plan = staged_fixes(SqlPlan(), "events", request.source, days, level, accuracy)
    else:
        plan = staged_events(SqlPlan(), "events", request.source, days, level)
    plan = keep_zones(plan, "events", "kept", limit=request.bounds.max_zones_per_day, key=key)
    plan = plan.with_cte(
        "contrib",
        sql("SELECT pseudonym, local_date AS date, zone, 1 AS count FROM kept"),
    )
    return plan, "contrib"
