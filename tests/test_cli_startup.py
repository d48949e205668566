"""The ``mobility`` command starts fast: importing it loads no heavy library (figures in
``benchmarks/bench_startup.py``; timing here would be flaky, so these tests look at imports)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

from flows.cli import SUBCOMMANDS, cli

if TYPE_CHECKING:
    from pathlib import Path

    from tests.live_api import LiveServer

HEAVY = (
    "scipy", "numba", "matplotlib", "prefect", "polars", "duckdb", "opendp", "pyarrow", "numpy",
    "shapely", "openpyxl", "fastapi", "pydantic", "uvicorn", "httpx", "jsonschema", "dask",
)  # fmt: skip


def _imported_after(code: str, extra: tuple[str, ...] = ()) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    modules: list[str] = json.loads(out.splitlines()[-1])
    return sorted({m.split(".")[0] for m in modules} & {*HEAVY, *extra})


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


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_run_loads_no_pandas_nor_audit_or_plotting_library(
    live_api: LiveServer, tmp_path: Path, fmt: str
) -> None:
    # pyarrow's dataset layer (pq.read_table) imports pandas whenever it is installed.
    argv = ["mobility", "export", "od_trips", "--from", "2026-03-02", "--format", fmt,
            "--workspace", str(live_api.workspace), "--out", str(tmp_path)]  # fmt: skip
    code = f"import sys\nfrom flows.cli import main\nsys.argv = {argv!r}\ntry:\n    main()\n"
    code += "except SystemExit as exc:\n    assert not exc.code, exc.code"
    loaded = set(_imported_after(code, extra=("pandas",)))
    assert loaded & {"pandas", "scipy", "numba", "matplotlib", "prefect", "opendp"} == set()
    assert any(tmp_path.glob(f"*.{fmt}"))
