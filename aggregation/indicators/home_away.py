"""``home_away``: per release day and home zone, subscribers seen away from home that day.

Columns ``date, home_zone, count``; key set date × zone. The home comes from the home period (the
week of nights ending on the last day released, :data:`schemas.release.HOME_WINDOW_DAYS`;
:mod:`aggregation.indicators.homes`); a subscriber with a home adds 1 on a release day when they
were seen that day in any zone other than their home. No bound to set: at most 1 per day. From
CDR events only; CDR releases read the zones seen on a day from its day-zone summaries
(``AggregateRequest.day_zones``), the same rows.

Per-unit bound (one subscriber, per release day): 1 in the cell of their home zone,
``B = (1, 1, 1)``; one key per day. Home-based: a unit in the home period can move that 1 on
every release day, so l1 = 2·days, l2 = sqrt(2·days), linf = 1 (release one day at a time: 2,
1.41, 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.extract import staged_day_zones, staged_events
from aggregation.indicators._days import release_days
from aggregation.indicators.definition import IndicatorDefinition, one_key, with_contributions
from aggregation.indicators.homes import summaries, with_homes
from aggregation.sql import SqlPlan, sql
from schemas.indicators import SPECS, Indicator
from schemas.privacy import Sensitivity

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest
    from schemas.indicators import ContributionBounds


def per_subscriber(_: ContributionBounds) -> dict[str, Sensitivity]:
    """``B = (1, 1, 1)`` per release day: 1 in the cell of the home zone."""
    return {"count": Sensitivity(l1=1, l2=1.0, linf=1)}


def contributions(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``home_away``."""
    plan = with_homes(SqlPlan(), request, key)
    days, level = release_days(request), request.zones.level
    if request.day_zones:  # the zones seen on a day: those of its summary rows
        plan = staged_day_zones(plan, "day_events", summaries(request), days, level)
    else:
        plan = staged_events(plan, "day_events", request.source, days, level)
    return with_contributions(
        plan,
        sql("""SELECT e.pseudonym, e.local_date AS date, h.home_zone, 1 AS count
FROM day_events e JOIN homes h ON e.pseudonym = h.pseudonym
GROUP BY e.pseudonym, e.local_date, h.home_zone
HAVING bool_or(e.zone <> h.home_zone)"""),
    )


DEFINITION = IndicatorDefinition(SPECS[Indicator.HOME_AWAY], per_subscriber, one_key, contributions)
