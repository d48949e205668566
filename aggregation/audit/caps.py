"""Replay the budget: would the ledger have admitted every entry, in order, under its policy?

The policy is the ledger's own: every charge is checked against the policy recorded before it
(a chained record, see :mod:`aggregation.ledger.policies`) and, for each window it reads that
was charged before, the policy in force at that window's first charge — with
:func:`aggregation.budget.refusal_reasons`, the very rule the ledger applies before charging.
Spend only grows, so when every admission holds, every accounting window and every rolling span
ends within its cap as well. A forged entry that pushes a window over its cap is named, with the
window and the spend, even when its hashes were recomputed to keep the chain valid; raising the
caps in ``mobility.toml`` changes nothing here (a ``mobility.toml`` that differs from the
recorded policy is reported). Refusals are chained records too; each is re-checked against the
charges and policy before it (:func:`check_refusals`).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING

from aggregation.audit.findings import entry_label, fail, warn
from aggregation.budget import Charge, refusal_reasons, summarise_reasons
from aggregation.ledger.agreements import REASON_PREFIX
from aggregation.ledger.policies import change_problem, governing, in_force, policy_of
from schemas.errors import ConfigurationError
from schemas.privacy import PrivacyCost

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from aggregation.audit.findings import Finding
    from aggregation.ledger import LedgerEntry, PolicyRecord, Refusal
    from schemas.budget_policy import BudgetPolicy


def recorded_policy(
    configured: BudgetPolicy, records: Sequence[PolicyRecord]
) -> tuple[BudgetPolicy, list[Finding]]:
    """The policy the ledger recorded last (``configured`` if none), and findings about it:
    a recorded policy that does not parse, a forbidden change, a mobility.toml that differs."""
    findings: list[Finding] = []
    last: BudgetPolicy | None = None
    for record in records:
        where = f"policy seq {record.seq}"
        try:
            policy = policy_of(record)
        except ConfigurationError as err:
            findings.append(fail("budget", where, f"the recorded policy is not valid: {err}"))
            continue
        last = policy
    if last is None:
        return configured, findings
    if last != configured:
        now, then = configured.as_dict(), last.as_dict()
        differ = ", ".join(
            f"{k} = {now[k]!r} (recorded: {then[k]!r})" for k in now if now[k] != then[k]
        )
        findings.append(
            warn(
                "budget",
                "[privacy] of mobility.toml",
                f"differs from the policy the ledger recorded last (seq {records[-1].seq}): "
                f"{differ}. The recorded policy is the one in force and the one checked here; "
                "the next release records mobility.toml's as a new policy, which applies only "
                "to windows not charged yet.",
            )
        )
    return last, findings


def _policy_changes(
    records: Sequence[PolicyRecord], entries: Sequence[LedgerEntry]
) -> list[Finding]:
    findings: list[Finding] = []
    for before, after in itertools.pairwise(records):
        try:
            old, new = policy_of(before), policy_of(after)
        except ConfigurationError:
            continue  # reported by recorded_policy
        charged = any(e.seq < after.seq for e in entries)
        problem = change_problem(new, old, charged=charged)
        if problem is not None:
            findings.append(fail("budget", f"policy seq {after.seq}", problem))
    return findings


def _nearby(
    days: int, charged: Sequence[LedgerEntry], windows: Sequence[date]
) -> list[LedgerEntry]:
    """Entries that share a window or a rolling span of ``days`` with ``windows``."""
    reach = timedelta(days=days - 1)
    low, high = min(windows) - reach, max(windows) + reach
    return [e for e in charged if max(e.windows) >= low and min(e.windows) <= high]


def _reasons(
    records: Sequence[PolicyRecord],
    fallback: BudgetPolicy,
    charged: Sequence[LedgerEntry],
    seq: int,
    new: Charge,
) -> list[str]:
    """Why the charge ``new`` at record ``seq`` should have been refused (see the module doc)."""
    record = in_force(records, seq)
    current = policy_of(record) if record is not None else fallback
    earlier = [e for e in charged if e.seq < seq]
    policies = governing(current, records, earlier, new.windows)
    nearby = [
        e.as_charge() for e in _nearby(max(p.rolling_days for p in policies), earlier, new.windows)
    ]
    reasons: list[str] = []
    for policy in policies:
        reasons += [r for r in refusal_reasons(policy, nearby, new) if r not in reasons]
    return reasons


def check_caps(
    records: Sequence[PolicyRecord], fallback: BudgetPolicy, entries: Sequence[LedgerEntry]
) -> list[Finding]:
    """Findings for every entry that the recorded policy should have refused."""
    findings = _policy_changes(records, entries)
    for entry in entries:
        record = in_force(records, entry.seq)
        if record is None and records:
            text = "charged before any budget policy was recorded: the chain was rewritten."
            findings.append(fail("budget", entry_label(entry), text))
        try:
            if record is not None and entry.composition != policy_of(record).composition:
                text = (
                    f"states {entry.composition} composition, but the policy in force (seq "
                    f"{record.seq}) says {policy_of(record).composition}."
                )
                findings.append(fail("budget", entry_label(entry), text))
            reasons = _reasons(records, fallback, entries, entry.seq, entry.as_charge())
        except ConfigurationError as err:
            findings.append(fail("budget", entry_label(entry), str(err)))
            continue
        if reasons:
            findings.append(
                fail(
                    "budget",
                    entry_label(entry),
                    f"over the cap: {summarise_reasons(reasons)}. The budget recorded in the "
                    "ledger would have refused this charge: the entry was forged or written by a "
                    "modified program. Investigate this entry.",
                )
            )
    return findings


def check_refusals(
    records: Sequence[PolicyRecord],
    fallback: BudgetPolicy,
    entries: Sequence[LedgerEntry],
    refusals: Sequence[Refusal],
) -> list[Finding]:
    """Warnings for refusals the ledger cannot explain (nothing was published for them).

    A refusal was made against the charges recorded before it (entries rolled back were
    deleted and never counted) under the policy in force. Its zCDP δ is not recorded and is
    taken as 0.
    """
    findings: list[Finding] = []
    for refusal in refusals:
        if refusal.reason.startswith(REASON_PREFIX):
            continue  # refused by its data-sharing agreement, whose rule the reason names
        cost = PrivacyCost(epsilon=refusal.epsilon, delta=refusal.delta, rho=refusal.rho)
        try:
            new = Charge(refusal.windows, cost)
            reasons = _reasons(records, fallback, entries, refusal.seq, new)
        except (ConfigurationError, ValueError):
            reasons = ["cannot be re-checked"]
        if not reasons:
            findings.append(
                warn(
                    "refusals",
                    f"refusal seq {refusal.seq} ({refusal.indicator}, {refusal.refusal_id})",
                    "with the charges recorded before it, this request fits the policy then in "
                    "force: it was refused for another reason (e.g. a charge rolled back since). "
                    "Nothing was published for it.",
                )
            )
    return findings
