"""``od_trips``: trips between consecutive distinct zones per day (origin → destination).

Columns ``date, origin, destination, count``; key set date × ordered pair of zones
(origin ≠ destination). A subscriber-day's events are ordered by time, runs in the same zone
collapse into stays, and each change of zone is one trip (:func:`aggregation.extract.trips`:
events in zones A, A, B, A make the trips A→B and B→A).

Bound: at most ``L = max_trips_per_day`` trips per subscriber-day are kept, chosen in keyed random
order, not the first ones by time (:func:`aggregation.bounding.keep_trips`); each adds 1 to its
(origin, destination) cell. Default ``L = 4``: home→work→other→home is 3 trips; 4 keeps typical
days whole while the noise scale stays small; the keyed choice keeps the cut from favouring
morning trips.

From GPS (``feed="gps"``): moves between consecutive *stays* in distinct zones per device-day: the
stays of the device-day's fixes (:mod:`aggregation.gps_stays`, rule
:class:`schemas.gps.StayRule`), each in the zone of its fix nearest its centre, in time order; a
change of zone between consecutive stays is one trip (stays A, A, B make one trip A→B), departing
at nothing finer than the stays. Short stops (under the dwell time) and passing through are not
trips. The same bound and keyed choice (at most L trips per device-day).

Per-unit bound (one subscriber-day or device-day, day-local): ``B1 = L``. All ``L`` kept trips can
be the same ordered pair (A→B, B→A, A→B, … keeps A→B ``L`` times when the keyed choice falls that
way), so ``Binf = L`` and ``B2 = L``; at most ``L`` keys. With the default, one release day:
l1 = l2 = linf = 4.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.bounding import keep_trips
from aggregation.extract import gps_stays, staged_events, trips
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
    """``B = (L, L, L)``: all kept trips may be the same ordered pair."""
    n = b.max_trips_per_day
    return {"count": Sensitivity(l1=n, l2=float(n), linf=n)}


def contributions(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``od_trips`` (from CDR events or GPS stays)."""
    days, level = release_days(request), request.zones.level
    if request.feed == "gps":
        plan = gps_stays(SqlPlan(), "events", request.source, days, level, request.stay_rule)
    else:
        plan = staged_events(SqlPlan(), "events", request.source, days, level)
    plan = trips(plan, "events", "trips")
    plan = keep_trips(plan, "trips", "kept", limit=request.bounds.max_trips_per_day, key=key)
    return with_contributions(
        plan,
        sql("SELECT pseudonym, local_date AS date, origin, destination, 1 AS count FROM kept"),
    )


DEFINITION = IndicatorDefinition(
    SPECS[Indicator.OD_TRIPS], per_subscriber, lambda b: b.max_trips_per_day, contributions
)
