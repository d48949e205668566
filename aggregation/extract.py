"""Extract: from staged events to per-subscriber-day stays, trips, home zones and distances.

Everything here is a building block of one DuckDB query: each function adds a named common table
expression (CTE) to an :class:`SqlPlan`, so an indicator runs all of its per-event work as a single
query (window functions over ``pseudonym, local_date``), and values are always bound parameters.
The ``*_frame`` functions at the end run such a plan on its own and return a Polars frame, for
tests, debugging and documentation. Queries never hold a value in their text: SQL is assembled by
:func:`sql` from literals and checked identifiers, and values are ``$name`` parameters.

Definitions (at the admin level of the zone set; the local calendar day is the day):

* **zone sequence**: a subscriber-day's events ordered by ``event_time`` (ties by zone).
* **stay**: a maximal run of consecutive events in the same zone (``seq`` from 0).
* **trip**: a change of zone between two consecutive events of the same subscriber-day,
  ``origin → destination`` with ``origin != destination``. A day with stays A, B, A has trips
  A→B and B→A. Trips never span midnight: the first event of a day starts a stay, not a trip.
  ``depart_time`` is the last event in the origin, ``arrival_time`` the first in the destination.
* **home zone** over a period: see :class:`schemas.indicators.HomeRule` (modal zone over distinct
  nights, keyed tie-break, minimum number of nights).
* **daily distance**: the sum over a subscriber-day's trips of the great-circle distance between
  the centroids of origin and destination (spherical Earth, R = 6371.0088 km), each trip rounded
  to whole metres so sums are exact integers. A zone without a centroid adds 0.

App GPS fixes (the ``staged_fixes`` sidecar, :data:`schemas.staged.STAGED_FIXES`) are read by
:func:`staged_fixes` (fixes as events: pseudonym, times, zone) and :func:`gps_stays` (stays and
path lengths per device-day, found by :mod:`aggregation.gps_stays` in Python and handed to the
query as registered relations, :meth:`SqlPlan.with_relation`). A device-day is then the unit a
subscriber-day is for CDR.
"""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, LiteralString, Protocol

import duckdb
import polars as pl

