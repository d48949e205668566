"""The ``mobility`` command. Each subcommand lives in a module of this package named after it.

Subcommand modules are imported only when their subcommand runs (:mod:`flows.cli._lazy`), so
``mobility --help`` and ``--version`` start as fast as the interpreter.
"""

from __future__ import annotations

import os

import click

from flows.cli._lazy import LazyCommand, LazyGroup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

SUBCOMMANDS = (
    LazyCommand("agreement", "flows.cli.agreement", "agreement",
                "Register data-sharing agreements in the ledger (hash-chained), list and show "
                "them."),
    LazyCommand("api", "flows.cli.api", "api",
                "Serve released data, exports, charts and the ledger over HTTP (FastAPI)."),
    LazyCommand("audit", "flows.cli.audit", "audit",
                "Check, without trusting the pipeline, that every published number was paid for."),
    LazyCommand("chart", "flows.cli.export", "chart",
                "Maps and charts of released data (PNG, and a self-contained HTML map)."),
    LazyCommand("demo", "flows.cli.demo", "demo",
                "Run the whole pipeline on a synthetic country and report what it released."),
    LazyCommand("explain", "flows.cli.release", "explain",
                "Say what releasing INDICATOR would cost and how accurate it would be."),
    LazyCommand("export", "flows.cli.export", "export",
                "Export released INDICATOR data for a period, level and zones, with its metadata."),
    LazyCommand("ingest", "flows.cli.ingest", "ingest",
                "Validate, pseudonymise, zone-map and stage raw exports (files or directories)."),
    LazyCommand("init", "flows.cli.ingest", "init",
                "Create a workspace in DIRECTORY with a documented default mobility.toml."),
    LazyCommand("release", "flows.cli.release", "release",
                "Release INDICATOR with DP noise and a k-threshold, paid for from the privacy "
                "budget."),
    LazyCommand("run", "flows.cli.run", "run",
                "Run the daily Prefect flow: ingest new drops, then release the scheduled "
                "indicators."),
    LazyCommand("serve", "flows.cli.run", "serve",
                "Serve the daily and backfill flows as Prefect deployments, until stopped."),
    LazyCommand("synth", "flows.cli.synth", "synth",
                "Write a synthetic country's operator export and its ground truth."),
    LazyCommand("transparency", "flows.cli.transparency", "transparency",
                "Write the public transparency page: agreements, what was released under "
                "them, budgets."),
    LazyCommand("token", "flows.cli.api", "token",
                "Create, list and revoke API tokens (stored hashed in WORKSPACE/api/tokens.json)."),
)  # fmt: skip


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS, lazy=SUBCOMMANDS)
@click.version_option(package_name="mobility-dp", prog_name="mobility")
def cli() -> None:
    """Privacy-preserving mobility indicators from call-detail records.

    Exit status: 0 done, 1 failed, 2 bad usage or configuration, 3 refused by the privacy budget.
    """


def main() -> None:
    """Console-script entry point."""
    # Runs inside the data holder's walls: Prefect's server must not try to phone home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    cli()
