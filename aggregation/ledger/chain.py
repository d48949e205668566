"""The hash chain: what each record's hash covers, and the chain of all records in order.

One numbering, ``seq`` = 1, 2, 3, …, runs over every record whatever its kind (charge,
publication, refusal, policy); each record's ``prev_hash`` is the hash of the record numbered
``seq - 1`` (:data:`~aggregation.ledger.hashing.GENESIS_HASH` for the first), and its own hash
is the SHA-256 of :func:`~aggregation.ledger.hashing.canonical_json` of its content: every
column but the hash itself, plus ``"record": <kind>``. Records are never updated; a pending
charge is completed by appending its publication, so any hash noted during a run stays in the
chain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from aggregation.ledger.hashing import canonical_json, sha256_hex
from aggregation.ledger.records import (
    AgreementRecord,
    LedgerEntry,
    PolicyRecord,
    Publication,
    Refusal,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aggregation.ledger.records import RecordKind

ENTRY_COLUMNS = (
    "seq",
    "entry_id",
    "release_key",
    "indicator",
    "parameters",
    "privacy_unit",
    "windows",
    "composition",
    "mechanism",
    "l1",
    "l2",
    "linf",
    "scale",
    "epsilon",
    "delta",
    "rho",
    "zcdp_delta",
    "partition_threshold",
    "l0",
    "k_threshold",
    "input_fingerprint",
    "inputs",
    "code_version",
    "created_at",
    "prev_hash",
    "entry_hash",
)
"""The columns of ``ledger_entries`` (a charge), in table order."""

PUBLICATION_COLUMNS = (
    "seq",
    "entry_id",
    "outputs",
    "cells_released",
    "cells_suppressed",
    "published_at",
    "prev_hash",
    "record_hash",
)
REFUSAL_COLUMNS = (
    "seq",
    "refusal_id",
    "release_key",
    "indicator",
    "parameters",
    "windows",
    "mechanism",
    "epsilon",
    "delta",
    "rho",
    "reason",
    "created_at",
    "prev_hash",
    "record_hash",
)
POLICY_COLUMNS = ("seq", "policy_id", "policy", "recorded_at", "prev_hash", "record_hash")
AGREEMENT_COLUMNS = (
    "seq",
    "record_id",
    "agreement_id",
    "version",
    "agreement",
    "recorded_at",
    "prev_hash",
    "record_hash",
)


def _content(record: object, kind: RecordKind, columns: Iterable[str]) -> dict[str, object]:
    content: dict[str, object] = {"record": kind}
    for name in columns:
        if name not in ("entry_hash", "record_hash"):
            content[name] = getattr(record, name)
    return content


def entry_content(entry: LedgerEntry) -> dict[str, object]:
    """What ``entry_hash`` covers: every charge column but ``entry_hash`` (with ``prev_hash``),
    and ``"record": "charge"``. The publication, a later record, is not part of it."""
    return _content(entry, "charge", ENTRY_COLUMNS)


def canonical_entry_json(entry: LedgerEntry) -> bytes:
    """The bytes ``entry_hash`` is the SHA-256 of."""
    return canonical_json(entry_content(entry))


def compute_entry_hash(entry: LedgerEntry) -> str:
    """SHA-256 (hex) of :func:`canonical_entry_json`: what ``entry.entry_hash`` must equal."""
    return sha256_hex(canonical_entry_json(entry))


def publication_hash(publication: Publication) -> str:
    """What ``publication.record_hash`` must equal."""
    return sha256_hex(canonical_json(_content(publication, "publication", PUBLICATION_COLUMNS)))


def refusal_hash(refusal: Refusal) -> str:
    """What ``refusal.record_hash`` must equal."""
    return sha256_hex(canonical_json(_content(refusal, "refusal", REFUSAL_COLUMNS)))


def policy_hash(record: PolicyRecord) -> str:
    """What ``record.record_hash`` must equal."""
    return sha256_hex(canonical_json(_content(record, "policy", POLICY_COLUMNS)))


def agreement_hash(record: AgreementRecord) -> str:
    """What ``record.record_hash`` must equal."""
    return sha256_hex(canonical_json(_content(record, "agreement", AGREEMENT_COLUMNS)))


ChainRecord = LedgerEntry | Publication | Refusal | PolicyRecord | AgreementRecord
"""Any record of the chain."""

_KINDS: dict[type, tuple[RecordKind, tuple[str, ...]]] = {
    LedgerEntry: ("charge", ENTRY_COLUMNS),
    Publication: ("publication", PUBLICATION_COLUMNS),
    Refusal: ("refusal", REFUSAL_COLUMNS),
    PolicyRecord: ("policy", POLICY_COLUMNS),
    AgreementRecord: ("agreement", AGREEMENT_COLUMNS),
}
"""Each record type: its kind and its table's columns."""


