"""The daily Prefect flow on the real engine: ingest what is new, release what is scheduled."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

import flows.daily
from aggregation.release import open_context
from flows.cli import cli
from flows.daily import (
    backfill_flow,
    daily_flow,
    ingest_new_drops,
    new_drops,
    release_one,
    scheduled_day,
    specs_for_day,
)
from flows.retries import IO_RETRIES, os_error_only
from sample_data.synth import SynthConfig, generate
from schemas.errors import MobilityError
from schemas.workspace import Workspace
from tests.conftest import KEY_ENVIRON, START, workspace_with_policy

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def synthetic_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of a 1 500-subscriber country, generated once for the module's workspaces."""
    export = tmp_path_factory.mktemp("daily") / "export"
    generate(SynthConfig(subscribers=1_500, days=2, start=START, seed=9), export)
    return export


@pytest.fixture
def scheduled_workspace(
    synthetic_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh workspace whose drops folder holds the two days' raw files (nothing staged)."""
    ws = workspace_with_policy(tmp_path / "ws", synthetic_export)
    shutil.copytree(synthetic_export / "raw", ws / "drops")
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    return ws


@pytest.mark.slow  # a Prefect test server (about 10 s to start) and real flow runs
@pytest.mark.usefixtures("prefect_harness")
def test_daily_flow_ingests_then_releases_and_a_rerun_changes_nothing(
    scheduled_workspace: Path,
) -> None:
    ws = Workspace.open(scheduled_workspace)
    assert [p.name for p in new_drops(ws, START)] == ["cdr_2026-03-02.csv", "gps_2026-03-02.csv"]
    result = daily_flow(str(scheduled_workspace), START)
    assert sorted(result["ingested"]) == ["cdr_2026-03-02.csv", "gps_2026-03-02.csv"]
    assert result["refused"] == []
    expected = len(specs_for_day(ws, START))
    assert expected == 7  # six daily indicators, mobility_distance in two value columns
    assert len(result["released"]) == expected
    assert not any(r["reused"] for r in result["released"])
    assert new_drops(ws, START) == []

    entries = open_context(scheduled_workspace).ledger.entries()
    again = daily_flow(str(scheduled_workspace), START)
    assert again["ingested"] == []
    assert all(r["reused"] for r in again["released"])
    assert open_context(scheduled_workspace).ledger.entries() == entries


@pytest.mark.slow  # a Prefect test server (about 10 s to start) and real flow runs
@pytest.mark.usefixtures("prefect_harness")
def test_backfill_runs_each_day_in_order(scheduled_workspace: Path) -> None:
    days = backfill_flow(str(scheduled_workspace), START, START.replace(day=3))
    assert [d["day"] for d in days] == ["2026-03-02", "2026-03-03"]
    assert all(len(d["released"]) == 7 for d in days)
    budgets = open_context(scheduled_workspace).ledger.window_budgets()
    assert all(b.epsilon_spent <= b.epsilon_cap for b in budgets)


def test_serve_without_a_prefect_server_says_how_to_start_one(
    scheduled_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--workspace", str(scheduled_workspace)])
    assert result.exit_code == 2
    assert "prefect server start" in result.output


@pytest.mark.slow  # a Prefect test server (about 10 s to start) and real flow runs
@pytest.mark.usefixtures("prefect_harness")
def test_a_day_without_data_fails_at_once_and_charges_nothing(scheduled_workspace: Path) -> None:
    with pytest.raises(
        MobilityError, match=r"No data for 2026-03-20: .* Put the operator's export"
    ):
        daily_flow(str(scheduled_workspace), START.replace(day=20))
    assert open_context(scheduled_workspace).ledger.entries() == []
    assert not any((scheduled_workspace / "releases").iterdir())


@pytest.mark.slow  # a Prefect test server (about 10 s to start) and real flow runs
@pytest.mark.usefixtures("prefect_harness")
def test_a_run_without_a_day_releases_lag_days_before_today_in_the_workspace_zone(
    scheduled_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.open(scheduled_workspace)
    # 23:30 UTC on 3 March is already 4 March in Lagos (UTC+1): lag_days = 1 gives 3 March.
    late = dt.datetime(2026, 3, 3, 23, 30, tzinfo=dt.UTC)
    monkeypatch.setattr(flows.daily, "_now_utc", lambda: late)
    assert scheduled_day(ws) == START.replace(day=3)
    result = daily_flow(str(scheduled_workspace))
    assert result["day"] == "2026-03-03"
    assert len(result["released"]) == 7


def test_ingest_is_retried_on_os_errors_only() -> None:
    assert ingest_new_drops.retries == IO_RETRIES
    assert ingest_new_drops.retry_condition_fn is os_error_only
    assert release_one.retries == 0


def test_serve_refuses_an_address_without_the_dask_executor(
    scheduled_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never contacted
    args = ["serve", "--workspace", str(scheduled_workspace), "--address", "tcp://10.0.0.5:8786"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "use it with --executor dask" in result.output
    bad = CliRunner().invoke(cli, [*args[:3], "--executor", "dask", "--address", "nowhere"])
    assert bad.exit_code == 2
    assert "tcp://HOST:PORT" in bad.output


def test_serve_says_so_when_the_prefect_server_does_not_answer(
    scheduled_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens there
    result = CliRunner().invoke(cli, ["serve", "--workspace", str(scheduled_workspace)])
    assert result.exit_code == 1
    assert "Cannot reach the Prefect server at PREFECT_API_URL=http://127.0.0.1:9/api" in (
        result.output
    )
    assert "prefect server start" in result.output


@pytest.mark.slow  # a Prefect test server (about 10 s to start) and real flow runs
@pytest.mark.usefixtures("prefect_harness")
def test_a_corrupt_drop_fails_the_run_after_its_report_and_charges_nothing(
    scheduled_workspace: Path,
) -> None:
    (scheduled_workspace / "drops" / "cdr_2026-03-02.csv").write_bytes(b"\x00\x01 not a csv")
    with pytest.raises(MobilityError, match="cdr_2026-03-02"):
        daily_flow(str(scheduled_workspace), START)
    reports = sorted((scheduled_workspace / "reports").glob("ingest_*.json"))
    status = {f["drop_id"]: f["status"] for f in json.loads(reports[-1].read_text())["files"]}
    assert status == {"cdr_2026-03-02": "failed", "gps_2026-03-02": "staged"}
    assert open_context(scheduled_workspace).ledger.entries() == []
    assert not any((scheduled_workspace / "releases").iterdir())
