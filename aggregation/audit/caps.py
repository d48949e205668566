"""Replay the budget: would the ledger have admitted every entry, in order, under its caps?

Each entry is checked with :func:`aggregation.budget.refusal_reasons` (the very rule the ledger
applies before charging) against the entries before it, under the composition the ledger states.
Spend only grows, so when every admission holds, every accounting window and every rolling span
ends within its cap as well. A forged entry that pushes a window over its cap is named, with the
window and the spend, even when its hashes were recomputed to keep the chain valid.

The caps themselves come from ``[privacy]`` in ``mobility.toml``; they are not in the ledger
(see the limitations in ``docs/auditors.md``). Refusals are not hash-chained either: they are
re-checked (:func:`check_refusals`), and a refusal the ledger cannot explain is a warning only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from aggregation.audit.findings import entry_label, fail, warn
from aggregation.budget import Charge, refusal_reasons, summarise_reasons
from schemas.errors import ConfigurationError
from schemas.privacy import COMPOSITIONS, PrivacyCost

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.audit.findings import Finding
    from aggregation.ledger import LedgerEntry, Refusal
    from schemas.privacy import BudgetPolicy


def stated_policy(
    policy: BudgetPolicy, entries: Sequence[LedgerEntry]
) -> tuple[BudgetPolicy, list[Finding]]:
    """The workspace policy under the composition the ledger's entries state, and warnings.

    Entries record the composition they were charged under; when they all agree, that is the
    stated one. When they disagree (the policy was changed between releases) the workspace's
    current composition is used and the disagreement reported.
    """
    stated = sorted({e.composition for e in entries})
    if not stated or stated == [policy.composition]:
        return policy, []
    if len(stated) == 1 and stated[0] in COMPOSITIONS:
        composition = next(c for c in COMPOSITIONS if c == stated[0])
        text = (
            f"the entries were charged under {composition} composition but mobility.toml now says "
            f"{policy.composition}; the caps are checked under {composition}, as stated."
        )
        return replace(policy, composition=composition), [warn("budget", "[privacy]", text)]
    text = (
        f"the entries state several compositions {stated}; the caps are checked under "
        f"mobility.toml's {policy.composition}. Mixing compositions in one ledger is unsound."
    )
    return policy, [fail("budget", "ledger_entries.composition", text)]


def _nearby(policy: BudgetPolicy, charges: Sequence[Charge], new: Charge) -> list[Charge]:
    """Charges that share a window or a rolling span with ``new`` (the ledger's own filter)."""
    reach = timedelta(days=policy.rolling_days - 1)
    low, high = min(new.windows) - reach, max(new.windows) + reach
    return [c for c in charges if max(c.windows) >= low and min(c.windows) <= high]


def check_caps(policy: BudgetPolicy, entries: Sequence[LedgerEntry]) -> list[Finding]:
    """Findings for every entry that its window or rolling caps should have refused."""
    findings: list[Finding] = []
    charged: list[Charge] = []
    for entry in entries:
        charge = entry.as_charge()
        try:
            reasons = refusal_reasons(policy, _nearby(policy, charged, charge), charge)
        except ConfigurationError as err:
            findings.append(fail("budget", entry_label(entry), str(err)))
            reasons = []
        if reasons:
            findings.append(
                fail(
                    "budget",
                    entry_label(entry),
                    f"over the cap ({policy.composition} composition): "
                    f"{summarise_reasons(reasons)}. The budget would have refused this charge: "
                    "the entry was forged or written by a modified program, or the caps in "
                    "[privacy] of mobility.toml were lowered after it. Compare the caps with the "
                    "approved policy and investigate this entry.",
                )
            )
        charged.append(charge)
    return findings


def check_refusals(
    policy: BudgetPolicy, entries: Sequence[LedgerEntry], refusals: Sequence[Refusal]
) -> list[Finding]:
    """Warnings for refusals the ledger cannot explain (nothing was published for them).

    A refusal was made against the entries charged before it: those with an earlier
    ``created_at`` (entries rolled back were deleted and never counted). Its zCDP δ is not
    recorded and is taken as 0.
    """
    findings: list[Finding] = []
    for refusal in refusals:
        before = [e.as_charge() for e in entries if e.created_at < refusal.created_at]
        cost = PrivacyCost(epsilon=refusal.epsilon, delta=refusal.delta, rho=refusal.rho)
        try:
            reasons = refusal_reasons(policy, before, Charge(refusal.windows, cost))
        except (ConfigurationError, ValueError):
            reasons = ["cannot be re-checked"]
        if not reasons:
            findings.append(
                warn(
                    "refusals",
                    f"refusal {refusal.refusal_id} ({refusal.indicator}, "
                    f"{refusal.created_at.isoformat(timespec='seconds')})",
                    "with the entries charged before it, this request fits the current caps: it "
                    "was refused under other caps, or the refusal record was edited (refusals "
                    "are not hash-chained). Nothing was published for it.",
                )
            )
    return findings
