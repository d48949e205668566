"""``presence``: unique subscribers seen per zone per day (present population).

Columns ``date, zone, count``; key set date × zone. A subscriber counts at most once per zone-day
and in at most ``z = max_zones_per_day`` zones a day, chosen in keyed random order
(:func:`aggregation.bounding.keep_zones`). Default ``z = 3``: home, work and one other place cover
most subscriber-days at admin2/admin3; each extra zone adds 1 to the l1.

From GPS (``feed="gps"``): unique *devices* with a fix in each zone per day: the device-day's
fixes accurate to the stay rule's ``max_accuracy_m`` (:class:`schemas.gps.StayRule`; or of
unknown accuracy) are its events, bounded exactly as above (at most z zones, keyed order of the
device's own zones). Unit: one device-day.

Per-unit bound (one subscriber-day or device-day, day-local): 1 in each of at most ``z``
distinct zones, ``B = (z, sqrt(z), 1)``; at most ``z`` keys. With the default, one release day:
l1 = 3, l2 = 1.73, linf = 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aggregation.bounding import keep_zones
from aggregation.extract import staged_events, staged_fixes
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
    """``B = (z, sqrt(z), 1)``: 1 in each of at most ``z`` distinct zones."""
    z = b.max_zones_per_day
    return {"count": Sensitivity(l1=z, l2=math.sqrt(z), linf=1)}


def contributions(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``presence`` (from CDR events or GPS fixes)."""
    days, level = release_days(request), request.zones.level
    if request.feed == "gps":
        accuracy = request.stay_rule.max_accuracy_m
        plan = staged_fixes(SqlPlan(), "events", request.source, days, level, accuracy)
    else:
        plan = staged_events(SqlPlan(), "events", request.source, days, level)
    plan = keep_zones(plan, "events", "kept", limit=request.bounds.max_zones_per_day, key=key)
    body = sql("SELECT pseudonym, local_date AS date, zone, 1 AS count FROM kept")
    return with_contributions(plan, body)


DEFINITION = IndicatorDefinition(
    SPECS[Indicator.PRESENCE], per_subscriber, lambda b: b.max_zones_per_day, contributions
)
