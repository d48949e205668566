"""Shard-by-shard exact aggregates on Dask: identical to the single-machine query, key for key."""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl
import pytest
from distributed import Client
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

import flows.daily
from aggregation.extract import StagedSource
from aggregation.indicators import exact_aggregate
from aggregation.indicators.shards import (
    shard_batches,
    sharded_aggregate,
    staged_shards,
    sum_partials,
)
from aggregation.ingest import ingest_files
from aggregation.release import open_context, plan_release
from flows.daily import daily_flow, run_daily
from flows.dask_executor import (
    check_executor,
    dask_aggregate,
    dask_execution,
    dask_task_runner,
    on_dask,
)
from sample_data.synth import SynthConfig, generate
from schemas.errors import ConfigurationError
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from tests.conftest import KEY_ENVIRON, START, workspace_with_policy

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from distributed import Scheduler

    from aggregation.bounding import BoundingKey
    from aggregation.indicators import AggregateRequest
    from aggregation.release.run import Aggregator
    from flows.dask_executor import Executor

SHARDS = 4
DAYS = 2
DAY2 = START.replace(day=3)
WORKERS = 2

# Every indicator, over the second day (home-based ones read the nights before it too).
SPECS = [
    ReleaseSpec(Indicator.EVENT_COUNTS, START, START),
    ReleaseSpec(Indicator.PRESENCE, START, DAY2, level="admin3"),
    ReleaseSpec(Indicator.OD_TRIPS, START, DAY2, level="admin3"),
    ReleaseSpec(Indicator.OD_CONNECTIONS, START, START),
    ReleaseSpec(Indicator.HOME_AWAY, DAY2, DAY2),
    ReleaseSpec(Indicator.MOBILITY_DISTANCE, DAY2, DAY2, value="distance_m"),
    ReleaseSpec(Indicator.RESIDENTS, START, DAY2, level="admin1"),
    ReleaseSpec(
        Indicator.RELOCATIONS, DAY2, DAY2, level="admin1",
        baseline_start=START, baseline_end=START,
    ),
]  # fmt: skip


def _sharded_workspace(root: Path, export: Path) -> Path:
    ws = workspace_with_policy(root, export)
    config = (ws / "mobility.toml").read_text()
    (ws / "mobility.toml").write_text(config.replace("shards = 16", f"shards = {SHARDS}", 1))
    return ws


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic export: 1 500 subscribers over two days."""
    out = tmp_path_factory.mktemp("distributed") / "export"
    generate(SynthConfig(subscribers=1_500, days=DAYS, start=START, seed=11), out)
    return out


@pytest.fixture(scope="module")
def staged(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export ingested into a workspace with four shards."""
    ws = _sharded_workspace(tmp_path_factory.mktemp("distributed") / "ws", export)
    assert ingest_files([export / "raw"], ws, environ=KEY_ENVIRON).ok
    return ws


@pytest.fixture
def requests(staged: Path) -> list[tuple[AggregateRequest, BoundingKey]]:
    """The aggregate request of every indicator in :data:`SPECS`, with the bounding key."""
    ctx = open_context(staged, environ=KEY_ENVIRON)
    return [(plan_release(ctx, s).aggregate, ctx.require_bounding_key()) for s in SPECS]


@pytest.fixture(scope="module")
def scheduler(prefect_harness: None) -> Iterator[str]:
    """A local Dask cluster of two worker processes, reporting to the session's Prefect API."""
    with dask_execution(workers=WORKERS) as address:
        yield address


def test_every_indicator_is_the_sum_of_its_shards(
    requests: list[tuple[AggregateRequest, BoundingKey]], staged: Path
) -> None:
    source = StagedSource(staged / "staged")
    assert staged_shards(source, [START]) == list(range(SHARDS))
    assert staged_shards(StagedSource(source.root, frozenset({1, 9})), [START]) == [1]
    for request, key in requests:
        whole = exact_aggregate(request, key)
        spec = request.spec
        if request.indicator is not Indicator.RELOCATIONS:  # two days: too few nights to move
            assert whole.select(spec.value_columns).sum_horizontal().sum() > 0, request.indicator
        parts = [
            exact_aggregate(_on_shards(request, {s}), key, keys="observed") for s in range(SHARDS)
        ]
        template = exact_aggregate(_on_shards(request, set()), key)
        assert (template.select(spec.value_columns).sum_horizontal() == 0).all()
        summed = sum_partials(template, parts, spec.key_columns, spec.value_columns)
        assert summed.equals(whole), request.indicator


def test_the_local_aggregate_by_batches_of_shards_is_the_single_query(
    requests: list[tuple[AggregateRequest, BoundingKey]], staged: Path
) -> None:
    source = StagedSource(staged / "staged")
    sizes = [
        sum(p.stat().st_size for p in (staged / "staged").glob(f"date=*/shard={s:03d}/*"))
        for s in range(SHARDS)
    ]
    assert shard_batches(source, [START], 1) == [[s] for s in range(SHARDS)]
    assert shard_batches(source, [START], sum(sizes)) == [list(range(SHARDS))]
    pairs = shard_batches(source, [START], max(sizes) + 1)
    assert sorted(s for batch in pairs for s in batch) == list(range(SHARDS))
    assert all(len(batch) >= 2 for batch in pairs)  # each batch is over the size, but the last
    for request, key in requests:
        whole = exact_aggregate(request, key)
        for batch_bytes in (1, max(sizes) + 1):
            assert sharded_aggregate(request, key, batch_bytes=batch_bytes).equals(whole)


