"""Exact aggregates as sums over shards.

Staged events are sharded by a hash of the pseudonym, so every shard holds whole subscribers
(:mod:`aggregation.ingest.staging`), and every indicator's exact bounded aggregate is a sum of
per-subscriber contributions whose keyed bounding depends only on the subscriber's own records
(:mod:`aggregation.bounding`). So the aggregate of the whole data is the key-wise sum of the
aggregates of its shards, exactly. This is what lets a Dask cluster compute one shard per task
(:mod:`flows.dask_executor`), and what :func:`sharded_aggregate` uses on one machine: one query per
batch of shards instead of one over everything, so each query's sorts and hash tables hold a
shard's subscribers rather than the whole country's. It is about as fast, and the working set is
a shard's, not the day's: at 50 M events, ``od_trips`` peaks at 0.6 GiB instead of 5.2 GiB
(``benchmarks/bench_scaling.py --part workers``), and a billion events need no spilling beyond
what one shard needs.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl

from aggregation.extract import StagedSource
from aggregation.indicators.aggregate import exact_aggregate

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Sequence

    import duckdb

    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest

BATCH_BYTES = 16 << 20
"""Shards are aggregated in batches of at least this many bytes of staged Parquet (about 2 M
events): below that, the cost of one more query outweighs what a smaller one saves."""

_SHARD_DIR = re.compile(r"^shard=(\d+)$")


def staged_shards(source: StagedSource, days: Iterable[dt.date]) -> list[int]:
    """The shards of ``source`` holding at least one staged file of ``days``, in order."""
    return sorted(_shard_bytes(source, days))


def only_shards(source: StagedSource, shards: Iterable[int]) -> StagedSource:
    """``source`` restricted to ``shards``."""
    return StagedSource(source.root, frozenset(shards))


def shard_batches(
    source: StagedSource, days: Iterable[dt.date], min_bytes: int = BATCH_BYTES
) -> list[list[int]]:
    """The shards of ``days`` in consecutive batches of at least ``min_bytes`` (but the last)."""
    batches: list[list[int]] = []
    size = min_bytes
    for shard, n in sorted(_shard_bytes(source, days).items()):
        if size >= min_bytes:
            batches.append([])
            size = 0
        batches[-1].append(shard)
        size += n
    if len(batches) > 1 and size < min_bytes:  # a small last batch joins the one before
        last = batches.pop()
        batches[-1] += last
    return batches


def sum_partials(
    template: pl.DataFrame,
    partials: Sequence[pl.DataFrame],
    key_columns: Sequence[str],
    value_columns: Sequence[str],
) -> pl.DataFrame:
    """Per-shard aggregates summed by key and joined onto ``template``'s keys, in its order.

    ``template`` holds every public key (an aggregate of no data: zeros); keys of ``partials``
    outside it are dropped, as the single-query aggregate drops contributions outside the key set.
    """
    keys, values = list(key_columns), list(value_columns)
    result = template.select(keys)
    if not partials:
        return result.with_columns(pl.lit(0, dtype=pl.Int64).alias(v) for v in values)
    summed = (
        pl.concat(partials, how="vertical")
        .group_by(keys)
        .agg(pl.col(v).sum().cast(pl.Int64) for v in values)
    )
    return result.join(summed, on=keys, how="left", maintain_order="left").with_columns(
        pl.col(v).fill_null(0).cast(pl.Int64) for v in values
    )


def sharded_aggregate(
    request: AggregateRequest,
    key: BoundingKey,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    batch_bytes: int = BATCH_BYTES,
) -> pl.DataFrame:
    """:func:`exact_aggregate` of ``request``, one query per batch of shards, summed.

    The same frame, row for row (tested). Requests that do not read a staged directory (explicit
    file lists) and data of a single batch run as one query.
    """
    source = request.source
    if not isinstance(source, StagedSource):
        return exact_aggregate(request, key, con=con)
    batches = shard_batches(source, request.days_read(), batch_bytes)
    if len(batches) <= 1:
        return exact_aggregate(request, key, con=con)
    template = exact_aggregate(replace(request, source=only_shards(source, [])), key, con=con)
    partials = [
        exact_aggregate(
            replace(request, source=only_shards(source, batch)), key, keys="observed", con=con
        )
        for batch in batches
    ]
    spec = request.spec
    return sum_partials(template, partials, spec.key_columns, spec.value_columns)


def _shard_bytes(source: StagedSource, days: Iterable[dt.date]) -> dict[int, int]:
    """Bytes of staged Parquet of ``days`` per shard of ``source`` (shards with files only)."""
    found: dict[int, int] = {}
    for day in set(days):
        for shard_dir in (source.root / f"date={day.isoformat()}").glob("shard=*"):
            m = _SHARD_DIR.match(shard_dir.name)
            if m is None:
                continue
            shard = int(m.group(1))
            if source.shards is not None and shard not in source.shards:
                continue
            sizes = [p.stat().st_size for p in shard_dir.glob("*.parquet")]
            if sizes:
                found[shard] = found.get(shard, 0) + sum(sizes)
    return found
