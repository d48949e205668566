"""Exact aggregates on a Dask cluster: one Prefect task per staged shard, summed centrally.

The aggregate of the whole data is the key-wise sum of the aggregates of its shards, exactly
(:mod:`aggregation.indicators.shards`). :func:`dask_aggregate` is that sum as an
:data:`~aggregation.release.run.Aggregator`: it submits :func:`shard_aggregate` (one Prefect task
per shard, reading only that shard's files where they lie) to the flow run's
``prefect_dask.DaskTaskRunner``, sums the partial aggregates by key and joins them onto the public
key set, and returns the frame :func:`~aggregation.indicators.exact_aggregate` would have
returned on one machine, row for row. Noise is still added once, centrally, by
:func:`aggregation.release.release`, and the ledger is written only by the flow's process: the
workers see exact aggregates of one shard each and nothing else.

Running a flow on Dask (``mobility run --executor dask [--address tcp://HOST:PORT]``, or a
deployment served with ``mobility serve --executor dask``):

* :func:`dask_execution` makes sure the workers can report their task runs to the same Prefect
  API as the flow (without ``PREFECT_API_URL``, each Dask worker would start its own temporary
  server), and starts a local cluster when no scheduler address is given;
* :func:`flows.daily.run_daily` and :func:`~flows.daily.run_backfill` run the daily and backfill
  flows with a ``DaskTaskRunner`` connected to that cluster and ``executor="dask"``, so each
  release's exact aggregate goes through :func:`dask_aggregate`; a deployment run of the daily
  flow with ``executor="dask"`` puts itself on a ``DaskTaskRunner`` (:func:`on_dask`).

The staged directory must be readable at the same path by the flow and by every worker (a shared
file system); the workers need this package installed, and receive the bounding key with each
task (use a cluster with TLS when the network between the machines is not trusted).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import duckdb
from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL
from prefect_dask.task_runners import DaskTaskRunner

from aggregation.extract import StagedSource
from aggregation.indicators import exact_aggregate
from aggregation.indicators.shards import only_shards, staged_shards, sum_partials
from flows.prefect_api import prefect_api
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import polars as pl
    from prefect.task_runners import TaskRunner

    from aggregation.bounding import BoundingKey
    from aggregation.indicators import AggregateRequest
    from aggregation.release.run import Aggregator

Executor = Literal["local", "dask"]
"""Where exact aggregates are computed: in the flow's process, or shard by shard on Dask."""

EXECUTORS: tuple[Executor, ...] = ("local", "dask")

SHARD_RETRIES = 2
"""A shard task only reads: retrying it after an I/O error or a lost worker is safe."""

_ADDRESS = re.compile(
    r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9A-Fa-f:]+\]|[^:/\s]+):(?P<port>\d+)$"
)


# --- the aggregator ----------------------------------------------------------------------------


def _worker_connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection sized to one task slot of this Dask worker, else the default.

    A worker runs one task per thread at once, and several workers may share a machine: with
    DuckDB's defaults (every core, 80 % of the memory) each task would oversubscribe it. So each
    task's query gets one thread and its share of the worker's memory limit (it spills beyond).
    """
    try:
        from distributed import get_worker  # noqa: PLC0415 - only meaningful inside a worker

        worker = get_worker()
    except ValueError:  # not running on a Dask worker
        return duckdb.connect()
    config: dict[str, Any] = {"threads": 1}
    memory = worker.memory_manager.memory_limit
    if memory:
        share = memory * 0.7 / max(1, worker.state.nthreads)
        config["memory_limit"] = f"{max(256, int(share) // 2**20)}MB"
    return duckdb.connect(config=config)


@task(
    name="shard-aggregate",
    task_run_name="{request.indicator}-shard-{shard}",
    cache_policy=NONE,
    retries=SHARD_RETRIES,
    retry_delay_seconds=5,
)
def shard_aggregate(request: AggregateRequest, key: BoundingKey, shard: int) -> pl.DataFrame:
    """The exact bounded aggregate of one shard's subscribers (observed keys only)."""
    if not isinstance(request.source, StagedSource):
        msg = f"shard_aggregate reads a StagedSource, not {type(request.source).__name__}."
        raise ConfigurationError(msg)
    part = replace(request, source=only_shards(request.source, [shard]))
    con = _worker_connection()
    try:
        return exact_aggregate(part, key, keys="observed", con=con)
    finally:
        con.close()


def _current_task_runner() -> TaskRunner[Any] | None:
    context = FlowRunContext.get()
    return context.task_runner if context is not None else None


def on_dask() -> bool:
    """Whether this code runs in a flow run whose task runner is a ``DaskTaskRunner``."""
    return isinstance(_current_task_runner(), DaskTaskRunner)


def _flow_task_runner() -> DaskTaskRunner:
    runner = _current_task_runner()
    if not isinstance(runner, DaskTaskRunner):
        kind = type(runner).__name__ if runner is not None else "no flow run at all"
        msg = (
            "The 'dask' executor submits one task per shard to the flow run's DaskTaskRunner, "
            f"but this code runs under {kind}. Run the flow through flows.daily.run_daily or "
            "run_backfill (`mobility run --executor dask`), or give the flow "
            "task_runner=flows.dask_executor.dask_task_runner(address)."
        )
        raise ConfigurationError(msg)
    return runner


