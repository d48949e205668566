"""The scheduled daily run: ingest what is new, then release every scheduled indicator.

``daily_flow`` handles one local day; ``backfill_flow`` runs it for each day of a range, in order
(a day's home-based indicators read the days before it). Both are what ``mobility run`` runs and
what ``mobility serve`` deploys (:mod:`flows.deployments`); their parameters are plain values so
that a deployment run triggered with none (the schedule) or some (``prefect deployment run
'mobility-daily/daily' --param day=2026-03-02``) validates.

Tasks are thin wrappers over :mod:`aggregation`; the ledger is written only by the release tasks
of this process, one release at a time. A release refused by the privacy budget is logged and the
others go on; any other failure fails the run (after the other releases were tried), and a day
with no data fails at once. Every failure is logged in the run's logs with the message the CLI
would print, and becomes the run's state message. A run holds the workspace's run lock
(:mod:`flows.run_lock`): two runs of one workspace never overlap.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from aggregation.extract import StagedSource
from aggregation.ingest import discover, ingest_files
from aggregation.ingest.commit import manifest_path
from aggregation.ingest.drops import NAMING_RULE
from aggregation.release import open_context, release
from flows.dask_executor import (
    Executor,
    aggregator_for,
    check_executor,
    dask_execution,
    dask_task_runner,
    on_dask,
)
from flows.prefect_api import prefect_api
from flows.retries import IO_RETRIES, IO_RETRY_DELAYS, os_error_only
from flows.run_lock import run_lock
from schemas.errors import BudgetExceededError, ConfigurationError, MobilityError
from schemas.indicators import spec as indicator_spec
from schemas.release import ReleaseSpec
from schemas.schedule import ScheduleSettings
from schemas.workspace import Workspace

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from schemas.indicators import Indicator
    from schemas.staged import Source

    RunLogger = logging.Logger | logging.LoggerAdapter[logging.Logger]


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
    """The releases scheduled for ``day``: one per daily indicator and value column, from CDR
    (``[schedule] daily``), then from GPS (``[schedule] daily_gps``)."""
    schedule = schedule_of(workspace)
    sources: list[tuple[Source, tuple[Indicator, ...]]] = [
        ("cdr", schedule.daily),
        ("gps", schedule.daily_gps),
    ]
    return [
        ReleaseSpec(
            indicator=indicator,
            start=day,
            end=day,
            level=schedule.level,
            k=schedule.k,
            value=value if len(indicator_spec(indicator).value_columns) > 1 else None,
            source=source,
        )
        for source, indicators in sources
        for indicator in indicators
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


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _today(ws: Workspace) -> dt.date:
    return _now_utc().astimezone(ZoneInfo(ws.config.workspace.timezone)).date()


def scheduled_day(ws: Workspace) -> dt.date:
    """The day a run with no ``day`` releases: ``[schedule] lag_days`` before today, in the
    workspace's time zone."""
    return _today(ws) - dt.timedelta(days=schedule_of(ws).lag_days)


def require_data(ws: Workspace, day: dt.date) -> None:
    """Fail the run at once if nothing is staged for ``day`` (after its new drops were ingested).

    Releasing a day without data would publish pure noise and charge it; every release would
    refuse it separately, so the run says it once, with what to do.
    """
    if not StagedSource(ws.staged).missing_days([day]):
        return
    folder = ws.resolve(schedule_of(ws).drops)
    msg = (
        f"No data for {day}: nothing is staged for that day and {folder} holds no export of it "
        f"(raw files are named {NAMING_RULE}). Nothing was released or charged. Put the "
        f"operator's export of {day} there, then run the day again: prefect deployment run "
        f"'mobility-daily/daily' --param day={day}, or mobility run --date {day} "
        f"--workspace {ws.root}."
    )
    raise MobilityError(msg)


@task(
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=os_error_only,
    cache_policy=NONE,
)
def ingest_new_drops(workspace: str, day: dt.date) -> list[str]:
    """Stage the day's new raw files; returns their names. Fails naming the files it could not
    stage (retried only on operating-system errors)."""
    ws = Workspace.open(workspace)
    paths = new_drops(ws, day)
    if not paths:
        return []
    report = ingest_files(paths, ws)
    if not report.ok:
        raise MobilityError(report.failure_message())
    return [p.name for p in paths]


@dataclass(frozen=True)
class DailyRelease:
    """One release of a day's run (made now, or the stored one)."""

    indicator: str
    value_column: str
    release_id: str
    epsilon: float
    cells_released: int
    cells_suppressed: int
    reused: bool
    directory: str
    source: Source

    def as_dict(self) -> dict[str, Any]:
        """As the run's result lists it."""
        return asdict(self)


@dataclass(frozen=True)
class DailyRefusal:
    """A release of a day's run that the budget (or an agreement) refused."""

    indicator: str
    reason: str


@task(cache_policy=NONE)
def release_one(
    workspace: str, spec: ReleaseSpec, executor: Executor = "local"
) -> DailyRelease | DailyRefusal:
    """One release (or the stored one); a budget refusal is returned, not raised."""
    try:
        outcome = release(open_context(workspace), spec, aggregator=aggregator_for(executor))
    except BudgetExceededError as exc:
        return DailyRefusal(str(spec.indicator), str(exc))
    m = outcome.metadata
    return DailyRelease(
        indicator=str(m.indicator),
        value_column=m.value_column,
        release_id=m.release_id,
        epsilon=m.epsilon,
        cells_released=m.cells_released,
        cells_suppressed=m.cells_suppressed,
        reused=outcome.reused,
        directory=str(outcome.directory),
        source=m.source,
    )


