"""``mobility_distance``: daily distance travelled per home zone, as a bounded sum and a count.

Columns ``date, home_zone, distance_m, subscribers``; key set date × zone. For each subscriber
with a home (:mod:`aggregation.indicators.homes`) seen on a release day: ``distance_m`` adds their
distance that day — the sum over their trips of the great-circle distance between the centroids
of ``distance_zones`` (admin3 for the finest measure), each trip rounded to whole metres —
clipped to [0, U] with U = ``max_distance_km`` · 1000; ``subscribers`` adds 1. The mean daily
distance of a home zone is ``noisy distance_m / noisy subscribers``: post-processing of the two
releases. Default ``max_distance_km = 100``: covers commutes; long-distance travel days are
clipped.

From GPS (``feed="gps"``): for each device with a home (the same rule over its accurate fixes of
the home period) and an accurate fix on a release day, ``distance_m`` adds the device-day's path
length through its fixes — each fix of a stay at the stay's centre, so a device at rest adds
nothing (:func:`aggregation.gps_stays.stays_and_paths`), whole metres — clipped to [0, U];
``subscribers`` adds 1 (a device). ``distance_zones`` are not used (paths run through the fixes).

CDR homes and distances may come from the day-zone summaries (``AggregateRequest.day_zones``):
each summary row carries its subscriber-day's distance, measured from the day's events in order
when the summary was made, with the centroids of ``distance_zones``. The same aggregate.

Per-unit bound (one subscriber-day or device-day): ``distance_m`` ``B = (U, U, U)``,
``subscribers`` ``B = (1, 1, 1)``, both in the one cell of the home zone. Home-based (a unit in
the home period can move the contribution to another home zone), each vector with its own
sensitivity, per release day: ``distance_m`` l1 = 2U, l2 = sqrt(2)·U, linf = U (200000, 141421,
100000 m with the default); ``subscribers`` l1 = 2, l2 = sqrt(2), linf = 1.

The indicator's ε is split 3/4 to ``distance_m`` and 1/4 to ``subscribers``, each a release of its
own charged its share (:attr:`schemas.indicators.IndicatorSpec.epsilon_shares`). Its useful output
is the mean distance per home zone, the ratio of the two noisy sums, whose relative variance is
(σ_D/D)² + (σ_N/N)² with σ_D ∝ U/ε_D and σ_N ∝ 1/ε_N. Minimising it for a fixed ε_D + ε_N gives
ε_D/ε_N = (U/d)^(2/3), with d the mean daily distance of a subscriber-day. In the demo country d is
19 km on a weekday before its lockdown and 6 km on one during it (``benchmarks/README.md``), so
the best ratio is 3.0 to 6.5: 3/4 and 1/4 is the optimum for ordinary days and costs 20 % more
variance (10 % wider intervals) during the lockdown. Lowering U instead would bias the mean: at
50 km a quarter of an ordinary day's distance is clipped away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.extract import daily_distances, gps_stays, staged_day_distances, staged_events
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


def per_subscriber(b: ContributionBounds) -> dict[str, Sensitivity]:
    """``distance_m``: ``B = (U, U, U)``; ``subscribers``: ``B = (1, 1, 1)``."""
    u = b.max_distance_m
    return {
        "distance_m": Sensitivity(l1=u, l2=float(u), linf=u),
        "subscribers": Sensitivity(l1=1, l2=1.0, linf=1),
    }


def contributions(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """Plan and name of the contributions CTE of ``mobility_distance``."""
    if request.feed == "gps":
        return _gps_distance(request, key)
    dz = request.centroid_zones
    plan = with_homes(SqlPlan(), request, key)
    days = release_days(request)
    if request.day_zones:  # measured once, when the day's summaries were made
        plan = staged_day_distances(plan, "dist", summaries(request), days, dz)
    else:
        plan = staged_events(
            plan, "day_events", request.source, days, request.zones.level, dz.level
        )
        # Distances only of subscribers with a home (the others are dropped below anyway): the
        # per-subscriber window over events is the costly part, and nobody else needs it.
        plan = plan.with_cte(
            "home_events",
            sql("SELECT * FROM day_events e SEMI JOIN homes h ON e.pseudonym = h.pseudonym"),
        )
        plan = daily_distances(plan, "home_events", "dist", dz)
    return _clipped(plan, request, "dist")


def _gps_distance(request: AggregateRequest, key: BoundingKey) -> tuple[SqlPlan, str]:
    """``mobility_distance`` from GPS: clipped path lengths of devices with a home."""
    plan = with_homes(SqlPlan(), request, key)
    days, level = release_days(request), request.zones.level
    plan = gps_stays(plan, "day", request.source, days, level, request.stay_rule)
    return _clipped(plan, request, "day_paths")


def _clipped(plan: SqlPlan, request: AggregateRequest, distances: str) -> tuple[SqlPlan, str]:
    """Each unit's daily distance of CTE ``distances`` clipped to [0, U] and 1, in its home cell."""
    body = sql(
        """SELECT d.pseudonym, d.local_date AS date, h.home_zone,
    least(d.distance_m, $max_distance_m) AS distance_m, 1 AS subscribers
FROM {distances} d JOIN homes h ON d.pseudonym = h.pseudonym""",
        distances=distances,
    )
    return with_contributions(plan, body, max_distance_m=request.bounds.max_distance_m)


DEFINITION = IndicatorDefinition(
    SPECS[Indicator.MOBILITY_DISTANCE], per_subscriber, one_key, contributions
)
