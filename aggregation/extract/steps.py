"""The building blocks of CDR extraction: each adds a named CTE to an :class:`SqlPlan`.

Staged CDR events, zone changes, trips, stays, home zones, zone centroids and daily distances,
as defined in :mod:`aggregation.extract`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.extract.source import level_column
from aggregation.sql import Sql, SqlPlan, keyed_order, sql
from schemas.errors import InternalError

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey
    from aggregation.extract.source import EventSource
    from schemas.geography import AdminLevel
    from schemas.indicators import HomeRule, Period, ZoneSet

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG) used for great-circle distances between zone centroids."""

_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pseudonym", "VARCHAR"),
    ("event_time", "TIMESTAMPTZ"),
    ("local_date", "DATE"),
    ("local_hour", "TINYINT"),
    ("source", "VARCHAR"),
    ("event_type", "VARCHAR"),
    ("cell_id", "VARCHAR"),
)


def staged_events(
    plan: SqlPlan,
    out: str,
    source: EventSource,
    period: Period,
    level: AdminLevel,
    distance_level: AdminLevel | None = None,
) -> SqlPlan:
    """Add CTE ``out``: staged CDR events of ``period`` with the level's zone as ``zone``.

    Only CDR events count: app GPS fixes are staged under device pseudonyms, a different
    identifier space, so mixing them in would make one person two privacy units.

    Columns: the staged columns ``pseudonym, event_time, local_date, local_hour, source,
    event_type, cell_id``, ``zone`` (zone at ``level``) and, when ``distance_level`` is given,
    ``dzone`` (zone at that level, for distances). Without any file the CTE is empty but typed.
    """
    zones = [("zone", level_column(level))]
    if distance_level is not None:
        zones.append(("dzone", level_column(distance_level)))
    files = source.files_for(period.days())
    if not files:
        typed = [sql("CAST(NULL AS {t}) AS {n}", t=t, n=n) for n, t in _EVENT_COLUMNS]
        typed += [sql("CAST(NULL AS VARCHAR) AS {n}", n=n) for n, _ in zones]
        return plan.with_cte(out, sql("SELECT {cols} WHERE false", cols=typed))
    cols = [Sql(n) for n, _ in _EVENT_COLUMNS]
    cols += [sql("{c} AS {n}", c=c, n=n) for n, c in zones]
    body = sql(
        """SELECT {cols}
FROM read_parquet(${out}_files, hive_partitioning = false)
WHERE local_date BETWEEN ${out}_start AND ${out}_end AND source = 'cdr'""",
        cols=cols,
        out=out,
    )
    params = {f"{out}_files": files, f"{out}_start": period.start, f"{out}_end": period.end}
    return plan.with_cte(out, body, **params)


def zone_changes(plan: SqlPlan, src: str, out: str, zone: str = "zone") -> SqlPlan:
    """Add CTE ``out``: every event of ``src`` with the previous zone of its subscriber-day.

    Columns: ``pseudonym, local_date, event_time, zone, prev_zone, prev_time`` (``prev_*`` null for
    the day's first event). ``zone`` names the zone column of ``src`` to follow.
    """
    body = sql(
        """SELECT pseudonym, local_date, event_time, {zone} AS zone,
    lag({zone}) OVER w AS prev_zone, lag(event_time) OVER w AS prev_time
FROM {src}
WINDOW w AS (PARTITION BY pseudonym, local_date ORDER BY event_time, {zone})""",
        zone=zone,
        src=src,
    )
    return plan.with_cte(out, body)


def trips(plan: SqlPlan, src: str, out: str, zone: str = "zone") -> SqlPlan:
    """Add CTEs ``out`` (trips) and ``out_changes``: consecutive distinct zones of ``src``.

    Columns: ``pseudonym, local_date, origin, destination, depart_time, arrival_time``.

    Only subscriber-days seen in two zones or more can have a trip, so the ordered window (a sort,
    the costly part) runs over their events only (``out_moving``); the others are found by one
    hash aggregation. Same trips, and most subscriber-days stay in one zone.
    """
    body = sql(
        """SELECT s.* FROM {src} s SEMI JOIN (
    SELECT pseudonym, local_date FROM {src}
    GROUP BY pseudonym, local_date
    HAVING min({zone}) <> max({zone})
) m USING (pseudonym, local_date)""",
        src=src,
        zone=zone,
    )
    plan = plan.with_cte(f"{out}_moving", body)
    plan = zone_changes(plan, f"{out}_moving", f"{out}_changes", zone)
    body = sql(
        """SELECT pseudonym, local_date, prev_zone AS origin, zone AS destination,
    prev_time AS depart_time, event_time AS arrival_time
FROM {out}_changes
WHERE prev_zone <> zone""",
        out=out,
    )
    return plan.with_cte(out, body)


