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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.extract import homes, staged_events, staged_fixes
from aggregation.indicators._days import home_period, previous_home_period, release_days
from aggregation.sql import SqlPlan, sql

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest


def with_homes(
    plan: SqlPlan, request: AggregateRequest, key: BoundingKey, out: str = "homes"
) -> SqlPlan:
    """``plan`` with CTE ``out``: home zones over the request's home period (of devices, from
    their accurate fixes, for GPS requests: the same rule over the same hours)."""
    events = f"{out}_events"
    period, level = home_period(request), request.zones.level
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
    plan = staged_events(
        plan, "day_events", request.source, release_days(request), request.zones.level
    )
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
    plan = staged_events(
        plan, "prev_events", request.source, previous_home_period(request), request.zones.level
    )
    plan = homes(plan, "prev_events", "prev_homes", request.home_rule, key)
    plan = plan.with_cte(
        "contrib",
        sql("""SELECT p.pseudonym, p.home_zone AS origin, h.home_zone AS destination, 1 AS count
FROM prev_homes p JOIN homes h ON p.pseudonym = h.pseudonym
WHERE p.home_zone <> h.home_zone"""),
    )
    return plan, "contrib"
