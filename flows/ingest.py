"""The ingest flow: stage raw exports into a workspace, one task per file, then the report.

Thin wrappers over :mod:`aggregation.ingest`; ``mobility ingest`` calls the same functions directly.
Tasks never receive the pseudonymisation secret: each one reads it from the environment or the
secret file itself, so it is never hashed for a cache key, persisted or logged by Prefect. Only
I/O tasks retry, and only on operating-system errors (a full disk, a flaky network mount); a file
that cannot be read is not transient and fails alone without a retry. The flow run fails at the
end, after the report is written, if any file failed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE

from aggregation.ingest import (
    FileOutcome,
    IngestFailedError,
    IngestReport,
    discover,
    ingest_file,
    new_run_id,
    prepare,
    write_report,
)
from flows.retries import IO_RETRIES, IO_RETRY_DELAYS, os_error_only


@task(cache_policy=NONE)
def find_raw_files(paths: list[str]) -> list[str]:
    """The raw files named by ``paths`` (files, or directories of them)."""
    return [str(raw.path) for raw in discover(paths)]


@task(
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=os_error_only,
    cache_policy=NONE,
)
def ingest_raw_file(path: str, workspace: str) -> FileOutcome:
    """Stage one raw file; a file that cannot be read gives a failed outcome."""
    raw = discover([path])[0]
    return ingest_file(prepare(workspace, feeds=[raw.feed]), raw)


@task(
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=os_error_only,
    cache_policy=NONE,
)
def write_ingest_report(
    run_id: str, started: str, workspace: str, outcomes: list[FileOutcome]
) -> IngestReport:
    """Write the run's reconciliation report into the workspace's reports/."""
    ctx = prepare(workspace, feeds=())
    report = IngestReport(
        run_id=run_id,
        started=started,
        workspace=str(ctx.workspace.root),
        settings=ctx.settings(),
        files=outcomes,
        finished=_now(),
    )
    write_report(report, ctx.workspace.reports)
    return report


@flow(name="ingest", log_prints=False)
def ingest_flow(paths: list[str], workspace: str) -> dict[str, Any]:
    """Stage raw exports (files or directories) into ``workspace``; return the report."""
    run_id, started = new_run_id(), _now()
    files = find_raw_files(paths)
    outcomes = [ingest_raw_file(path, workspace) for path in files]
    report = write_ingest_report(run_id, started, workspace, outcomes)
    if not report.ok:
        raise IngestFailedError(report.failure_message())
    return report.to_dict()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
