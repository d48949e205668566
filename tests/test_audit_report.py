"""``audit report``: spend per window and indicator, budget left, refusals, a PNG timeline and a
self-contained HTML file; a failed verification shows in the report and the exit status."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from aggregation.audit import build_report, write_report
from flows.cli import cli
from schemas.workspace import init_workspace
from tests.audit_support import DAY2, audit_template, copy_workspace
from tests.conftest import START

if TYPE_CHECKING:
    from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return copy_workspace(audit_template(tmp_path_factory), tmp_path / "ws")


def test_the_report_states_spend_budget_left_and_refusals(workspace: Path, tmp_path: Path) -> None:
    report = build_report(workspace)
    spend = {str(w.window): w for w in report.spend.windows}
    # Day 1: event_counts ε = 0.5 and od_trips ε = 1 of the default cap 6; day 2: presence 0.5.
    assert sorted(spend) == [str(START), str(DAY2)]
    assert spend[str(START)].epsilon_spent == pytest.approx(1.5)
    assert spend[str(START)].epsilon_left == pytest.approx(4.5)
    assert spend[str(DAY2)].releases == 1
    indicators = {i.indicator: i for i in report.spend.indicators}
    assert set(indicators) == {"event_counts", "od_trips", "presence"}
    assert indicators["od_trips"].epsilon == pytest.approx(1.0)
    (refusal,) = report.spend.refusals
    assert refusal.indicator == "presence"
    worst = report.spend.worst_rolling
    assert worst is not None
    assert worst.epsilon_spent == pytest.approx(2.0)

    files = write_report(report, tmp_path / "out")
    assert files.png.read_bytes().startswith(PNG_MAGIC)
    html = files.html.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert not re.search(r"(src|href)=\"(https?:|/|\.)", html)  # nothing outside the file
    assert "all checks hold" in html
    head = report.verification.snapshot.head
    assert head is not None
    assert head.record_hash in html
    assert "already spent ε=1.5 of its cap ε=6" in html  # the refusal's reason
    assert "budget policy recorded in the ledger" in html
    doc = json.loads(files.json.read_text())
    assert doc["verification"]["passed"] is True
    assert [w["window"] for w in doc["spend"]["windows"]] == [str(START), str(DAY2)]


def test_the_report_command_writes_into_the_workspace_by_default(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "report", "--workspace", str(workspace)])
    assert result.exit_code == 0, result.output
    (out,) = (workspace / "reports").glob("audit-*")
    assert {p.name for p in out.iterdir()} == {"report.html", "timeline.png", "report.json"}
    assert f"{START}: 2 release(s), ε 1.5 of 6 (left 4.5)" in result.output
    assert "Refused requests: 1" in result.output


def test_a_failed_check_shows_in_the_report_and_its_exit_status(
    workspace: Path, tmp_path: Path
) -> None:
    entry = build_report(workspace).verification.snapshot.entries[0]
    csv = next(o.path for o in entry.outputs if o.path.endswith("data.csv"))
    (workspace / csv).write_text("tampered\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli, ["audit", "report", "--workspace", str(workspace), "--out", str(out), "--json"]
    )
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["verification"]["failures"][0]["where"] == csv
    assert "1 check(s) failed" in (out / "report.html").read_text(encoding="utf-8")


def test_a_workspace_without_releases_gets_an_empty_report(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "new").root
    files = write_report(build_report(ws), tmp_path / "out")
    assert files.png.read_bytes().startswith(PNG_MAGIC)
    assert "No release yet." in files.html.read_text(encoding="utf-8")
