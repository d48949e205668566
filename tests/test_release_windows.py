"""Weekly and monthly privacy units are charged and capped per week or month (issue 16.1).

With ``accounting_window = "week"`` the ledger used to charge single days: three releases at the
weekly cap on three days of one week were all accepted, and the subscriber-week spent three
caps. Now every day read is charged to its window (named by its first day), once per release.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pytest

from aggregation.audit.verify import verify_workspace
from aggregation.release import explain, open_context, release
from schemas.errors import BudgetExceededError
from schemas.indicators import Indicator
from schemas.privacy import window_of, windows_of
from schemas.release import ReleaseSpec
from tests.conftest import KEY_ENVIRON, START

if TYPE_CHECKING:
    from pathlib import Path

    from schemas.privacy import AccountingWindow

DAY2, DAY3 = START + timedelta(days=1), START + timedelta(days=2)


def test_windows_are_named_by_their_first_day() -> None:
    wednesday = date(2026, 3, 4)
    assert window_of(wednesday, "day") == wednesday
    assert window_of(wednesday, "week") == date(2026, 3, 2)  # its Monday
    assert window_of(date(2026, 3, 1), "week") == date(2026, 2, 23)  # a Sunday: previous Monday
    assert window_of(wednesday, "month") == date(2026, 3, 1)
    days = [date(2026, 2, 27) + timedelta(days=i) for i in range(5)]  # Fri 27 Feb .. Tue 3 Mar
    assert windows_of(days, "week") == (date(2026, 2, 23), date(2026, 3, 2))
    assert windows_of(days, "month") == (date(2026, 2, 1), date(2026, 3, 1))
    assert windows_of(days, "day") == tuple(days)


def _workspace(template: Path, root: Path, unit: AccountingWindow) -> Path:
    ws = root / f"ws-{unit}"
    shutil.copytree(template, ws)
    config = ws / "mobility.toml"
    text = config.read_text().replace(
        "epsilon_per_window = 5.0", f'epsilon_per_window = 1.0\naccounting_window = "{unit}"'
    )
    config.write_text(text)
    return ws


def _presence(day: date) -> ReleaseSpec:
    return ReleaseSpec(Indicator.PRESENCE, day, day, epsilon=1.0)


@pytest.mark.parametrize("unit", ["week", "month"])
def test_a_second_release_in_the_same_window_is_refused_past_the_cap(
    staged_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unit: AccountingWindow,
) -> None:
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    ws = _workspace(staged_template, tmp_path, unit)
    first = release(open_context(ws), _presence(START))
    assert str(first.metadata.privacy_unit) == f"subscriber-{unit}"
    windows = [str(d) for d in first.metadata.scope.windows_charged]
    assert windows == [str(window_of(START, unit))]

    for day in (DAY2, DAY3):
        ctx = open_context(ws)
        assert explain(ctx, _presence(day)).refusal  # explain says so before any data
        with pytest.raises(BudgetExceededError, match=rf"window {window_of(START, unit)}"):
            release(ctx, _presence(day))

    ledger = open_context(ws).ledger
    (entry,) = ledger.entries()
    assert entry.windows == (window_of(START, unit),)
    (budget,) = ledger.window_budgets()
    assert budget.epsilon_spent == pytest.approx(1.0)
    report = verify_workspace(ws)
    assert report.passed, [f.as_dict() for f in report.failures]


def test_a_release_over_several_days_of_one_week_is_charged_once_to_that_week(
    staged_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    ws = _workspace(staged_template, tmp_path, "week")
    spec = ReleaseSpec(Indicator.PRESENCE, START, DAY3, epsilon=0.5)
    plan = explain(open_context(ws), spec).as_dict()
    one_day = explain(open_context(ws), _presence(START)).as_dict()
    # one subscriber-week covers all 3 released days: three times the L1 of one day
    assert plan["sensitivity"]["l1"] == 3 * one_day["sensitivity"]["l1"]
    assert plan["windows_charged"] == [str(START)]
    release(open_context(ws), spec)
    (budget,) = open_context(ws).ledger.window_budgets()
    assert budget.epsilon_spent == pytest.approx(0.5)
