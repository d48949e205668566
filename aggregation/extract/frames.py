"""Extraction run on its own, returning Polars frames: for tests, debugging and documentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.extract.steps import daily_distances, homes, staged_events, stays, trips
from aggregation.sql import Sql, SqlPlan, sql

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb
    import polars as pl

    from aggregation.bounding import BoundingKey
    from aggregation.extract.source import EventSource
    from schemas.geography import AdminLevel
    from schemas.indicators import HomeRule, Period, ZoneSet


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
