"""The ``mobility`` command. Each subcommand lives in a module of this package named after it."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from flows.cli.api import api, token
from flows.cli.audit import audit
from flows.cli.demo import demo
from flows.cli.export import chart, export
from flows.cli.ingest import ingest, init
from flows.cli.release import explain, release
from flows.cli.run import run, serve
from flows.cli.synth import synth
from schemas.errors import MobilityError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """A group that prints user errors as one clear message with the documented exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MobilityError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="mobility-dp", prog_name="mobility")
def cli() -> None:
    """Privacy-preserving mobility indicators from call-detail records.

    Exit status: 0 done, 1 failed, 2 bad usage or configuration, 3 refused by the privacy budget.
    """


cli.add_command(demo)
cli.add_command(synth)
cli.add_command(init)
cli.add_command(ingest)
cli.add_command(release)
cli.add_command(explain)
cli.add_command(run)
cli.add_command(serve)
cli.add_command(export)
cli.add_command(chart)
cli.add_command(api)
cli.add_command(token)
cli.add_command(audit)


def main() -> None:
    """Console-script entry point."""
    # Runs inside the data holder's walls: Prefect's server must not try to phone home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    cli()