from schemas.errors import InternalError
from schemas.geography import ADMIN_LEVELS, AdminLevel

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from datetime import date
    from pathlib import Path

    from aggregation.bounding import BoundingKey
    from schemas.gps import StayRule
    from schemas.indicators import HomeRule, Period, ZoneSet

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG) used for great-circle distances between zone centroids."""

_SHARD_DIR = re.compile(r"^shard=(\d+)$")


# --- where staged events are -----------------------------------------------------------------


class EventSource(Protocol):
    """Where the staged events (contract ``staged_events``) of given days are."""

    def files_for(self, days: Iterable[date]) -> list[str]:
        """The Parquet files that may hold events of ``days`` (sorted, possibly empty)."""
        ...


@dataclass(frozen=True, slots=True)
class StagedSource:
    """The staged directory ``root/date=YYYY-MM-DD/shard=NNN/*.parquet`` written by ingest.

    ``shards`` restricts reading to those shards (a distributed run computes each shard where it
    lies; every shard holds whole subscribers, so per-shard aggregates add up exactly).
    """

    root: Path
    shards: frozenset[int] | None = None

    def files_for(self, days: Iterable[date]) -> list[str]:
        """Every staged Parquet file of ``days`` in the selected shards."""
        found: list[str] = []
        for day in sorted(set(days)):
            day_dir = self.root / f"date={day.isoformat()}"
            for shard_dir in sorted(day_dir.glob("shard=*")):
                m = _SHARD_DIR.match(shard_dir.name)
                if m is None or (self.shards is not None and int(m.group(1)) not in self.shards):
                    continue
                found.extend(str(p) for p in sorted(shard_dir.glob("*.parquet")))
        return found

    def missing_days(self, days: Iterable[date]) -> list[date]:
        """Days of ``days`` with no staged file at all (e.g. not ingested yet)."""
        return [d for d in sorted(set(days)) if not self.files_for([d])]


@dataclass(frozen=True, slots=True)
class StagedFiles:
    """An explicit list of staged Parquet files; rows are still filtered by ``local_date``."""

    paths: tuple[str, ...]

    def files_for(self, days: Iterable[date]) -> list[str]:  # noqa: ARG002 - same for every day
        """All the files: which days they hold is decided by their ``local_date`` column."""
        return sorted(self.paths)


# --- a query as named CTEs with bound parameters ---------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Sql(str):
    """SQL text assembled only from this code's literals, checked identifiers and other ``Sql``."""

    __slots__ = ()


def _part(value: str) -> str:
    if isinstance(value, Sql):
        return value
    if not _IDENTIFIER.match(value):
        msg = f"{value!r} is not a plain SQL identifier; values must be bound parameters."
        raise InternalError(msg)
    return value


def sql(template: LiteralString, **parts: str | Sequence[str]) -> Sql:
    """``template`` with its ``{name}`` fields filled by ``parts``.

    Each part is an :class:`Sql` fragment, a plain identifier (checked), or a sequence of those
    (joined with ``", "``). Values never go into the text: they are ``$name`` parameters.
    """
    filled = {
        name: _part(p) if isinstance(p, str) else ", ".join(_part(x) for x in p)
        for name, p in parts.items()
    }
    return Sql(template.format(**filled))


def keyed_order(*columns: str) -> Sql:
    """An ``ORDER BY`` list: ``hash($salt, columns…)``, then ``columns`` as tie-breaks.

    The keyed random order of :mod:`aggregation.bounding`; it also breaks ties between home zones.
    """
    return sql("hash($salt, {cols}), {cols}", cols=columns)


@dataclass(frozen=True, slots=True)
class SqlPlan:
    """A query under construction: named CTEs, in order, and the parameter values they bind."""

    ctes: tuple[tuple[str, Sql], ...] = ()
    params: Mapping[str, object] = field(default_factory=dict)
    relations: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    """Frames the query reads by name (computed outside SQL: GPS stays), registered on the
    connection while the query runs."""

    def with_relation(self, name: str, frame: pl.DataFrame) -> SqlPlan:
        """This plan with the frame ``frame`` readable as the table ``name``."""
        _part(name)
        if name in self.relations or any(n == name for n, _ in self.ctes):
            msg = f"Relation {name!r} is defined twice in one plan."
            raise InternalError(msg)
        return SqlPlan(self.ctes, self.params, {**self.relations, name: frame})

    def with_cte(self, name: str, body: Sql, **params: object) -> SqlPlan:
        """This plan with one more CTE ``name`` and the parameters its ``body`` binds."""
        _part(name)
        if any(n == name for n, _ in self.ctes):
            msg = f"CTE {name!r} is defined twice in one plan."
            raise InternalError(msg)
        merged = dict(self.params)
        for k, v in params.items():
            if k in merged and merged[k] != v:
                msg = f"Parameter ${k} is bound to two different values in one plan."
                raise InternalError(msg)
            merged[k] = v
        return SqlPlan((*self.ctes, (name, body)), merged, self.relations)

    def text(self, select: Sql) -> str:
        """The full query text: the CTEs, then ``select``."""
        if not self.ctes:
            return select
        ctes = ",\n".join(f"{n} AS (\n{b}\n)" for n, b in self.ctes)
        return f"WITH {ctes}\n{select}"

    def to_polars(self, select: Sql, con: duckdb.DuckDBPyConnection | None = None) -> pl.DataFrame:
        """Run the plan finished by ``select`` on ``con`` (a fresh connection when omitted)."""
        with connection(con) as c:
            for name, rel in self.relations.items():
                c.register(name, rel.to_arrow())
            try:
                frame: pl.DataFrame = c.sql(
                    self.text(select), params=dict(self.params) or None
                ).pl()
            finally:
                for name in self.relations:
                    c.unregister(name)
            return frame


@contextmanager
def connection(con: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """``con`` itself, or a fresh in-memory DuckDB connection closed on exit."""
    if con is not None:
        yield con
        return
    own = duckdb.connect()
    try:
        yield own
    finally:
        own.close()


@contextmanager
def bounded_connection(
    memory_limit_mb: int, spill_dir: Path, *, preserve_insertion_order: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory DuckDB connection that spills to ``spill_dir`` beyond the memory limit.

    ``spill_dir`` is created, and removed with what DuckDB spilled into it when the connection
    closes (use a directory of this process alone). Queries whose result order does not matter
    may drop ``preserve_insertion_order`` to save memory.
    """
    spill_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": f"{memory_limit_mb}MB",
        "temp_directory": str(spill_dir),
        "preserve_insertion_order": preserve_insertion_order,
    }
    try:
        with duckdb.connect(config=config) as con:
            yield con
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)


def level_column(level: AdminLevel) -> str:
    """The staged column holding zones of ``level`` (checked: it goes into SQL text)."""
    if level not in ADMIN_LEVELS:
        msg = f"Admin level {level!r} is not one of {list(ADMIN_LEVELS)}."
        raise InternalError(msg)
    return level


# --- building blocks ---------------------------------------------------------------------------

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


_FIX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pseudonym", "VARCHAR"),
    ("event_time", "TIMESTAMPTZ"),
    ("local_date", "DATE"),
    ("local_hour", "TINYINT"),
    ("lat", "DOUBLE"),
    ("lon", "DOUBLE"),
    ("accuracy_m", "FLOAT"),
)


def staged_fixes(
    plan: SqlPlan,
    out: str,
    source: EventSource,
    period: Period,
    level: AdminLevel,
    max_accuracy_m: float,
) -> SqlPlan:
    """Add CTE ``out``: the staged GPS fixes of ``period`` accurate to ``max_accuracy_m`` (or
    of unknown accuracy, as the stay rule takes them), with the level's zone as ``zone``.

    ``source`` lists fixes files (``staged/_fixes``, contract ``staged_fixes``). Columns:
    ``pseudonym, event_time, local_date, local_hour, lat, lon, accuracy_m, zone``: the columns
    of :func:`staged_events` that the indicators use, so fixes serve where events do.
    """
    files = source.files_for(period.days())
    if not files:
        typed = [sql("CAST(NULL AS {t}) AS {n}", t=t, n=n) for n, t in _FIX_COLUMNS]
        typed.append(Sql("CAST(NULL AS VARCHAR) AS zone"))
        return plan.with_cte(out, sql("SELECT {cols} WHERE false", cols=typed))
    cols = [Sql(n) for n, _ in _FIX_COLUMNS]
    cols.append(sql("{c} AS zone", c=level_column(level)))
    body = sql(
        """SELECT {cols}
FROM read_parquet(${out}_files, hive_partitioning = false)
WHERE local_date BETWEEN ${out}_start AND ${out}_end
    AND (accuracy_m IS NULL OR accuracy_m <= ${out}_accuracy)""",
        cols=cols,
        out=out,
    )
    params = {
        f"{out}_files": files,
        f"{out}_start": period.start,
        f"{out}_end": period.end,
        f"{out}_accuracy": max_accuracy_m,
    }
    return plan.with_cte(out, body, **params)


def read_fixes(source: EventSource, period: Period, level: AdminLevel) -> pl.DataFrame:
    """The staged fixes of ``period`` as :mod:`aggregation.gps_stays` takes them: ``device``
    (pseudonym), ``day`` (local date), ``time_ms`` (UTC epoch ms), ``lat``, ``lon``,
    ``accuracy_m`` and ``zone`` (of ``level``)."""
    files = source.files_for(period.days())
    schema = {
        "device": pl.String,
        "day": pl.Date,
        "time_ms": pl.Int64,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "accuracy_m": pl.Float64,
        "zone": pl.String,
    }
    if not files:
        return pl.DataFrame(schema=schema)
    return (
        pl.scan_parquet(files)
        .filter(pl.col("local_date").is_between(period.start, period.end))
        .select(
            pl.col("pseudonym").alias("device"),
            pl.col("local_date").alias("day"),
            pl.col("event_time").dt.epoch("ms").alias("time_ms"),
            "lat",
            "lon",
            pl.col("accuracy_m").cast(pl.Float64),
            pl.col(level_column(level)).alias("zone"),
        )
        .collect()
        .cast(schema)  # type: ignore[arg-type]
    )


def gps_stays(
    plan: SqlPlan,
    out: str,
    source: EventSource,
    period: Period,
    level: AdminLevel,
    rule: StayRule,
) -> SqlPlan:
    """Add CTEs ``out`` (stays as events) and ``out_paths`` (path lengths), from the staged
    fixes of ``period``, with relations ``out_stays_rel`` and ``out_paths_rel`` behind them.

    ``out``: one row per stay, ``pseudonym, local_date, event_time, zone`` (the stay's first fix,
    and its zone at ``level``), so :func:`trips` over it gives the moves between consecutive
    stays in distinct zones. ``out_paths``: ``pseudonym, local_date, distance_m`` (BIGINT
    metres, unclipped), one row per device-day with an accurate fix. Stays and paths are found
    per device-day from its own fixes (:func:`aggregation.gps_stays.stays_and_paths`).
    """
    from aggregation.gps_stays import stays_and_paths  # noqa: PLC0415 - numba: GPS only

    stays, paths = stays_and_paths(read_fixes(source, period, level), rule)
    stays_rel = stays.select(
        pl.col("device").alias("pseudonym"),
        pl.col("day").alias("local_date"),
        pl.from_epoch("start_ms", time_unit="ms").dt.replace_time_zone("UTC").alias("event_time"),
        "zone",
    )
    paths_rel = paths.select(
        pl.col("device").alias("pseudonym"), pl.col("day").alias("local_date"), "distance_m"
    )
    plan = plan.with_relation(f"{out}_stays_rel", stays_rel)
    plan = plan.with_relation(f"{out}_paths_rel", paths_rel)
    plan = plan.with_cte(
        out,
        sql(
            "SELECT pseudonym, local_date, event_time, zone FROM {rel}",
            rel=f"{out}_stays_rel",
        ),
    )
    return plan.with_cte(
        f"{out}_paths",
        sql(
            "SELECT pseudonym, local_date, CAST(distance_m AS BIGINT) AS distance_m FROM {rel}",
            rel=f"{out}_paths_rel",
        ),
    )


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


# --- standalone extraction, returning frames -------------------------------------------------


def _events_plan(source: EventSource, period: Period, level: AdminLevel) -> SqlPlan:
    return staged_events(SqlPlan(), "events", source, period, level)


def _ordered(out: str, order: Sequence[str]) -> Sql:
    return sql("SELECT * FROM {out} ORDER BY {order}", out=out, order=order)


def stays_frame(
    source: EventSource,
    period: Period,
    level: AdminLevel,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Every stay of every subscriber-day of ``period`` (columns of :func:`stays`)."""
    plan = stays(_events_plan(source, period, level), "events", "stays")
    return plan.to_polars(_ordered("stays", ("pseudonym", "local_date", "seq")), con)


def trips_frame(
    source: EventSource,
    period: Period,
    level: AdminLevel,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Every trip of every subscriber-day of ``period`` (columns of :func:`trips`)."""
    plan = trips(_events_plan(source, period, level), "events", "trips")
    order = ("pseudonym", "local_date", "arrival_time", "origin", "destination")
    return plan.to_polars(_ordered("trips", order), con)


def homes_frame(
    source: EventSource,
    period: Period,
    level: AdminLevel,
    rule: HomeRule,
    key: BoundingKey,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Home zone of every subscriber with one over ``period`` (columns of :func:`homes`)."""
    plan = homes(_events_plan(source, period, level), "events", "homes", rule, key)
    return plan.to_polars(_ordered("homes", ("pseudonym",)), con)


def daily_distances_frame(
    source: EventSource,
    period: Period,
    zones: ZoneSet,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Metres travelled by every subscriber-day of ``period`` between ``zones`` centroids."""
    plan = staged_events(SqlPlan(), "events", source, period, zones.level, zones.level)
    plan = daily_distances(plan, "events", "dist", zones)
    return plan.to_polars(_ordered("dist", ("pseudonym", "local_date")), con)