def dask_aggregate(request: AggregateRequest, key: BoundingKey) -> pl.DataFrame:
    """The exact bounded aggregate of ``request``, computed shard by shard on Dask.

    Identical to ``exact_aggregate(request, key)`` (public keys, key order, BIGINT values). Must
    run inside a flow run whose task runner is a ``DaskTaskRunner``.
    """
    source = request.source
    if not isinstance(source, StagedSource):
        msg = (
            f"The 'dask' executor reads staged shards (a StagedSource); this request reads "
            f"{type(source).__name__}. Use the 'local' executor for explicit file lists."
        )
        raise ConfigurationError(msg)
    _flow_task_runner()
    shards = staged_shards(source, request.days_read())
    template = exact_aggregate(replace(request, source=only_shards(source, [])), key)
    futures = [shard_aggregate.submit(request, key, shard) for shard in shards]
    partials = [future.result() for future in futures]
    get_run_logger().info(
        "%s: exact aggregate of %d shard(s) summed on Dask", request.indicator, len(shards)
    )
    spec = request.spec
    return sum_partials(template, partials, spec.key_columns, spec.value_columns)


def aggregator_for(executor: Executor) -> Aggregator | None:
    """The exact-aggregate step of a release for ``executor`` (``None``: the local default)."""
    check_executor(executor)
    return dask_aggregate if executor == "dask" else None


# --- clusters, Prefect API, flows --------------------------------------------------------------


def check_executor(executor: str, address: str | None = None) -> None:
    """Refuse an unknown executor, or a scheduler address that cannot be one."""
    if executor not in EXECUTORS:
        msg = f"--executor must be one of {list(EXECUTORS)}; got {executor!r}."
        raise ConfigurationError(msg)
    if address is None:
        return
    if executor != "dask":
        msg = f"--address {address} names a Dask scheduler: use it with --executor dask."
        raise ConfigurationError(msg)
    if _ADDRESS.match(address) is None:
        msg = (
            f"--address {address!r} is not a Dask scheduler address; give tcp://HOST:PORT "
            "(for example tcp://10.0.0.5:8786, the address `dask scheduler` prints)."
        )
        raise ConfigurationError(msg)


def _is_loopback_host(host: re.Match[str] | str | None) -> bool:
    """Whether ``host`` (a name, an address, or a match of :data:`_ADDRESS`) is this machine."""
    if isinstance(host, re.Match):
        host = host.group("host")
    host = (host or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def prefect_api_for_workers(address: str | None) -> Iterator[str]:
    """Make the Prefect API of this run one the Dask workers can reach; yields its URL.

    With ``PREFECT_API_URL`` set (a real server, or the test harness), it is used as is: task
    runs carry the settings to the workers. Otherwise the temporary local server is started here
    (:func:`flows.prefect_api.prefect_api`) and named in the settings, so the workers report to it
    instead of each starting their own. Workers on other machines cannot reach a server on this
    one's loopback address: that is refused.
    """
    remote = address is not None and not _is_loopback_host(_ADDRESS.match(address))
    if remote and not PREFECT_API_URL.value():
        raise ConfigurationError(_unreachable_api(str(address)))
    with prefect_api() as url:
        if remote and _is_loopback_host(urlsplit(url).hostname):
            raise ConfigurationError(_unreachable_api(str(address)))
        yield url


def _unreachable_api(address: str) -> str:
    return (
        f"The Dask workers at {address} must report their task runs to a Prefect server they "
        "can reach: start one (`prefect server start --host 0.0.0.0`) and set "
        "PREFECT_API_URL=http://HOST:4200/api before running."
    )


def local_cluster_size() -> int:
    """Workers of a local cluster: one per core (one DuckDB thread each)."""
    return max(1, os.cpu_count() or 1)


@contextmanager
def dask_execution(address: str | None = None, *, workers: int | None = None) -> Iterator[str]:
    """A Dask scheduler address to run on, with a Prefect API the workers can reach.

    ``address`` connects to a running cluster; without it, a local cluster of ``workers``
    processes (default one per core, one thread each) runs for the duration of the block.
    """
    check_executor("dask", address)
    with prefect_api_for_workers(address):
        if address is not None:
            yield address
            return
        from distributed import LocalCluster  # noqa: PLC0415 - only for local clusters

        chatty = logging.getLogger("distributed")  # scheduler and nanny INFO lines, per worker
        level = chatty.level
        chatty.setLevel(max(level, logging.WARNING))
        try:
            # distributed ships no annotations for LocalCluster's constructor
            cluster = LocalCluster(**local_cluster_kwargs(workers))  # type: ignore[no-untyped-call]
            with cluster:
                yield str(cluster.scheduler_address)
        finally:
            chatty.setLevel(level)


def local_cluster_kwargs(workers: int | None = None) -> dict[str, Any]:
    """Settings of a local Dask cluster: ``workers`` processes (default: one per core), one
    thread each, no dashboard."""
    return {
        "n_workers": workers or local_cluster_size(),
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }


def dask_task_runner(address: str | None = None, *, workers: int | None = None) -> TaskRunner[Any]:
    """A ``DaskTaskRunner`` submitting to the Dask scheduler at ``address``.

    Without an address, the runner starts a local cluster of its own for the flow run; prefer
    :func:`dask_execution`, which also gives the workers the flow's Prefect API.
    """
    if address is not None:
        check_executor("dask", address)
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(workers))