def stays(plan: SqlPlan, src: str, out: str) -> SqlPlan:
    """Add CTEs ``out`` (stays) and ``out_changes``: maximal same-zone runs of each subscriber-day.

    Columns: ``pseudonym, local_date, seq, zone, start_time, end_time, n_events``; ``start_time``
    and ``end_time`` are the first and last event of the run.
    """
    plan = zone_changes(plan, src, f"{out}_changes")
    body = sql(
        """SELECT pseudonym, local_date, seq, any_value(zone) AS zone,
    min(event_time) AS start_time, max(event_time) AS end_time, count(*) AS n_events
FROM (
    SELECT *, CAST(sum(CASE WHEN prev_zone IS NULL OR prev_zone = zone THEN 0 ELSE 1 END) OVER (
        PARTITION BY pseudonym, local_date ORDER BY event_time, zone
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS INTEGER) AS seq
    FROM {out}_changes
)
GROUP BY pseudonym, local_date, seq""",
        out=out,
    )
    return plan.with_cte(out, body)


def homes(plan: SqlPlan, src: str, out: str, rule: HomeRule, key: BoundingKey) -> SqlPlan:
    """Add CTEs ``out`` (home zones) and ``out_nights``: each subscriber's home over ``src``.

    ``src`` holds the events of the home period. Columns: ``pseudonym, home_zone, n_nights``
    (distinct nights seen in the home zone); subscribers without a home are absent. Filtering on
    ``min_nights`` before ranking gives the same home as ranking first: only the top zone matters.
    """
    nights = sql(
        """SELECT DISTINCT pseudonym, zone,
    local_date - CAST(list_contains(${out}_morning, local_hour) AS INTEGER) AS night
FROM {src}
WHERE list_contains(${out}_evening, local_hour) OR list_contains(${out}_morning, local_hour)""",
        out=out,
        src=src,
    )
    hours = {f"{out}_evening": list(rule.evening_hours), f"{out}_morning": list(rule.morning_hours)}
    plan = plan.with_cte(f"{out}_nights", nights, **hours)
    return home_of_nights(plan, out, rule, key)


def home_of_nights(plan: SqlPlan, out: str, rule: HomeRule, key: BoundingKey) -> SqlPlan:
    """Add CTE ``out``: each subscriber's home from CTE ``out_nights`` (``pseudonym, zone,
    night``: the distinct nights each subscriber was seen in each zone), as :func:`homes`."""
    body = sql(
        """SELECT pseudonym, zone AS home_zone, n_nights
FROM (SELECT pseudonym, zone, count(*) AS n_nights FROM {out}_nights GROUP BY pseudonym, zone)
WHERE n_nights >= ${out}_min_nights
QUALIFY row_number() OVER (PARTITION BY pseudonym ORDER BY n_nights DESC, {order}) = 1""",
        out=out,
        order=keyed_order("pseudonym", "zone"),
    )
    params = {f"{out}_min_nights": rule.min_nights, "salt": key.sql_value}
    return plan.with_cte(out, body, **params)


def centroids(plan: SqlPlan, out: str, zones: ZoneSet) -> SqlPlan:
    """Add CTE ``out``: ``zone, lat, lon`` of every zone of ``zones`` (they need centroids)."""
    if zones.centroids is None:
        msg = f"The {zones.level} zone set has no centroids; distances need them."
        raise InternalError(msg)
    body = sql(
        "SELECT unnest(${out}_ids) AS zone, unnest(${out}_lat) AS lat, unnest(${out}_lon) AS lon",
        out=out,
    )
    params = {
        f"{out}_ids": list(zones.zone_ids),
        f"{out}_lat": [c[0] for c in zones.centroids],
        f"{out}_lon": [c[1] for c in zones.centroids],
    }
    return plan.with_cte(out, body, **params)


def daily_distances(plan: SqlPlan, src: str, out: str, zones: ZoneSet) -> SqlPlan:
    """Add CTE ``out`` (and helpers ``out_*``): metres travelled per subscriber-day of ``src``.

    Follows the ``dzone`` column of ``src`` (zones of ``zones.level``). Columns: ``pseudonym,
    local_date, distance_m`` (BIGINT, unclipped), one row per subscriber-day seen, 0 without trips.
    """
    plan = centroids(plan, f"{out}_centroids", zones)
    plan = trips(plan, src, f"{out}_trips", zone="dzone")
    legs = sql(
        """SELECT t.pseudonym, t.local_date, CAST(round(2000 * $earth_radius_km * asin(sqrt(
        pow(sin(radians(b.lat - a.lat) / 2), 2)
        + cos(radians(a.lat)) * cos(radians(b.lat)) * pow(sin(radians(b.lon - a.lon) / 2), 2)
    ))) AS BIGINT) AS metres
FROM {out}_trips t
JOIN {out}_centroids a ON a.zone = t.origin
JOIN {out}_centroids b ON b.zone = t.destination""",
        out=out,
    )
    plan = plan.with_cte(f"{out}_legs", legs, earth_radius_km=EARTH_RADIUS_KM)
    body = sql(
        """SELECT d.pseudonym, d.local_date,
    CAST(coalesce(sum(l.metres), 0) AS BIGINT) AS distance_m
FROM (SELECT DISTINCT pseudonym, local_date FROM {src}) d
LEFT JOIN {out}_legs l ON l.pseudonym = d.pseudonym AND l.local_date = d.local_date
GROUP BY d.pseudonym, d.local_date""",
        out=out,
        src=src,
    )
    return plan.with_cte(out, body)
