"""The scheduled daily run: ingest what is new, then release every scheduled indicator.

``daily_flow`` handles one local day; ``backfill_flow`` runs it for each day of a range, in order
(a day's home-based indicators read the days before it). Tasks are thin wrappers over
:mod:`aggregation`; the ledger is written only by the release tasks of this process, one release
at a time. A release refused by the privacy budget is reported and the others go on; any other
failure fails the run (after the other releases were tried).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from aggregation.ingest import discover, ingest_files
from aggregation.ingest.staging import manifest_path
from aggregation.release import open_context, release
from flows.distributed import Executor, aggregator_for, dask_task_runner
from schemas.errors import BudgetExceededError, MobilityError
from schemas.indicators import spec as indicator_spec
from schemas.release import ReleaseSpec
from schemas.schedule import ScheduleSettings
from schemas.workspace import Workspace

if TYPE_CHECKING:
    from pathlib import Path

IO_RETRIES = 2


def schedule_of(workspace: Workspace) -> ScheduleSettings:
    """The workspace's ``[schedule]`` settings."""
    return ScheduleSettings.from_mapping(
        workspace.config.schedule, source=str(workspace.root / "mobility.toml")
    )


def new_drops(workspace: Workspace, day: dt.date) -> list[Path]:
    """Raw files of ``day`` in the drops folder not yet staged as they are now (size, mtime)."""
    folder = workspace.resolve(schedule_of(workspace).drops)
    if not folder.is_dir():
        return []
    fresh = []
    for raw in discover([folder]) if any(folder.iterdir()) else []:
        if raw.export_day != day:
            continue
        manifest = manifest_path(workspace, raw.drop_id)
        stat = raw.path.stat()
        if manifest.exists():
            seen = json.loads(manifest.read_text())
            if (seen.get("source_bytes"), seen.get("source_mtime_ns")) == (
                stat.st_size,
                stat.st_mtime_ns,
            ):
                continue
        fresh.append(raw.path)
    return fresh


def specs_for_day(workspace: Workspace, day: dt.date) -> list[ReleaseSpec]:
    """The releases scheduled for ``day``: one per daily indicator and value column."""
    schedule = schedule_of(workspace)
    return [
        ReleaseSpec(
            indicator=indicator,
            start=day,
            end=day,
            level=schedule.level,
            k=schedule.k,
            value=value if len(indicator_spec(indicator).value_columns) > 1 else None,
        )
        for indicator in schedule.daily
        for value in indicator_spec(indicator).value_columns
    ]


@dataclass
class DayResult:
    """What one day's run did."""

    day: str
    ingested: list[str] = field(default_factory=list)
    released: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@task(retries=IO_RETRIES, retry_delay_seconds=10, cache_policy=NONE)
def ingest_new_drops(workspace: str, day: dt.date) -> list[str]:
    """Stage the day's new raw files; returns their names."""
    ws = Workspace.open(workspace)
    paths = new_drops(ws, day)
    if not paths:
        return []
    report = ingest_files(paths, ws)
    if not report.ok:
        raise MobilityError(report.failure_message())
    return [p.name for p in paths]


@task(cache_policy=NONE)
def release_one(workspace: str, spec: ReleaseSpec, executor: Executor = "local") -> dict[str, Any]:
    """One release (or the stored one); a budget refusal is returned, not raised."""
    try:
        outcome = release(open_context(workspace), spec, aggregator=aggregator_for(executor))
    except BudgetExceededError as exc:
        return {"refused": str(exc), "indicator": str(spec.indicator)}
    m = outcome.metadata
    return {
        "indicator": m["indicator"],
        "value_column": m["value_column"],
        "release_id": m["release_id"],
        "epsilon": m["epsilon"],
        "cells_released": m["cells_released"],
        "cells_suppressed": m["cells_suppressed"],
        "reused": outcome.reused,
        "directory": str(outcome.directory),
    }


@flow(name="mobility-daily")
def daily_flow(
    workspace: str, day: dt.date | None = None, executor: Executor = "local"
) -> dict[str, Any]:
    """Ingest the day's new drops, then release every scheduled indicator for the day.

    ``day`` defaults to today in the operator's time zone minus ``[schedule] lag_days``.
    With ``executor="dask"`` the flow must run on a ``DaskTaskRunner`` (see
    :func:`flows.distributed.run_daily`): exact aggregates are computed shard by shard there.
    """
    logger = get_run_logger()
    ws = Workspace.open(workspace)
    if day is None:
        today = dt.datetime.now(ZoneInfo(ws.config.workspace.timezone)).date()
        day = today - dt.timedelta(days=schedule_of(ws).lag_days)
    result = DayResult(day=str(day), ingested=ingest_new_drops(workspace, day))
    for spec in specs_for_day(ws, day):
        try:
            outcome = release_one(workspace, spec, executor)
        except MobilityError as exc:
            logger.error("%s for %s failed: %s", spec.indicator, day, exc)
            result.failed.append(f"{spec.indicator}: {exc}")
            continue
        if "refused" in outcome:
            logger.warning("%s for %s refused: %s", spec.indicator, day, outcome["refused"])
            result.refused.append(outcome["refused"])
        else:
            result.released.append(outcome)
    if result.failed:
        msg = f"{len(result.failed)} release(s) of {day} failed: " + "; ".join(result.failed)
        raise MobilityError(msg)
    return result.__dict__


@flow(name="mobility-backfill")
def backfill_flow(
    workspace: str,
    start: dt.date,
    end: dt.date,
    executor: Executor = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Run the daily flow for every day from ``start`` to ``end``, in order.

    With ``executor="dask"`` each day runs on the Dask scheduler at ``address`` (see
    :func:`flows.distributed.run_backfill`).
    """
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    daily = daily_flow
    if executor == "dask":
        daily = daily_flow.with_options(task_runner=dask_task_runner(address))
    return [daily(workspace, day, executor) for day in days]
