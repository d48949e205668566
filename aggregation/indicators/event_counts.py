"""``event_counts``: events per zone per local hour per day (activity).

Columns ``date, zone, hour, count``; key set date × zone × hour (every zone of the level, hours
0-23). From CDR events only.

Bounds: each subscriber-day keeps at most ``c = max_events_per_zone_hour`` events in any
(zone, hour) cell and at most ``M = max_events_per_day`` events in all: whole cells in keyed random
order, the cell that crosses the day cap in part (:func:`aggregation.bounding.cap_events`); every
kept event adds 1. Defaults: ``c = 4``, a subscriber makes a handful of CDR events in one hour;
bursts beyond 4 are mostly data sessions re-opened every few minutes and say little about how
many people were there (caps the change of one cell). ``M = 20``: the median subscriber-day in
CDR has well under 20 events, so the cap trims the heavy tail only; the noise scale grows
linearly with it.

Per-unit bound (one subscriber-day, day-local): ``B1 = M``; ``Binf = min(M, c)``. The largest
``|c|_2`` with total ``M`` and cells ``<= c`` puts ``c`` in ``q = M // c`` cells and the remainder
``r = M % c`` in one more: ``B2 = sqrt(q*c^2 + r^2)`` (convexity: concentrating mass maximises the
sum of squares). One unit touches at most ``M`` keys. With the defaults, one release day:
l1 = 20, l2 = 8.94, linf = 4.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aggregation.bounding import cap_events
from aggregation.extract import staged_events
from aggregation.indicators._days import release_days
from aggregation.indicators.definition import IndicatorDefinition, with_contributions
from aggregation.sql import SqlPlan, sql
from schemas.indicators import SPECS, Indicator
from schemas.privacy import Sensitivity

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest
    from schemas.indicators import ContributionBounds


def per_subscriber(b: ContributionBounds) -> dict[str, Sensitivity]:
    """``B = (M, sqrt(q*c^2 + r^2), min(M, c))`` (module docstring)."""
    cap = min(b.max_events_per_zone_hour, b.max_events_per_day)
    q, r = divmod(b.max_events_per_day, cap)
    return {
        "count": Sensitivity(l1=b.max_events_per_day, l2=math.sqrt(q * cap * cap + r * r), linf=cap)
    }


def contributions(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
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
    return with_contributions(
        plan,
        sql("SELECT pseudonym, local_date AS date, zone, local_hour AS hour, n AS count FROM kept"),
    )


DEFINITION = IndicatorDefinition(
    SPECS[Indicator.EVENT_COUNTS], per_subscriber, lambda b: b.max_events_per_day, contributions
)