def _on_shards(request: AggregateRequest, shards: set[int]) -> AggregateRequest:
    assert isinstance(request.source, StagedSource)
    return replace(request, source=StagedSource(request.source.root, frozenset(shards)))


def test_sum_partials_keeps_the_template_order_and_drops_unknown_keys() -> None:
    template = pl.DataFrame({"zone": ["b", "a", "c"], "count": [0, 0, 0]})
    parts = [
        pl.DataFrame({"zone": ["a", "x"], "count": [2, 5]}),
        pl.DataFrame({"zone": ["a", "b"], "count": [1, 4]}),
    ]
    out = sum_partials(template, parts, ["zone"], ["count"])
    assert out.to_dict(as_series=False) == {"zone": ["b", "a", "c"], "count": [4, 3, 0]}
    assert out.schema == pl.Schema({"zone": pl.String, "count": pl.Int64})
    empty = sum_partials(template, [], ["zone"], ["count"])
    assert empty["count"].to_list() == [0, 0, 0]


def test_bad_executor_settings_are_refused_with_a_clear_message(
    requests: list[tuple[AggregateRequest, BoundingKey]],
) -> None:
    with pytest.raises(ConfigurationError, match="one of"):
        check_executor("spark")
    with pytest.raises(ConfigurationError, match="use it with --executor dask"):
        check_executor("local", "tcp://127.0.0.1:8786")
    with pytest.raises(ConfigurationError, match="tcp://HOST:PORT"):
        check_executor("dask", "not an address")
    check_executor("dask", "tcp://10.0.0.5:8786")
    with pytest.raises(ConfigurationError, match="DaskTaskRunner"):
        dask_aggregate(*requests[0])  # outside a flow run on Dask


@pytest.mark.slow
def test_dask_aggregates_equal_the_local_ones_for_every_indicator(
    scheduler: str, requests: list[tuple[AggregateRequest, BoundingKey]]
) -> None:
    @flow(task_runner=dask_task_runner(scheduler))
    def on_dask() -> list[pl.DataFrame]:
        return [dask_aggregate(request, key) for request, key in requests]

    for (request, key), distributed in zip(requests, on_dask(), strict=True):
        local = exact_aggregate(request, key)
        assert distributed.schema == local.schema, request.indicator
        assert distributed.equals(local), request.indicator
    # The shard tasks ran on the cluster's workers and reported to the session's Prefect API
    # (had they started temporary servers of their own, these runs would not be here).
    with Client(scheduler) as client:
        prefixes = client.run_on_scheduler(_task_prefixes)
    assert "shard_aggregate" in prefixes
    with get_client(sync_client=True) as api:
        runs = api.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="-shard-"))
        )
    assert (
        len([r for r in runs if r.state is not None and r.state.is_completed()])
        >= len(requests) * SHARDS
    )


def _task_prefixes(dask_scheduler: Scheduler) -> list[str]:
    return sorted(dask_scheduler.task_prefixes)


@pytest.mark.slow
def test_daily_run_on_dask_releases_the_local_exact_aggregates(
    scheduler: str,
    export: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = _sharded_workspace(tmp_path / "ws", export)
    shutil.copytree(export / "raw", ws / "drops")
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    seen: list[tuple[AggregateRequest, BoundingKey, pl.DataFrame]] = []
    real = flows.daily.aggregator_for

    def spying(executor: Executor) -> Aggregator:
        assert executor == "dask"
        inner = real(executor)
        assert inner is not None

        def aggregate(request: AggregateRequest, key: BoundingKey) -> pl.DataFrame:
            frame = inner(request, key)
            seen.append((request, key, frame))
            return frame

        return aggregate

    monkeypatch.setattr(flows.daily, "aggregator_for", spying)
    result = run_daily(str(ws), START, executor="dask", address=scheduler)
    assert result["refused"] == []
    assert len(result["released"]) == 7
    assert len(seen) == 6  # the two columns of mobility_distance share one exact aggregate
    for request, key, frame in seen:
        assert frame.equals(exact_aggregate(request, key)), request.indicator
    entries = open_context(ws).ledger.entries()
    assert len(entries) == 7
    assert all(e.status == "published" for e in entries)


@pytest.mark.slow
def test_a_daily_run_not_on_dask_puts_itself_on_the_cluster(
    scheduler: str, export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a deployment run of `mobility serve --executor dask` does: the served flow starts on
    # Prefect's default task runner, and runs itself again as a subflow on a DaskTaskRunner.
    ws = _sharded_workspace(tmp_path / "ws", export)
    shutil.copytree(export / "raw", ws / "drops")
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    runners: list[bool] = []
    real = flows.daily.aggregator_for

    def spying(executor: Executor) -> Aggregator | None:
        runners.append(on_dask())
        return real(executor)

    monkeypatch.setattr(flows.daily, "aggregator_for", spying)
    result = daily_flow(str(ws), START, executor="dask", address=scheduler)
    assert len(result["released"]) == 7
    assert runners == [True] * 7
