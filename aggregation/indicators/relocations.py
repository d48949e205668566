"""``relocations``: subscribers whose home zone changed between two periods.

Columns ``origin, destination, count``; key set ordered pair of zones (origin ≠ destination; no
date). A subscriber with a home over both the previous home period and the home period (the
later one; :mod:`aggregation.indicators.homes`), in different zones, adds 1 to the pair
(previous home → home). No bound to set: one pair per subscriber. The release reads, and the
ledger charges, every day of both periods. From CDR events only.

Per-unit bound (one subscriber over the two periods): 1 in one pair's cell, ``B = (1, 1, 1)``;
one key. Home-based: one subscriber-day can move either home, so l1 = 2, l2 = sqrt(2) = 1.41,
linf = 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.indicators._days import previous_home_period
from aggregation.indicators.definition import IndicatorDefinition, one_key, with_contributions
from aggregation.indicators.homes import with_homes
from aggregation.sql import SqlPlan, sql
from schemas.indicators import SPECS, Indicator
from schemas.privacy import Sensitivity

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest
    from schemas.indicators import ContributionBounds


def per_subscriber(_: ContributionBounds) -> dict[str, Sensitivity]:
    """``B = (1, 1, 1)``: 1 in the cell of the (previous home, home) pair."""
    return {"count": Sensitivity(l1=1, l2=1.0, linf=1)}


def contributions(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``relocations``."""
    plan = with_homes(SqlPlan(), request, key)
    plan = with_homes(plan, request, key, "prev_homes", previous_home_period(request))
    return with_contributions(
        plan,
        sql("""SELECT p.pseudonym, p.home_zone AS origin, h.home_zone AS destination, 1 AS count
FROM prev_homes p JOIN homes h ON p.pseudonym = h.pseudonym
WHERE p.home_zone <> h.home_zone"""),
    )


DEFINITION = IndicatorDefinition(
    SPECS[Indicator.RELOCATIONS], per_subscriber, one_key, contributions
)
