"""``mobility run`` (one day or a backfill, through Prefect) and ``mobility serve`` (on a cron)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flows.cli._common import JSON_OPTION, emit_json
from schemas.errors import ConfigurationError, MobilityError
from schemas.workspace import Workspace

if TYPE_CHECKING:
    import datetime as dt

    from flows.dask_executor import Executor

_EXECUTOR = click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where exact aggregates are computed: here, or shard by shard on Dask.",
)
_ADDRESS = click.option(
    "--address",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Dask scheduler to use with --executor dask [default: a local cluster].",
)

_DATE = click.DateTime(formats=["%Y-%m-%d"])
_WORKSPACE = click.option(
    "--workspace", type=click.Path(path_type=Path, file_okay=False), envvar="MOBILITY_WORKSPACE",
    required=True, help="The workspace (env: MOBILITY_WORKSPACE).",
)  # fmt: skip


def summarise(days: list[dict[str, Any]]) -> str:
    """A line per day: what was ingested, released, refused."""
    lines = []
    for d in days:
        new = sum(1 for r in d["released"] if not r["reused"])
        lines.append(
            f"{d['day']}: {len(d['ingested'])} drop(s) ingested, {new} release(s) made, "
            f"{len(d['released']) - new} already made, {len(d['refused'])} refused"
        )
        lines += [f"    refused: {r}" for r in d["refused"]]
    return "\n".join(lines)


@click.command()
@click.option(
    "--date", "day", type=_DATE, default=None, help="The day to run [default: yesterday]."
)
@click.option("--from", "start", type=_DATE, default=None, help="First day of a backfill.")
@click.option("--to", "end", type=_DATE, default=None, help="Last day of a backfill.")
@_EXECUTOR
@_ADDRESS
@_WORKSPACE
@JSON_OPTION
def run(
    *, day: dt.datetime | None, start: dt.datetime | None, end: dt.datetime | None,
    executor: str, address: str | None, workspace: Path, as_json: bool,
) -> None:  # fmt: skip
    """Run the daily Prefect flow: ingest new drops, then release the scheduled indicators.

    With --from/--to, a backfill: each day in order. Runs on a temporary local Prefect server
    unless PREFECT_API_URL points at a real one (then the runs show in its UI); the temporary
    server may take up to PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (default 120) to
    start. Without --date, the day is [schedule] lag_days before today in the workspace's time
    zone. With
    --executor dask, each shard's exact aggregate is a task on a Dask cluster (a local one, or
    --address tcp://HOST:PORT); noise is added once, here, and only this process writes the ledger.
    """
    from flows.daily import run_backfill, run_daily  # noqa: PLC0415
    from flows.dask_executor import check_executor  # noqa: PLC0415 - Prefect is slow to import

    Workspace.open(workspace)  # fail fast with a clear message
    check_executor(executor, address)
    mode: Executor = "dask" if executor == "dask" else "local"
    if day is not None and (start or end):
        msg = "Give either --date, or --from and --to, not both."
        raise ConfigurationError(msg)
    if (start is None) != (end is None):
        msg = "A backfill needs both --from and --to."
        raise ConfigurationError(msg)
    if start is not None and end is not None:
        if end < start:
            raise ConfigurationError(f"--to {end.date()} is before --from {start.date()}.")
        days = run_backfill(
            str(workspace), start.date(), end.date(), executor=mode, address=address
        )
    else:
        days = [
            run_daily(str(workspace), day.date() if day else None, executor=mode, address=address)
        ]
    if as_json:
        emit_json({"days": days})
    else:
        click.echo(summarise(days))


def _require_server(url: str) -> None:
    """Fail in one line, before anything is registered, if the Prefect API does not answer."""
    from flows.prefect_api import api_unhealthy  # noqa: PLC0415

    why = api_unhealthy(url)
    if why is not None:
        msg = (
            f"Cannot reach the Prefect server at PREFECT_API_URL={url} ({why}). Start it "
            "(prefect server start --host 127.0.0.1) or correct PREFECT_API_URL, then run "
            "mobility serve again."
        )
        raise MobilityError(msg)


@click.command()
@_WORKSPACE
@click.option(
    "--name",
    default="daily",
    show_default=True,
    help="Name of the daily deployment (the backfill one is NAME-backfill, or 'backfill').",
)
@_EXECUTOR
@_ADDRESS
def serve(*, workspace: Path, name: str, executor: str, address: str | None) -> None:
    """Serve the daily and backfill flows as Prefect deployments, until stopped.

    mobility-daily/NAME runs on the cron of [schedule] in mobility.toml, in the workspace's time
    zone, and releases the day `lag_days` before today there; trigger it by hand with
    `prefect deployment run 'mobility-daily/daily' [--param day=YYYY-MM-DD]`. Backfill with
    `prefect deployment run 'mobility-backfill/backfill' --param start=D1 --param end=D2`.
    Needs PREFECT_API_URL pointing at a Prefect server (`prefect server start`) or Prefect
    Cloud; runs, their logs and failures show in its UI. One run of each deployment at a time.
    """
    from flows.dask_executor import check_executor  # noqa: PLC0415 - Prefect is slow to import

    ws = Workspace.open(workspace)
    check_executor(executor, address)
    if not os.environ.get("PREFECT_API_URL"):
        msg = (
            "mobility serve needs a Prefect server to schedule runs (a temporary one cannot): "
            "start one with 'prefect server start' and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (or use Prefect Cloud). To run a day now "
            "without a server, use 'mobility run --date YYYY-MM-DD'."
        )
        raise ConfigurationError(msg)
    _require_server(os.environ["PREFECT_API_URL"])
    from prefect import serve as prefect_serve  # noqa: PLC0415

    from flows.daily import schedule_of  # noqa: PLC0415
    from flows.deployments import backfill_name, deployments  # noqa: PLC0415

    mode: Executor = "dask" if executor == "dask" else "local"
    served = deployments(ws, name=name, executor=mode, address=address)
    schedule = schedule_of(ws)
    click.echo(
        f"Serving 'mobility-daily/{name}' for {ws.root} on cron '{schedule.cron}' "
        f"({ws.config.workspace.timezone}), and 'mobility-backfill/{backfill_name(name)}'; "
        f"executor {executor}. Ctrl-C stops."
    )
    prefect_serve(*served, print_starting_message=False)
