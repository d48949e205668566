"""Home zones, the common first step of the home-based indicators.

A subscriber's home over a period is the zone seen on the most distinct nights (20:00-07:00 local
by default), ties broken by keyed hash, with at least ``min_nights`` nights there
(:class:`schemas.indicators.HomeRule`); subscribers without a home are left out. A device's home
(GPS) is found by the same rule over its accurate fixes.

CDR releases read homes from the day-zone summaries of :mod:`aggregation.extract.day_zones`
(``AggregateRequest.day_zones``): one small file per day-shard instead of every event of the home
period, the same homes. Used by ``residents``, ``home_away``, ``relocations`` and
``mobility_distance``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.extract import (
    StagedSource,
    homes,
    homes_from_day_zones,
    staged_day_zones,
    staged_events,
    staged_fixes,
)
from aggregation.indicators._days import home_period
from schemas.errors import InternalError

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest
    from aggregation.sql import SqlPlan
    from schemas.indicators import Period


def summaries(request: AggregateRequest) -> StagedSource:
    """The staged directory whose day-zone summaries ``request`` reads."""
    if not isinstance(request.source, StagedSource):  # refused by AggregateRequest already
        msg = f"{request.indicator}: day-zone summaries need a staged directory."
        raise InternalError(msg)
    return request.source


def with_homes(
    plan: SqlPlan,
    request: AggregateRequest,
    key: BoundingKey,
    out: str = "homes",
    period: Period | None = None,
) -> SqlPlan:
    """``plan`` with CTE ``out``: home zones over ``period`` (default: the request's home period),
    of devices from their accurate fixes for GPS requests (the same rule over the same hours),
    from the day-zone summaries when the request says so (the same homes)."""
    events = f"{out}_events"
    period = period or home_period(request)
    level = request.zones.level
    if request.day_zones:
        plan = staged_day_zones(plan, events, summaries(request), period, level)
        return homes_from_day_zones(plan, events, out, request.home_rule, key)
    if request.feed == "gps":
        accuracy = request.stay_rule.max_accuracy_m
        plan = staged_fixes(plan, events, request.source, period, level, accuracy)
    else:
        plan = staged_events(plan, events, request.source, period, level)
    return homes(plan, events, out, request.home_rule, key)
