"""``mobility run`` (one day or a backfill, through Prefect) and ``mobility serve`` (on a cron)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flows.cli._common import JSON_OPTION, emit_json
from schemas.errors import ConfigurationError
from schemas.workspace import Workspace

if TYPE_CHECKING:
    import datetime as dt

    from flows.distributed import Executor

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
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where exact aggregates are computed: here, or shard by shard on Dask.",
)
@click.option(
    "--address",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Dask scheduler to use with --executor dask [default: a local cluster].",
)
@_WORKSPACE
@JSON_OPTION
def run(
    *, day: dt.datetime | None, start: dt.datetime | None, end: dt.datetime | None,
    executor: str, address: str | None, workspace: Path, as_json: bool,
) -> None:  # fmt: skip
    """Run the daily Prefect flow: ingest new drops, then release the scheduled indicators.

    With --from/--to, a backfill: each day in order. Runs on a temporary local Prefect server
    unless PREFECT_API_URL points at a real one (then the runs show in its UI). With
    --executor dask, each shard's exact aggregate is a task on a Dask cluster (a local one, or
    --address tcp://HOST:PORT); noise is added once, here, and only this process writes the ledger.
    """
    from flows.distributed import (  # noqa: PLC0415 - Prefect is slow to import
        check_executor,
        run_backfill,
        run_daily,
    )

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


@click.command()
@_WORKSPACE
@click.option("--name", default="daily", show_default=True, help="Name of the deployment.")
def serve(*, workspace: Path, name: str) -> None:
    """Serve the daily flow as a Prefect deployment on the cron of [schedule] in mobility.toml.

    Point PREFECT_API_URL at a Prefect server (`prefect server start`) or Prefect Cloud to see
    and trigger runs there; each scheduled run releases the day `lag_days` before it.
    """
    from flows.daily import daily_flow, schedule_of  # noqa: PLC0415 - Prefect is slow to import

    ws = Workspace.open(workspace)
    schedule = schedule_of(ws)
    if not os.environ.get("PREFECT_API_URL"):
        msg = (
            "mobility serve needs a Prefect server to schedule runs (a temporary one cannot): "
            "start one with 'prefect server start' and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (or use Prefect Cloud). To run a day now "
            "without a server, use 'mobility run --date YYYY-MM-DD'."
        )
        raise ConfigurationError(msg)
    click.echo(
        f"Serving 'mobility-daily/{name}' for {ws.root} on cron '{schedule.cron}' "
        f"({ws.config.workspace.timezone}); Ctrl-C stops."
    )
    daily_flow.serve(
        name=name,
        cron=schedule.cron,
        parameters={"workspace": str(ws.root)},
        description=json.dumps({"workspace": str(ws.root), "daily": list(schedule.daily)}),
    )
