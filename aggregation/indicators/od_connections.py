"""``od_connections``: subscribers seen in both zones of an unordered pair on the same day.

Columns ``date, zone_a, zone_b, count``; key set date × unordered pair of zones
(zone_a < zone_b). From CDR events only.

Bound: the at most ``z = max_zones_per_day`` zones kept per subscriber-day (the same keyed choice
as ``presence``, :func:`aggregation.bounding.keep_zones`) give at most ``C(z, 2)`` pairs, each
counted once. Default ``z = 3`` (see ``presence``); each extra zone adds ``z`` pairs to the l1.
Needs ``z >= 2`` (:attr:`schemas.indicators.IndicatorSpec.min_bounds`): with one zone a day
there is no pair to count.

Per-unit bound (one subscriber-day, day-local): 1 for each unordered pair of the kept zones,
``B = (C(z, 2), sqrt(C(z, 2)), 1)``; at most ``C(z, 2)`` keys. With the default, one release
day: l1 = 3, l2 = 1.73, linf = 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aggregation.bounding import keep_zones
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


def _pairs(b: ContributionBounds) -> int:
    return math.comb(b.max_zones_per_day, 2)


def per_subscriber(b: ContributionBounds) -> dict[str, Sensitivity]:
    """``B = (C(z, 2), sqrt(C(z, 2)), 1)``: 1 for each pair of the kept zones."""
    pairs = _pairs(b)
    return {"count": Sensitivity(l1=pairs, l2=math.sqrt(pairs), linf=1)}


def contributions(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``od_connections``."""
    plan = staged_events(
        SqlPlan(), "events", request.source, release_days(request), request.zones.level
    )
    plan = keep_zones(plan, "events", "kept", limit=request.bounds.max_zones_per_day, key=key)
    return with_contributions(
        plan,
        sql("""SELECT a.pseudonym, a.local_date AS date, a.zone AS zone_a, b.zone AS zone_b,
    1 AS count
FROM kept a JOIN kept b
    ON a.pseudonym = b.pseudonym AND a.local_date = b.local_date AND a.zone < b.zone"""),
    )


DEFINITION = IndicatorDefinition(
    SPECS[Indicator.OD_CONNECTIONS], per_subscriber, _pairs, contributions
)
