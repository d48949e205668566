"""Spend per accounting window, per rolling span and per indicator, from a ledger snapshot.

Figures are computed with the ledger's own rules (:mod:`aggregation.budget`), under the
composition the ledger states; pending entries (charged, publication unfinished or interrupted)
count, as they do for the ledger.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aggregation.budget import Charge, RollingBudget, WindowBudget, rolling_budget, window_budget

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from aggregation.ledger import LedgerEntry, Refusal
    from schemas.budget_policy import BudgetPolicy


@dataclass(frozen=True)
class IndicatorSpend:
    """What one indicator's releases charged, summed over the windows each one read."""

    indicator: str
    releases: int
    pending: int
    windows: int
    epsilon: float
    """Σ over releases of ε × windows read: the indicator's share of all window spend."""
    delta: float
    cells_released: int
    cells_suppressed: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "indicator": self.indicator,
            "releases": self.releases,
            "pending": self.pending,
            "windows": self.windows,
            "epsilon_window_sum": self.epsilon,
            "delta_window_sum": self.delta,
            "cells_released": self.cells_released,
            "cells_suppressed": self.cells_suppressed,
        }


@dataclass(frozen=True)
class SpendSummary:
    """Spend and budget left, per window, per rolling span and per indicator."""

    policy: BudgetPolicy
    windows: tuple[WindowBudget, ...]
    rolling: tuple[RollingBudget, ...]
    indicators: tuple[IndicatorSpend, ...]
    by_window: dict[date, dict[str, float]]
    """Per window, per indicator: the ε (basic) or ρ (zcdp) its releases charged there."""
    refusals: tuple[Refusal, ...]

    @property
    def worst_rolling(self) -> RollingBudget | None:
        """The rolling span that spent most, if any."""
        return max(self.rolling, key=lambda r: r.epsilon_spent, default=None)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready account."""
        worst = self.worst_rolling
        return {
            "composition": self.policy.composition,
            "windows": [_window_dict(w) for w in self.windows],
            "worst_rolling_span": None if worst is None else _rolling_dict(worst),
            "rolling": [_rolling_dict(r) for r in self.rolling],
            "indicators": [i.as_dict() for i in self.indicators],
            "refusals": [
                {
                    "refusal_id": r.refusal_id,
                    "indicator": r.indicator,
                    "windows": [str(d) for d in r.windows],
                    "epsilon": r.epsilon,
                    "delta": r.delta,
                    "reason": r.reason,
                    "created_at": r.created_at.isoformat(),
                }
                for r in self.refusals
            ],
        }


def _window_dict(w: WindowBudget) -> dict[str, Any]:
    return {
        "window": str(w.window),
        "releases": w.releases,
        "epsilon_spent": w.epsilon_spent,
        "epsilon_cap": w.epsilon_cap,
        "epsilon_left": w.epsilon_left,
        "delta_spent": w.delta_spent,
        "delta_cap": w.delta_cap,
        "delta_left": w.delta_left,
        "rho_spent": w.rho_spent,
        "rho_left": w.rho_left,
    }


def _rolling_dict(r: RollingBudget) -> dict[str, Any]:
    return {
        "start": str(r.start),
        "end": str(r.end),
        "epsilon_spent": r.epsilon_spent,
        "epsilon_cap": r.epsilon_cap,
        "epsilon_left": r.epsilon_left,
    }


def _indicators(entries: Sequence[LedgerEntry]) -> tuple[IndicatorSpend, ...]:
    groups: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        groups[entry.indicator].append(entry)
    return tuple(
        IndicatorSpend(
            indicator=name,
            releases=len(group),
            pending=sum(e.status == "pending" for e in group),
            windows=len({w for e in group for w in e.windows}),
            epsilon=math.fsum(e.epsilon * len(e.windows) for e in group),
            delta=math.fsum(e.delta * len(e.windows) for e in group),
            cells_released=sum(e.cells_released or 0 for e in group),
            cells_suppressed=sum(e.cells_suppressed or 0 for e in group),
        )
        for name, group in sorted(groups.items())
    )


def summarise_spend(
    policy: BudgetPolicy, entries: Sequence[LedgerEntry], refusals: Sequence[Refusal] = ()
) -> SpendSummary:
    """Spend of ``entries`` under ``policy`` (use the composition the ledger states)."""
    reading: dict[date, list[Charge]] = defaultdict(list)
    by_window: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    zcdp = policy.composition == "zcdp"
    for entry in entries:
        charge = entry.as_charge()
        for window in entry.windows:
            reading[window].append(charge)
            amount = (entry.rho or 0.0) if zcdp else entry.epsilon
            by_window[window][entry.indicator] += amount
    days = sorted(reading)
    windows = tuple(window_budget(policy, reading[d], d) for d in days)
    rolling: list[RollingBudget] = []
    if days:
        span = timedelta(days=policy.rolling_days - 1)
        end = days[0]
        while end <= days[-1]:
            inside = {id(c): c for d in days if end - span <= d <= end for c in reading[d]}
            rolling.append(rolling_budget(policy, list(inside.values()), end))
            end += timedelta(days=1)
    return SpendSummary(
        policy=policy,
        windows=windows,
        rolling=tuple(rolling),
        indicators=_indicators(entries),
        by_window={d: dict(v) for d, v in sorted(by_window.items())},
        refusals=tuple(refusals),
    )
