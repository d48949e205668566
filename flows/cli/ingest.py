"""``mobility init`` and ``mobility ingest``: create a workspace, stage raw exports into it.

``ingest`` calls :mod:`aggregation.ingest` directly (single shot, no workflow server to wait for);
the daily Prefect flow (:mod:`flows.daily`) stages each day's new drops with the same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from flows.cli._common import JSON_OPTION, emit_json, progress_printer
from schemas.errors import MobilityError
from schemas.workspace import CONFIG_FILE, init_workspace

if TYPE_CHECKING:
    from aggregation.ingest import Progress, RawFile

WORKSPACE_OPTION = click.option(
    "--workspace",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="MOBILITY_WORKSPACE",
    required=True,
    help="The workspace directory (env: MOBILITY_WORKSPACE).",
)


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def init(directory: Path) -> None:
    """Create a workspace in DIRECTORY with a documented default mobility.toml.

    Creates staged/, quarantine/, releases/ and reports/; the privacy ledger will be
    DIRECTORY/ledger.duckdb. An existing mobility.toml is never overwritten.
    """
    ws = init_workspace(directory)
    geo = ws.config.geography
    secret_env = ws.config.pseudonymisation.secret_env
    click.echo(
        "\n".join(
            [
                f"Workspace created in {ws.root}",
                f"  configuration : {ws.root / CONFIG_FILE} (edit it: every key is documented)",
                "  directories   : staged/ quarantine/ releases/ reports/",
                "Next:",
                f"  1. put the zones and the cell table at {geo.zones} and {geo.cells}",
                f"  2. set the pseudonymisation secret: export {secret_env}=<long random value>",
                f"  3. mobility ingest RAW_DIR --workspace {ws.root}",
            ]
        )
    )


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@WORKSPACE_OPTION
@JSON_OPTION
def ingest(paths: tuple[Path, ...], workspace: Path, as_json: bool) -> None:
    """Validate, pseudonymise, zone-map and stage raw exports (files or directories).

    Raw files are named cdr_YYYY-MM-DD.csv|.csv.gz|.parquet or gps_YYYY-MM-DD.<same>. Bad rows
    go to quarantine/ with a reason and their line; the report in reports/ reconciles every row.
    A file that cannot be read fails alone (exit status 1 at the end); the others are staged.
    """
    # Imported here: polars, DuckDB and shapely load only when this command runs.
    from aggregation.ingest import IngestFailedError, ingest_files  # noqa: PLC0415

    try:
        report = ingest_files(paths, workspace, progress=_progress(quiet=as_json))
    except OSError as exc:
        msg = (
            f"Ingest stopped: {exc}. Fix the cause (disk space, permissions, a missing mount) "
            "and run the same command again: drops already staged stay as they are and the "
            "interrupted one is redone."
        )
        raise MobilityError(msg) from exc
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(report.summary(), nl=False)
        click.echo(f"Report: {report.paths.get('json')}")
    for warning in report.warnings():  # on stderr, with --json too: a header-only drop is news
        click.secho(f"warning: {warning}", err=True, fg="yellow", bold=True)
    if not report.ok:
        raise IngestFailedError(report.failure_message())


def _progress(*, quiet: bool) -> Progress | None:
    """Rows done per file, on a terminal only."""
    show = progress_printer(quiet=quiet)
    if show is None:
        return None

    def progress(raw: RawFile, done: int, total: int) -> None:
        show(f"{raw.name}: {done:,} of {total:,} rows")

    return progress
