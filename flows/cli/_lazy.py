"""A click group that imports each subcommand's module only when that subcommand runs.

Importing every subcommand up front costs seconds (scipy, numba, matplotlib, Prefect, Polars,
DuckDB...), which ``mobility --help`` and ``--version`` would pay for nothing. Each subcommand is
registered here by name, module, attribute and its one-line summary (shown by ``--help`` without
importing the module; a test checks each summary against the command's own docstring).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any

import click

from schemas.errors import InternalError, MobilityError


@dataclass(frozen=True)
class LazyCommand:
    """Where subcommand ``name`` lives (``module.attribute``) and its one-line summary."""

    name: str
    module: str
    attribute: str
    summary: str

    def load(self) -> click.Command:
        """Import the subcommand's module and return the command."""
        command = getattr(importlib.import_module(self.module), self.attribute)
        if not isinstance(command, click.Command):
            msg = f"{self.module}.{self.attribute} is not a click command (a bug: please report it)"
            raise InternalError(msg)
        return command


class LazyGroup(click.Group):
    """A group of :class:`LazyCommand` that prints user errors as one message with its exit code."""

    def __init__(self, *args: Any, lazy: tuple[LazyCommand, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = {entry.name: entry for entry in lazy}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every subcommand's name, loaded or not."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand ``cmd_name``, imported on first use."""
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.lazy:
            command = self.lazy[cmd_name].load()
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of subcommands with their summaries, without importing them."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            # A stand-in with the summary as its help: click shortens it as it would the real one.
            shown = self.commands.get(name) or click.Command(name, help=self.lazy[name].summary)
            rows.append((name, shown.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a :class:`MobilityError` becomes its message and exit status."""
        try:
            return super().invoke(ctx)
        except MobilityError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