def record_kind(record: ChainRecord) -> RecordKind:
    """The kind of ``record`` (``charge``, ``publication``, …)."""
    return _KINDS[type(record)][0]


def record_columns(record: ChainRecord) -> tuple[str, ...]:
    """The columns of ``record``'s table, in table order."""
    return _KINDS[type(record)][1]


def own_hash(record: ChainRecord) -> str:
    """The hash ``record`` carries (``entry_hash`` of a charge, ``record_hash`` of the others)."""
    return record.entry_hash if isinstance(record, LedgerEntry) else record.record_hash


def recompute_hash(record: ChainRecord) -> str:
    """What :func:`own_hash` of ``record`` must equal: the hash of its content."""
    kind, columns = _KINDS[type(record)]
    return sha256_hex(canonical_json(_content(record, kind, columns)))


RecordT = TypeVar("RecordT", LedgerEntry, Publication, Refusal, PolicyRecord, AgreementRecord)
"""One kind of record of the chain, kept through :func:`sealed`."""


def sealed(record: RecordT, seq: int, prev_hash: str) -> RecordT:
    """``record`` numbered ``seq``, linked to ``prev_hash`` and hashed over that content."""
    if isinstance(record, LedgerEntry):
        entry = replace(record, seq=seq, prev_hash=prev_hash, entry_hash="")
        return replace(entry, entry_hash=recompute_hash(entry))
    other = replace(record, seq=seq, prev_hash=prev_hash, record_hash="")
    return replace(other, record_hash=recompute_hash(other))


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One record as the chain sees it: its number, kind, name, links and hashes."""

    seq: int
    kind: RecordKind
    label: str
    prev_hash: str
    record_hash: str
    recomputed: str

    @property
    def intact(self) -> bool:
        """True when the record still hashes to its recorded hash."""
        return self.recomputed == self.record_hash


def chain_links(
    entries: Iterable[LedgerEntry],
    publications: Iterable[Publication] = (),
    refusals: Iterable[Refusal] = (),
    policies: Iterable[PolicyRecord] = (),
    agreements: Iterable[AgreementRecord] = (),
) -> list[ChainLink]:
    """Every record of the ledger as a :class:`ChainLink`, in ``seq`` order."""
    links: list[ChainLink] = []
    for e in entries:
        label = f"entry seq {e.seq} ({e.indicator}, {e.entry_id[:8]})"
        links.append(
            ChainLink(e.seq, "charge", label, e.prev_hash, e.entry_hash, compute_entry_hash(e))
        )
    for p in publications:
        label = f"publication seq {p.seq} (of entry {p.entry_id[:8]})"
        links.append(
            ChainLink(p.seq, "publication", label, p.prev_hash, p.record_hash, publication_hash(p))
        )
    for r in refusals:
        label = f"refusal seq {r.seq} ({r.indicator}, {r.refusal_id[:8]})"
        links.append(
            ChainLink(r.seq, "refusal", label, r.prev_hash, r.record_hash, refusal_hash(r))
        )
    for q in policies:
        label = f"policy seq {q.seq} ({q.policy_id[:8]})"
        recomputed = policy_hash(q)
        links.append(ChainLink(q.seq, "policy", label, q.prev_hash, q.record_hash, recomputed))
    for a in agreements:
        label = f"agreement seq {a.seq} ({a.agreement_id} v{a.version})"
        recomputed = agreement_hash(a)
        links.append(ChainLink(a.seq, "agreement", label, a.prev_hash, a.record_hash, recomputed))
    return sorted(links, key=lambda link: link.seq)
