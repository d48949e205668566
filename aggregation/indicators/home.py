"""Home-based indicators: ``residents``, ``home_away`` and ``relocations``.

A subscriber's home over a period is the zone seen on the most distinct nights (20:00-07:00 local
by default), ties broken by keyed hash, with at least ``min_nights`` nights there
(:class:`schemas.indicators.HomeRule`); subscribers without a home are left out.

``residents`` — subscribers per home zone over the home period (columns ``home_zone, count``).
Each subscriber counts once. One subscriber-day can move a subscriber's home, so under
add/remove-one-subscriber-day the declared sensitivity is l1 = 2, l2 = sqrt(2), linf = 1; the
release reads, and the ledger charges, every day of the period.

``home_away`` — per release day and home zone, subscribers seen that day in any zone other than
their home (columns ``date, home_zone, count``); the home comes from the home period (e.g. the
previous month). Each subscriber adds at most 1 per day; a unit in the home period can move that
1 on every release day: l1 = 2·days, l2 = sqrt(2·days), linf = 1. Release one day at a time.

``relocations`` — subscribers whose home changed between the previous home period and the home
period (columns ``origin, destination, count``; origin ≠ destination). Each subscriber adds at
most 1 pair: l1 = 2, l2 = sqrt(2), linf = 1.

CDR releases read homes (and ``home_away`` the zones seen on its days) from the day-zone
summaries of :mod:`aggregation.extract.day_zones` (``AggregateRequest.day_zones``): one small file
per day-shard instead of every event of the home period, the same aggregate row for row.
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
from aggregation.indicators._days import home_period, previous_home_period, release_days
from aggregation.sql import SqlPlan, sql
from schemas.errors import InternalError

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest
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


def residents(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``residents``."""
    plan = with_homes(SqlPlan(), request, key)
    plan = plan.with_cte("contrib", sql("SELECT pseudonym, home_zone, 1 AS count FROM homes"))
    return plan, "contrib"


def home_away(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``home_away``."""
    plan = with_homes(SqlPlan(), request, key)
    days, level = release_days(request), request.zones.level
    if request.day_zones:  # the zones seen on a day: those of its summary rows
        plan = staged_day_zones(plan, "day_events", summaries(request), days, level)
    else:
        plan = staged_events(plan, "day_events", request.source, days, level)
    plan = plan.with_cte(
        "contrib",
        sql("""SELECT e.pseudonym, e.local_date AS date, h.home_zone, 1 AS count
FROM day_events e JOIN homes h ON e.pseudonym = h.pseudonym
GROUP BY e.pseudonym, e.local_date, h.home_zone
HAVING bool_or(e.zone <> h.home_zone)"""),
    )
    return plan, "contrib"


def relocations(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``relocations``."""
    plan = with_homes(SqlPlan(), request, key)
    plan = with_homes(plan, request, key, "prev_homes", previous_home_period(request))
    plan = plan.with_cte(
        "contrib",
        sql("""SELECT p.pseudonym, p.home_zone AS origin, h.home_zone AS destination, 1 AS count
FROM prev_homes p JOIN homes h ON p.pseudonym = h.pseudonym
WHERE p.home_zone <> h.home_zone"""),
    )
    return plan, "contrib"
