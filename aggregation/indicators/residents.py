"""``residents``: subscribers per home zone over a period (home: modal night-time zone).

Columns ``home_zone, count``; key set zone (no date: one vector for the period). Each subscriber
with a home over the home period (:mod:`aggregation.indicators.homes`) adds 1 to their home zone's
cell; subscribers without a home are left out. No bound to set: one home per subscriber. The
release reads, and the ledger charges, every day of the period. From CDR events only.

Per-unit bound (one subscriber over the period): 1 in the cell of their home zone,
``B = (1, 1, 1)``; one key. Home-based: one subscriber-day of the period can move the home to
another zone, so l1 = 2, l2 = sqrt(2) = 1.41, linf = 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    """``B = (1, 1, 1)``: 1 in the cell of the home zone."""
    return {"count": Sensitivity(l1=1, l2=1.0, linf=1)}


def contributions(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``residents``."""
    plan = with_homes(SqlPlan(), request, key)
    return with_contributions(plan, sql("SELECT pseudonym, home_zone, 1 AS count FROM homes"))


DEFINITION = IndicatorDefinition(SPECS[Indicator.RESIDENTS], per_subscriber, one_key, contributions)
