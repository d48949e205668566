"""What an audit check reports: one :class:`Finding` per problem, with where it is and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from aggregation.ledger import LedgerEntry

Severity = Literal["fail", "warn"]
"""``fail``: a check does not hold (the audit fails, exit status 1). ``warn``: worth a look, but
no guarantee is broken (e.g. a charge that was never published: spent budget, nothing released)."""

Check = Literal[
    "ledger",
    "chain",
    "head",
    "files",
    "metadata",
    "cost",
    "sensitivity",
    "budget",
    "refusals",
    "agreements",
]
"""The checks of ``audit verify``, in the order they run (see :mod:`aggregation.audit.verify`)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found by one check: ``where`` it is and what it means (and how to act)."""

    check: Check
    severity: Severity
    where: str
    message: str

    def line(self) -> str:
        """One readable line: ``FAIL [chain] ledger entry seq 3 (…): …``."""
        return f"{self.severity.upper()} [{self.check}] {self.where}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        """A JSON-ready record."""
        return {
            "check": self.check,
            "severity": self.severity,
            "where": self.where,
            "message": self.message,
        }


def fail(check: Check, where: str, message: str) -> Finding:
    """A finding that makes the audit fail."""
    return Finding(check, "fail", where, message)


def warn(check: Check, where: str, message: str) -> Finding:
    """A finding that is reported but breaks no guarantee."""
    return Finding(check, "warn", where, message)


def entry_label(entry: LedgerEntry) -> str:
    """How findings name a ledger entry: ``ledger entry seq 3 (od_trips, id 1a2b…)``."""
    return f"ledger entry seq {entry.seq} ({entry.indicator}, id {entry.entry_id})"
