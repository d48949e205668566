"""Day-zone summaries: what home detection needs of a day's events, kept so it is read once.

A subscriber's home over a period (:func:`aggregation.extract.homes`) depends on the events of the
period only through *which zones they were seen in at which local hours of which days*. So each
day-shard of staged events ``staged/date=D/shard=S/*.parquet`` is summarised once into
``staged/_day_zones/date=D/shard=S/day.parquet`` (contract :data:`schemas.staged.STAGED_DAY_ZONES`):
one row per (pseudonym, local date, admin1, admin2, admin3) with a CDR event, and ``hours``, the
bit mask of the local hours of those events. Home-based indicators read the summaries of their
home period instead of its events (a daily release: seven small files per shard instead of seven
days of events), with the same result row for row:

* a night ``n`` in zone ``z`` (the rule of :class:`schemas.indicators.HomeRule`) is an event in
  ``z`` on day ``n`` at an evening hour, or on day ``n + 1`` at a morning hour; a summary row has
  such an event exactly when its mask meets the evening (morning) hours' mask, so the distinct
  (pseudonym, zone, night) of a period, at any admin level, are the same from either;
* the zones a subscriber was seen in on a day (``home_away``) are the zones of its rows;
* ``distance_m``, on every row of a subscriber-day, is that day's distance between admin3 zone
  centroids (:func:`aggregation.extract.steps.daily_distances`, unclipped), so
  ``mobility_distance`` reads its release days' distances here too (:func:`staged_day_distances`)
  instead of sorting their events again. It needs the order of the day's events, which the
  summary is made from; the centroids it used are named by digest in the metadata
  (:data:`CENTROIDS_KEY`), and a summary made with other centroids (or none) is made again.

So every home-based release of a day reads small summaries; the day's event-level work (the
hours, and the distances' sort) is done once, by whichever release first needs the summary.

The summaries are derived data, exact and internal: pseudonyms as staged (no raw identifier),
never exported or published. Each names, in its Parquet metadata, the staged files it was made
from and their SHA-256 (:data:`SOURCES_KEY`); :func:`current_day_zones` makes a summary again
whenever that list differs from the day-shard's files now (a day re-ingested, a late drop, a crash
between the two), so a stale summary is never read, whatever happened before. Ingest removes the
summaries of the day-shards a drop touches before it moves the drop's files into place
(:func:`aggregation.ingest.commit.commit`), and a summary is written aside and renamed into place,
so none is ever partly written (the ``.part`` file a killed writer leaves aside is removed by the
next writer of that summary, :func:`remove_dead_parts`). Releases list the summaries they read
among their inputs, beside the staged files they summarise
(:func:`aggregation.release.plan.plan_release`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from aggregation.extract.source import StagedSource, level_column
from aggregation.extract.steps import daily_distances, home_of_nights
from aggregation.sql import Sql, SqlPlan, connection, sql
from schemas.errors import InternalError, MobilityError
from schemas.staged import DAY_ZONES_DIR, DAY_ZONES_FILE, STAGED_DAY_ZONES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from contextlib import AbstractContextManager
    from datetime import date

    import duckdb

    from aggregation.bounding import BoundingKey
    from aggregation.ledger import FileDigest
    from schemas.geography import AdminLevel
    from schemas.indicators import HomeRule, Period, ZoneSet

    Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
    """Opens a DuckDB connection for making summaries (closed when the block ends)."""

    Digests = Callable[[Sequence[str]], Sequence[FileDigest]]
    """SHA-256 of staged files, by path relative to the staged directory
    (:func:`aggregation.release.digests.staged_digests` on the workspace's staged directory)."""

SOURCES_KEY = b"mobility.day_zones.sources"
"""Parquet metadata key: JSON list of ``[path relative to staged, sha256]`` summarised."""
VERSION_KEY = b"mobility.day_zones.version"
CENTROIDS_KEY = b"mobility.day_zones.centroids"
"""Parquet metadata key: :func:`centroid_stamp` of the zones whose centroids gave ``distance_m``."""
VERSION = b"2"
"""Format of the summaries; a summary of another version is made again (1: without distances)."""
NO_CENTROIDS = "none"
"""The centroid stamp of a summary made without distances (``distance_m`` null)."""


def centroid_stamp(zones: ZoneSet | None) -> str:
    """SHA-256 of the zones and centroids that measure distances (``NO_CENTROIDS`` without)."""
    if zones is None or zones.centroids is None:
        return NO_CENTROIDS
    rows = [[z, lat, lon] for z, (lat, lon) in zip(zones.zone_ids, zones.centroids, strict=True)]
    text = json.dumps({"level": zones.level, "centroids": rows}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def summary_path(root: Path, day: date, shard: int) -> Path:
    """Where the summary of one day-shard of the staged directory ``root`` lives."""
    return root / DAY_ZONES_DIR / f"date={day.isoformat()}" / f"shard={shard:03d}" / DAY_ZONES_FILE


def remove_summary(root: Path, day: date, shard: int) -> None:
    """Remove the summary of one day-shard, if any (before its staged files change)."""
    path = summary_path(root, day, shard)
    path.unlink(missing_ok=True)
    directory = path.parent
    while directory != root and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def _metadata(path: Path) -> dict[bytes, bytes] | None:
    """The Parquet metadata of a readable summary of this version, else None."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    return meta if meta.get(VERSION_KEY) == VERSION else None


def _sources(meta: dict[bytes, bytes] | None) -> list[list[str]] | None:
    if meta is None or SOURCES_KEY not in meta:
        return None
    try:
        found = json.loads(meta[SOURCES_KEY])
    except ValueError:
        return None
    return found if isinstance(found, list) else None


def _centroids(meta: dict[bytes, bytes] | None) -> str | None:
    if meta is None or CENTROIDS_KEY not in meta:
        return None
    return meta[CENTROIDS_KEY].decode()


def recorded_sources(path: Path) -> list[list[str]] | None:
    """The staged files (and their SHA-256) a summary was made from; None without a readable
    summary of this version."""
    return _sources(_metadata(path))


def recorded_centroids(path: Path) -> str | None:
    """The :func:`centroid_stamp` a summary's distances were measured with; None without a
    readable summary of this version."""
    return _centroids(_metadata(path))


def _made_from(path: Path, sources: list[list[str]], centroids: str) -> bool:
    """Whether the summary at ``path`` was made from ``sources`` with ``centroids`` (one read of
    its metadata)."""
    meta = _metadata(path)
    return _sources(meta) == sources and _centroids(meta) == centroids


def _stamps(
    digests: Digests, partitions: Sequence[tuple[date, int, list[str]]]
) -> dict[tuple[date, int], list[list[str]]]:
    """The ``[path, sha256]`` of each day-shard's files, hashed in one call (one cache read)."""
    flat = list(digests([f for _, _, files in partitions for f in files]))
    stamps: dict[tuple[date, int], list[list[str]]] = {}
    for day, shard, files in partitions:
        stamps[day, shard] = [[d.path, d.sha256] for d in flat[: len(files)]]
        del flat[: len(files)]
    return stamps


def _summary_query(
    files: Sequence[str], distance_zones: ZoneSet | None
) -> tuple[str, dict[str, object]]:
    """The query of one day-shard's summary rows, and its parameters.

    Every CDR row of the files, whatever its day (readers filter by day as they do on events);
    ``distance_m`` from :func:`daily_distances` over the same events with admin3 as the zone
    followed, the way ``mobility_distance`` measures a day from its events.
    """
    plan = SqlPlan().with_cte(
        "ev",
        sql(
            """SELECT pseudonym, local_date, local_hour, event_time, admin1, admin2, admin3,
    admin3 AS dzone
FROM read_parquet($files, hive_partitioning = false)
WHERE source = 'cdr'"""
        ),
        files=list(files),
    )
    plan = plan.with_cte(
        "zones",
        sql("""SELECT pseudonym, local_date, admin1, admin2, admin3,
    CAST(bit_or(CAST(1 AS INTEGER) << CAST(local_hour AS INTEGER)) AS INTEGER) AS hours
FROM ev
GROUP BY ALL"""),
    )
    if distance_zones is None or distance_zones.centroids is None:
        select = sql("SELECT *, CAST(NULL AS BIGINT) AS distance_m FROM zones ORDER BY ALL")
    else:
        plan = daily_distances(plan, "ev", "dist", distance_zones)
        select = sql(
            """SELECT z.*, d.distance_m
FROM zones z JOIN dist d ON d.pseudonym = z.pseudonym AND d.local_date = z.local_date
ORDER BY z.pseudonym, z.local_date, z.admin1, z.admin2, z.admin3"""
        )
    return plan.text(select), dict(plan.params)


def write_summary(
    target: Path,
    files: Sequence[str],
    sources: list[list[str]],
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    distance_zones: ZoneSet | None = None,
) -> None:
    """Summarise the staged ``files`` of one day-shard into ``target``, written aside and renamed
    into place (a reader sees the old file or the whole new one), naming ``sources`` and the
    centroids of ``distance_zones`` (admin3; without them ``distance_m`` is null) in its
    metadata."""
    text, params = _summary_query(files, distance_zones)
    with connection(con) as c:
        table = c.sql(text, params=params).arrow()
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    schema = STAGED_DAY_ZONES.schema
    meta = {
        **(schema.metadata or {}),
        VERSION_KEY: VERSION,
        SOURCES_KEY: json.dumps(sources),
        CENTROIDS_KEY: centroid_stamp(distance_zones),
    }
    table = table.cast(schema).replace_schema_metadata(meta)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_parts(target)
    part = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        pq.write_table(table, part, compression="zstd")
        fd = os.open(part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)


def remove_dead_parts(target: Path) -> list[Path]:
    """Remove the files a writer of ``target`` killed mid-write left aside (``.part``, named with
    its process id), once that process is gone; a live writer's are its own to rename. Returns
    what was removed."""
    removed = []
    for part in target.parent.glob(f".{target.name}.*.*.part"):
        pid = part.name.removeprefix(f".{target.name}.").split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            part.unlink(missing_ok=True)
            removed.append(part)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a reused id keeps a dead writer's file: harmless)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def current_day_zones(
    source: StagedSource,
    days: Iterable[date],
    digests: Digests,
    *,
    distance_zones: ZoneSet | None = None,
    connect: Connect | None = None,
) -> list[str]:
    """The summaries of every day-shard of ``days`` with staged files, each made (again) first
    unless it was made from exactly the staged files there now (by SHA-256) and with the
    centroids of ``distance_zones`` (the workspace's admin3 zones; None: no distances).

    Summaries are made on one connection, opened only if one must be made: ``connect()`` (a
    release: within the workspace's memory limit), else a fresh in-memory one.

    Returns their paths in order of day then shard. Raises ``OSError`` when a summary that must be
    made cannot be written (a read-only copy of a workspace).
    """
    partitions = source.partitions(days)
    stamps = _stamps(digests, partitions)
    centroids = centroid_stamp(distance_zones)
    stale = [
        (day, shard, files)
        for day, shard, files in partitions
        if not _made_from(summary_path(source.root, day, shard), stamps[day, shard], centroids)
    ]
    if stale:
        with connect() if connect is not None else connection(None) as c:  # one for them all
            for day, shard, files in stale:
                target = summary_path(source.root, day, shard)
                write_summary(target, files, stamps[day, shard], c, distance_zones=distance_zones)
    now = _stamps(digests, source.partitions({d for d, _, _ in stale}))
    for day, shard, _ in stale:
        if now.get((day, shard)) != stamps[day, shard]:  # changed while being summarised
            remove_summary(source.root, day, shard)
            msg = (
                f"The staged files of {day} shard {shard} changed while their day summary was "
                "being made (an ingest running meanwhile?); run the release again."
            )
            raise MobilityError(msg)
    return [str(summary_path(source.root, day, shard)) for day, shard, _ in partitions]


def staged_day_zones(
    plan: SqlPlan, out: str, source: StagedSource, period: Period, level: AdminLevel
) -> SqlPlan:
    """Add CTE ``out``: the summary rows of ``period`` with the level's zone as ``zone``.

    Columns: ``pseudonym, local_date, zone, hours``. The summaries must be current
    (:func:`current_day_zones`); a day-shard with staged files but no summary is an error, never
    read as empty. Without any staged file the CTE is empty but typed.
    """
    files = _summary_files(source, period)
    zone = level_column(level)
    if not files:
        body = sql(
            """SELECT CAST(NULL AS VARCHAR) AS pseudonym, CAST(NULL AS DATE) AS local_date,
    CAST(NULL AS VARCHAR) AS zone, CAST(NULL AS INTEGER) AS hours WHERE false"""
        )
        return plan.with_cte(out, body)
    body = sql(
        """SELECT pseudonym, local_date, {zone} AS zone, hours
FROM read_parquet(${out}_files, hive_partitioning = false)
WHERE local_date BETWEEN ${out}_start AND ${out}_end""",
        zone=zone,
        out=out,
    )
    params = {f"{out}_files": files, f"{out}_start": period.start, f"{out}_end": period.end}
    return plan.with_cte(out, body, **params)


def _summary_files(source: StagedSource, period: Period) -> list[str]:
    """The summaries of every day-shard of ``period`` with staged files (all must exist)."""
    files: list[str] = []
    for day, shard, _ in source.partitions(period.days()):
        path = summary_path(source.root, day, shard)
        if not path.is_file():
            msg = (
                f"{path} is missing: the day summaries of a release are made when it is planned "
                "(current_day_zones); this is a bug."
            )
            raise InternalError(msg)
        files.append(str(path))
    return files


def staged_day_distances(
    plan: SqlPlan, out: str, source: StagedSource, period: Period, zones: ZoneSet
) -> SqlPlan:
    """Add CTE ``out``: :func:`aggregation.extract.steps.daily_distances` of the events of
    ``period`` with ``zones`` (admin3) followed, from their summaries: the same rows.

    Columns ``pseudonym, local_date, distance_m`` (BIGINT, unclipped), one row per subscriber-day
    with a CDR event. Every summary read must have been made with the centroids of ``zones``
    (:func:`current_day_zones` with ``distance_zones=zones``); another is an error, never read.
    """
    files = _summary_files(source, period)
    wanted = centroid_stamp(zones)
    for path in files:
        if recorded_centroids(Path(path)) != wanted:
            msg = (
                f"{path} holds no distances measured with the {zones.level} centroids asked for: "
                "the day summaries of a release are made when it is planned "
                "(current_day_zones with distance_zones); this is a bug."
            )
            raise InternalError(msg)
    if not files:
        body: Sql = sql(
            """SELECT CAST(NULL AS VARCHAR) AS pseudonym, CAST(NULL AS DATE) AS local_date,
    CAST(NULL AS BIGINT) AS distance_m WHERE false"""
        )
        return plan.with_cte(out, body)
    body = sql(
        """SELECT pseudonym, local_date, any_value(distance_m) AS distance_m
FROM read_parquet(${out}_files, hive_partitioning = false)
WHERE local_date BETWEEN ${out}_start AND ${out}_end
GROUP BY pseudonym, local_date""",
        out=out,
    )
    params = {f"{out}_files": files, f"{out}_start": period.start, f"{out}_end": period.end}
    return plan.with_cte(out, body, **params)


def hour_mask(hours: Iterable[int]) -> int:
    """The bit mask of ``hours`` (bit h for hour h), as in the ``hours`` column."""
    return sum(1 << h for h in set(hours))


def homes_from_day_zones(
    plan: SqlPlan, src: str, out: str, rule: HomeRule, key: BoundingKey
) -> SqlPlan:
    """Add CTEs ``out`` and ``out_nights``: :func:`aggregation.extract.homes` of the events that
    the summary rows of CTE ``src`` (:func:`staged_day_zones`) summarise, the same rows."""
    nights = sql(
        """SELECT DISTINCT pseudonym, zone, night FROM (
    SELECT pseudonym, zone, local_date AS night FROM {src}
    WHERE (hours & ${out}_evening_mask) <> 0
    UNION ALL
    SELECT pseudonym, zone, local_date - 1 AS night FROM {src}
    WHERE (hours & ${out}_morning_mask) <> 0
)""",
        out=out,
        src=src,
    )
    masks = {
        f"{out}_evening_mask": hour_mask(rule.evening_hours),
        f"{out}_morning_mask": hour_mask(rule.morning_hours),
    }
    plan = plan.with_cte(f"{out}_nights", nights, **masks)
    return home_of_nights(plan, out, rule, key)