@contextmanager
def _logged_failures(logger: RunLogger) -> Iterator[None]:
    """Log a user-facing failure in the run's logs, as the CLI would print it, then re-raise it
    (Prefect makes it the run's state message)."""
    try:
        yield
    except MobilityError as exc:
        logger.error("%s", exc)
        raise


def _day_run(
    workspace: str,
    day: dt.date | None,
    executor: Executor,
    logger: RunLogger,
) -> dict[str, Any]:
    ws = Workspace.open(workspace)
    day = day or scheduled_day(ws)
    result = DayResult(day=str(day), ingested=ingest_new_drops(workspace, day))
    if result.ingested:
        logger.info("%s: ingested %s", day, ", ".join(result.ingested))
    require_data(ws, day)
    for spec in specs_for_day(ws, day):
        try:
            outcome = release_one(workspace, spec, executor)
        except MobilityError as exc:
            logger.error("%s for %s failed: %s", spec.indicator, day, exc)
            result.failed.append(f"{spec.indicator}: {exc}")
            continue
        if isinstance(outcome, DailyRefusal):
            logger.warning("%s for %s refused: %s", spec.indicator, day, outcome.reason)
            result.refused.append(outcome.reason)
        else:
            result.released.append(outcome.as_dict())
    if result.failed:
        msg = f"{len(result.failed)} release(s) of {day} failed: " + "; ".join(result.failed)
        raise MobilityError(msg)
    made = sum(1 for r in result.released if not r["reused"])
    logger.info(
        "%s: %d release(s) made, %d already made, %d refused by the budget",
        day, made, len(result.released) - made, len(result.refused),
    )  # fmt: skip
    return result.__dict__


@flow(name="mobility-daily")
def daily_flow(
    workspace: str,
    day: dt.date | None = None,
    executor: Executor = "local",
    address: str | None = None,
) -> dict[str, Any]:
    """Ingest the day's new drops, then release every scheduled indicator for the day.

    ``day`` defaults to today in the workspace's time zone minus ``[schedule] lag_days``. With
    ``executor="dask"``, each release's exact aggregate is computed shard by shard on the Dask
    scheduler at ``address`` (a local cluster without one); when this run is not on a
    ``DaskTaskRunner`` yet (a deployment run), it runs itself once more as a subflow on one.
    """
    logger = get_run_logger()
    with _logged_failures(logger):
        check_executor(executor, address)
        if executor == "dask" and not on_dask():
            on_cluster = daily_flow.with_options(task_runner=dask_task_runner(address))
            return on_cluster(workspace, day, executor, address)
        ws = Workspace.open(workspace)
        what = f"mobility-daily {day or 'scheduled day'}"
        with run_lock(ws.root, what=what, waiting=_waiting(logger)):
            return _day_run(workspace, day, executor, logger)


@flow(name="mobility-backfill")
def backfill_flow(
    workspace: str,
    start: dt.date,
    end: dt.date,
    executor: Executor = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Run the daily flow for every day from ``start`` to ``end``, in order.

    With ``executor="dask"`` each day runs on the Dask scheduler at ``address`` (a local cluster
    of this run without one).
    """
    logger = get_run_logger()
    with _logged_failures(logger):
        check_executor(executor, address)
        if end < start:
            msg = f"The backfill's end {end} is before its start {start}."
            raise ConfigurationError(msg)
        ws = Workspace.open(workspace)
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        daily = daily_flow
        if executor == "dask":
            daily = daily_flow.with_options(task_runner=dask_task_runner(address))
        with run_lock(ws.root, what=f"mobility-backfill {start}..{end}", waiting=_waiting(logger)):
            return [daily(workspace, day, executor, address) for day in days]


def _waiting(logger: RunLogger) -> Callable[[str], None]:
    def say(holder: str) -> None:
        logger.warning("Waiting for another run of this workspace to end: %s", holder)

    return say


def run_daily(
    workspace: str,
    day: dt.date | None = None,
    *,
    executor: Executor = "local",
    address: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """The daily flow for ``day`` from a command: on ``PREFECT_API_URL``'s server or a temporary
    one, with exact aggregates computed by ``executor``."""
    check_executor(executor, address)
    with prefect_api():
        if executor == "local":
            return daily_flow(workspace, day)
        with dask_execution(address, workers=workers) as scheduler:
            flow_on_dask = daily_flow.with_options(task_runner=dask_task_runner(scheduler))
            return flow_on_dask(workspace, day, executor="dask", address=scheduler)


def run_backfill(
    workspace: str,
    start: dt.date,
    end: dt.date,
    *,
    executor: Executor = "local",
    address: str | None = None,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """The backfill flow from ``start`` to ``end`` from a command; one cluster serves every day."""
    check_executor(executor, address)
    with prefect_api():
        if executor == "local":
            return backfill_flow(workspace, start, end)
        with dask_execution(address, workers=workers) as scheduler:
            return backfill_flow(workspace, start, end, executor="dask", address=scheduler)
