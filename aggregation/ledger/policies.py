"""The budget policy over time: which recorded policy governs which charge.

The ledger records the workspace's ``[privacy]`` policy as a chained record before the first
charge and again whenever ``mobility.toml`` states another one. The rules, which ``audit
verify`` replays from the ledger alone:

- A charge must fit the policy in force now *and*, for every accounting window it reads that
  was charged before, the policy in force when that window was first charged. So a change of
  caps never loosens a window already spent (a raised cap applies to new windows only; a
  lowered cap applies at once, which is only stricter).
- The accounting window and the composition cannot change once anything is charged: windows
  and spends recorded under one would be meaningless under the other. That needs a new ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.budget_policy import BudgetPolicy
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import date

    from aggregation.ledger.records import LedgerEntry, PolicyRecord


def policy_of(record: PolicyRecord) -> BudgetPolicy:
    """The :class:`BudgetPolicy` a policy record states."""
    return BudgetPolicy.from_mapping(record.policy, source=f"ledger policy seq {record.seq}")


def in_force(records: Sequence[PolicyRecord], seq: int) -> PolicyRecord | None:
    """The policy recorded last before record number ``seq``."""
    found = [r for r in records if r.seq < seq]
    return found[-1] if found else None


def governing(
    current: BudgetPolicy,
    records: Sequence[PolicyRecord],
    earlier: Iterable[LedgerEntry],
    windows: Iterable[date],
) -> list[BudgetPolicy]:
    """Every policy a charge of ``windows`` must fit, given the ``earlier`` charges.

    ``current`` first, then the policy in force at the first charge of each window read that
    was charged before (see the module docstring).
    """
    first: dict[date, int] = {}
    for entry in sorted(earlier, key=lambda e: e.seq):
        for window in entry.windows:
            first.setdefault(window, entry.seq)
    policies = [current]
    for window in sorted(set(windows)):
        if window not in first:
            continue
        record = in_force(records, first[window])
        if record is None:
            continue
        policy = policy_of(record)
        if policy not in policies:
            policies.append(policy)
    return policies


def change_problem(new: BudgetPolicy, last: BudgetPolicy | None, *, charged: bool) -> str | None:
    """Why ``new`` may not follow ``last`` in a ledger (``charged``: it holds charges)."""
    if last is None or not charged:
        return None
    changed = [
        name
        for name in ("accounting_window", "composition")
        if getattr(new, name) != getattr(last, name)
    ]
    if not changed:
        return None
    was = ", ".join(f"{n} = {getattr(last, n)!r}" for n in changed)
    now = ", ".join(f"{n} = {getattr(new, n)!r}" for n in changed)
    return (
        f"[privacy] in mobility.toml says {now}, but this ledger has charges recorded under "
        f"{was}: spends of one cannot be counted under the other. Restore {was} in "
        "mobility.toml, or start a new workspace (a new ledger) for the new policy."
    )


def require_change_allowed(new: BudgetPolicy, last: BudgetPolicy | None, *, charged: bool) -> None:
    """Raise :class:`ConfigurationError` when :func:`change_problem` finds one."""
    problem = change_problem(new, last, charged=charged)
    if problem is not None:
        raise ConfigurationError(problem)
