"""App GPS fixes read for indicators: fixes as events, and stays and path lengths per device-day.

Fixes come from the ``staged_fixes`` sidecar (:data:`schemas.staged.STAGED_FIXES`); stays and
paths are found by :mod:`aggregation.gps_stays` in Python and handed to the query as registered
relations (:meth:`aggregation.sql.SqlPlan.with_relation`). A device-day is then the unit a
subscriber-day is for CDR.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from aggregation.extract.source import level_column
from aggregation.sql import Sql, SqlPlan, sql

if TYPE_CHECKING:
    from aggregation.extract.source import EventSource
    from schemas.geography import AdminLevel
    from schemas.gps import StayRule
    from schemas.indicators import Period

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
