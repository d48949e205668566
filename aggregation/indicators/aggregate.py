"""Run an indicator: its exact bounded aggregate, or each subscriber's bounded contributions.

The contributions come from the indicator's module (:mod:`aggregation.indicators.registry`); the
sum over the public key set is the same for all (:mod:`aggregation.indicators.keys`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.indicators.keys import aggregate_select, contributions_select
from aggregation.indicators.registry import definition

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest, KeyStrategy


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
    plan, contributions = definition(request.indicator).contributions(request, key)
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
    plan, contributions = definition(request.indicator).contributions(request, key)
    return plan.to_polars(contributions_select(request, contributions), con)
