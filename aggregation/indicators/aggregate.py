"""Run an indicator: its exact bounded aggregate, or each subscriber's bounded contributions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.indicators import counts, distance, home, od
from aggregation.indicators.keys import aggregate_select, contributions_select
from schemas.indicators import Indicator

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb
    import polars as pl

    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest, KeyStrategy
    from aggregation.sql import SqlPlan


_BUILDERS: dict[Indicator, Callable[[AggregateRequest, BoundingKey], tuple[SqlPlan, str]]] = {
    Indicator.EVENT_COUNTS: counts.event_counts,
    Indicator.PRESENCE: counts.presence,
    Indicator.OD_TRIPS: od.od_trips,
    Indicator.OD_CONNECTIONS: od.od_connections,
    Indicator.RESIDENTS: home.residents,
    Indicator.HOME_AWAY: home.home_away,
    Indicator.MOBILITY_DISTANCE: distance.mobility_distance,
    Indicator.RELOCATIONS: home.relocations,
}


def exact_aggregate(
    request: AggregateRequest,
    key: BoundingKey,
    *,
    keys: KeyStrategy = "public",
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """The exact bounded aggregate of ``request``: key columns then value columns (BIGINT).

    With ``keys="public"`` every key of the public key set is present, in key order, with 0
    where nothing was observed; with ``"observed"`` only keys with a positive value. One DuckDB
    query over the staged Parquet files; ``con`` defaults to a fresh in-memory connection.
    """
    plan, contributions = _BUILDERS[request.indicator](request, key)
    plan, select = aggregate_select(plan, request, contributions, keys)
    return plan.to_polars(select, con)


def bounded_contributions(
    request: AggregateRequest,
    key: BoundingKey,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Each subscriber's bounded contribution: ``pseudonym``, key columns, value columns.

    Summing it per key gives :func:`exact_aggregate` (observed keys). For tests and audits of the
    bounding; it holds pseudonyms, so it is never released.
    """
    plan, contributions = _BUILDERS[request.indicator](request, key)
    return plan.to_polars(contributions_select(request, contributions), con)
