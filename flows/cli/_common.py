"""Helpers shared by the subcommands: progress on terminals only, JSON output for scripts."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Callable

JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print a machine-readable JSON document instead."
)


def progress_printer(*, quiet: bool = False) -> Callable[[str], None] | None:
    """A progress callback that prints to stderr on a terminal, or None (quiet in CI and logs)."""
    if quiet or not sys.stderr.isatty():
        return None

    def show(message: str) -> None:
        click.echo(f"  … {message}", err=True)

    return show


def emit_json(document: dict[str, Any]) -> None:
    """Print ``document`` as indented JSON on stdout."""
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))
