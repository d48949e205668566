"""The budget policy is in the ledger (issue 16.5): chained, never loosened for spent windows.

Caps used to live only in mobility.toml: raising them after the fact let more be spent on
windows already charged, and ``audit verify`` replayed against the raised caps and passed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from aggregation.audit import verify_workspace
from aggregation.ledger import Ledger
from flows.cli import cli
from schemas.budget_policy import BudgetPolicy
from schemas.errors import BudgetExceededError, ConfigurationError
from tests.audit_support import audit_template, copy_workspace, execute
from tests.test_ledger import publish, request

if TYPE_CHECKING:
    from pathlib import Path

DAY = date(2024, 3, 5)


def test_a_raised_cap_applies_to_new_windows_only(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    publish(Ledger(path, BudgetPolicy(epsilon_per_window=1.0)), request(1.0, run=1))
    raised = Ledger(path, BudgetPolicy(epsilon_per_window=3.0))
    assert raised.refusal_reasons(request(1.0, run=2))  # explain says so too
    assert raised.window_budgets([DAY])[0].epsilon_cap == 1.0
    with pytest.raises(BudgetExceededError, match=r"window 2024-03-05: .*cap ε=1"):
        publish(raised, request(1.0, run=2))  # the spent window keeps its cap of 1
    publish(raised, request(2.5, (DAY + timedelta(days=1),), run=3))  # a new window: cap 3
    records = raised.policies()
    assert [dict(r.policy)["epsilon_per_window"] for r in records] == [1.0, 3.0]
    assert [link.kind for link in raised.chain()] == [
        "policy", "charge", "publication", "policy", "refusal", "charge", "publication",
    ]  # fmt: skip


def test_a_lowered_cap_applies_at_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    publish(Ledger(path, BudgetPolicy(epsilon_per_window=2.0)), request(1.0, run=1))
    with pytest.raises(BudgetExceededError, match=r"cap ε=1\.5"):
        publish(Ledger(path, BudgetPolicy(epsilon_per_window=1.5)), request(1.0, run=2))


def test_the_unit_or_composition_cannot_change_once_charged(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    publish(Ledger(path, BudgetPolicy()), request(0.5))
    for changed in (BudgetPolicy(composition="zcdp"), BudgetPolicy(accounting_window="week")):
        with pytest.raises(ConfigurationError, match="start a new workspace"):
            publish(Ledger(path, changed), request(0.5, (date(2024, 3, 4),), run=1))
    assert len(Ledger(path, BudgetPolicy()).entries()) == 1


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return copy_workspace(audit_template(tmp_path_factory), tmp_path / "ws")


def test_verify_replays_the_recorded_policy_and_reports_a_mobility_toml_that_differs(
    workspace: Path,
) -> None:
    config = workspace / "mobility.toml"
    text = config.read_text()
    assert "epsilon_per_window = 6.0" in text
    config.write_text(text.replace("epsilon_per_window = 6.0", "epsilon_per_window = 60.0"))
    report = verify_workspace(workspace)
    assert report.passed
    assert report.policy.epsilon_per_window == 6.0  # the recorded policy, not mobility.toml's
    (note,) = report.warnings
    assert note.where == "[privacy] of mobility.toml"
    assert "epsilon_per_window = 60.0 (recorded: 6.0)" in note.message
    result = CliRunner().invoke(cli, ["audit", "verify", "--workspace", str(workspace)])
    assert result.exit_code == 0
    assert "differs from the policy the ledger recorded" in result.output


def test_editing_the_recorded_policy_is_detected(workspace: Path) -> None:
    execute(
        workspace / "ledger.duckdb",
        "UPDATE ledger_policies SET policy = replace(policy, '\"epsilon_per_window\":6.0', "
        "'\"epsilon_per_window\":60.0')",
    )
    report = verify_workspace(workspace)
    assert [(f.check, f.where.split(" (")[0]) for f in report.failures] == [
        ("chain", "policy seq 1")
    ]
