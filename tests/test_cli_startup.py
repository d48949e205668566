"""The ``mobility`` command starts fast: importing it loads no heavy library (figures in
``benchmarks/bench_startup.py``; timing here would be flaky, so these tests look at imports)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from flows.cli import SUBCOMMANDS, cli

HEAVY = (
    "scipy", "numba", "matplotlib", "prefect", "polars", "duckdb", "opendp", "pyarrow", "numpy",
    "shapely", "openpyxl", "fastapi", "pydantic", "uvicorn", "httpx", "jsonschema", "dask",
)  # fmt: skip


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    modules: list[str] = json.loads(out.splitlines()[-1])
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _imported_after("import flows.cli") == []


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_load_no_heavy_library(args: list[str]) -> None:
    code = f"from flows.cli import cli\ntry:\n    cli({args!r})\nexcept SystemExit:\n    pass"
    assert _imported_after(code) == []


def test_every_subcommand_is_registered_with_its_own_summary() -> None:
    for entry in SUBCOMMANDS:
        command = entry.load()
        assert command.name == entry.name
        assert command.get_short_help_str(1000) == entry.summary, entry.name


def test_help_lists_every_subcommand_and_loads_on_use() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line]
    assert listed == sorted(e.name for e in SUBCOMMANDS)
    assert isinstance(cli, click.Group)
    assert isinstance(cli.get_command(click.Context(cli), "token"), click.Group)
    assert cli.get_command(click.Context(cli), "no-such-command") is None


@pytest.mark.parametrize("module", ["flows.cli.export", "flows.cli.release"])
def test_single_shot_commands_load_no_audit_plotting_or_workflow_library(module: str) -> None:
    slow = {"scipy", "numba", "matplotlib", "prefect", "dask", "fastapi"}
    assert set(_imported_after(f"import {module}")) & slow == set()


def test_export_loads_no_opendp() -> None:
    assert "opendp" not in _imported_after("import flows.cli.export")
