"""``agreements``: every release made under a data-sharing agreement conformed to it.

Replayed from the ledger alone, with the rule the ledger applies before charging
(:func:`aggregation.ledger.agreements.agreement_reasons`): each entry naming an agreement must
name the version in force when it was charged (the version registered last before it), and fit
that version's terms on the day it was charged — indicator, level, source, k, the days of data
it covers, the term, and the agreement's budget per window and over its term, counting the
charges made under the agreement before it. Once any agreement is registered, every release
must name one. An agreement record edited after it was written breaks the hash chain
(``chain``); one whose hashes were recomputed still has to explain every release made under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aggregation.audit.findings import entry_label, fail
from aggregation.ledger.agreements import (
    agreement_of,
    agreement_reasons,
    latest,
    named_in,
    spend_of,
)
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.audit.findings import Finding
    from aggregation.ledger import AgreementRecord, LedgerEntry


def check_agreements(
    records: Sequence[AgreementRecord], entries: Sequence[LedgerEntry]
) -> list[Finding]:
    """Findings for agreement records that do not parse and releases outside their agreement."""
    findings: list[Finding] = []
    valid: list[AgreementRecord] = []
    for record in records:
        try:
            agreement = agreement_of(record)
        except ConfigurationError as err:
            where = f"agreement seq {record.seq} ({record.agreement_id})"
            findings.append(
                fail("agreements", where, f"the recorded agreement is not valid: {err}")
            )
            continue
        if (agreement.agreement_id, agreement.version) != (record.agreement_id, record.version):
            where = f"agreement seq {record.seq} ({record.agreement_id} v{record.version})"
            text = f"its columns name it differently from its content ({agreement.label})"
            findings.append(fail("agreements", where, text))
        valid.append(record)
    first = min((r.seq for r in valid), default=None)
    for entry in entries:
        named = named_in(entry.parameters)
        if named is None:
            if first is not None and entry.seq > first:
                text = (
                    "made under no agreement after agreements were registered (seq "
                    f"{first}): the release code refuses that, so the entry was forged or "
                    "written by a modified program."
                )
                findings.append(fail("agreements", entry_label(entry), text))
            continue
        in_force = latest(valid, before_seq=entry.seq).get(named[0])
        if in_force is None:
            text = f"names agreement {named[0]} v{named[1]}, not registered before it."
            findings.append(fail("agreements", entry_label(entry), text))
            continue
        reasons = agreement_reasons(
            in_force, indicator=entry.indicator, parameters=entry.parameters,
            windows=entry.windows, epsilon=entry.epsilon, delta=entry.delta,
            earlier=[e for e in entries if e.seq < entry.seq],
            today=entry.created_at.date(),
        )  # fmt: skip
        if reasons:
            text = (
                "does not conform to the agreement in force when it was charged: "
                + "; ".join(reasons)
                + ". The ledger refuses such a release: the entry or the agreement record was "
                "edited, or written by a modified program. Investigate both."
            )
            findings.append(fail("agreements", entry_label(entry), text))
    return findings


@dataclass(frozen=True)
class AgreementSpend:
    """What was charged under one agreement, against its budget (version in force now)."""

    record: AgreementRecord
    releases: int
    epsilon_term: float
    delta_term: float
    max_window: str | None
    epsilon_max_window: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready account."""
        a = agreement_of(self.record)
        return {
            "agreement": a.agreement_id,
            "version": a.version,
            "releases": self.releases,
            "epsilon_term_spent": self.epsilon_term,
            "epsilon_term_budget": a.epsilon_term,
            "delta_term_spent": self.delta_term,
            "delta_term_budget": a.delta_term,
            "busiest_window": self.max_window,
            "epsilon_busiest_window": self.epsilon_max_window,
            "epsilon_per_window_budget": a.epsilon_per_window,
        }


def spend_per_agreement(
    records: Sequence[AgreementRecord], entries: Sequence[LedgerEntry]
) -> list[AgreementSpend]:
    """The spend of every agreement (by id, every version), in order of registration."""
    found = []
    for record in sorted(latest(records).values(), key=lambda r: r.seq):
        spend = spend_of(record.agreement_id, entries)
        busiest = max(spend.epsilon_by_window.items(), key=lambda kv: kv[1], default=None)
        found.append(
            AgreementSpend(
                record, spend.releases, spend.epsilon_term, spend.delta_term,
                str(busiest[0]) if busiest else None, busiest[1] if busiest else 0.0,
            )
        )  # fmt: skip
    return found
