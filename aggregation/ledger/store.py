"""The ledger of a workspace: a DuckDB file, read and appended under sidecar locks.

See :mod:`aggregation.ledger` for the protocol of a charge; this module implements it.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from aggregation.budget import (
    Charge,
    refusal_reasons,
    summarise_reasons,
)
from aggregation.ledger.agreements import (
    agreement_of,
    agreement_reasons,
    latest,
    named_in,
)
from aggregation.ledger.chain import (
    record_columns,
    record_kind,
    sealed,
)
from aggregation.ledger.hashing import GENESIS_HASH
from aggregation.ledger.locks import flock, now
from aggregation.ledger.policies import (
    change_problem,
    governing,
    policy_of,
    require_change_allowed,
)
from aggregation.ledger.reading import LedgerReader, agreement_rows, rows_of_query
from aggregation.ledger.records import (
    AgreementRecord,
    LedgerEntry,
    PolicyRecord,
    Publication,
    Refusal,
    frozen_mapping,
)
from aggregation.ledger.tables import (
    HEAD_SQL,
    INSERTS,
    entry_from,
    row_of,
)
from aggregation.ledger.transaction import ChargeTransaction
from schemas.errors import (
    AgreementRefusedError,
    BudgetExceededError,
    ConfigurationError,
    InternalError,
)
from schemas.privacy import windows_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import date
    from pathlib import Path

    import duckdb

    from aggregation.ledger.chain import RecordT
    from aggregation.ledger.records import FileDigest, ReleaseRequest
    from schemas.agreement import Agreement


class Ledger(LedgerReader):
    """The privacy ledger of a workspace: a DuckDB file plus its sidecar lock files."""

    def refusal_reasons(self, request: ReleaseRequest) -> list[str]:
        """Why ``request`` would be refused now (empty if it would be charged); writes nothing."""
        if self.find(request.release_key) or self.pending(request.release_key):
            return []
        entries, records = self.entries(), self.policies()
        last = policy_of(records[-1]) if records else None
        problem = change_problem(self.policy, last, charged=bool(entries))
        if problem is not None:
            return [problem]
        new = Charge(request.windows, request.noise.cost)
        charges = [e.as_charge() for e in entries]
        reasons: list[str] = self._agreement_reasons(request, entries)
        for policy in governing(self.policy, records, entries, request.windows):
            reasons += [r for r in refusal_reasons(policy, charges, new) if r not in reasons]
        return reasons

    # -- charging ---------------------------------------------------------------------------

    @contextmanager
    def charge(self, request: ReleaseRequest) -> Iterator[ChargeTransaction]:
        """Charge ``request`` before publication, atomically; see :mod:`aggregation.ledger`.

        Yields a :class:`ChargeTransaction` whose ``entry`` is the new pending entry, the
        pending entry of the same question left by an interrupted run (``resumed``: paid
        already, to be finished), or the stored published entry (``reused``). Raises
        :class:`~schemas.errors.BudgetExceededError` (and records the refusal) when any window
        or rolling span would go over its cap.
        """
        with flock(
            self.writer_lock, exclusive=True, timeout=self.lock_timeout, purpose="a release"
        ):
            stored = self.find(request.release_key)
            if stored is not None:
                yield ChargeTransaction(self._publish, stored, reused=True)
                return
            interrupted = self.pending(request.release_key)
            if interrupted is not None:
                transaction = ChargeTransaction(self._publish, interrupted, resumed=True)
                yield transaction  # an exception leaves the paid charge pending, as it was
                if not transaction.published:
                    msg = f"The resumed charge {interrupted.entry_id} ended without publish()."
                    raise InternalError(msg)
                return
            entry = self._append_or_refuse(request)
            transaction = ChargeTransaction(self._publish, entry)
            try:
                yield transaction
            except BaseException as error:
                if transaction.may_roll_back:
                    self._roll_back(entry, error)
                else:
                    error.add_note(
                        f"Ledger entry {entry.entry_id} stays charged as 'pending': its noise "
                        "may be on disk. Run the same release again to finish it (same noise, "
                        "no second charge)."
                    )
                raise
            if not transaction.published:
                if transaction.may_roll_back:
                    self._roll_back(entry, None)
                msg = (
                    f"The charge of {request.indicator} (entry {entry.entry_id}) ended without "
                    "publish()."
                )
                raise InternalError(msg)

    def _nearby_entries(
        self, windows: Sequence[date], records: Sequence[PolicyRecord]
    ) -> list[LedgerEntry]:
        """Entries that share a window or a rolling span (of any policy) with ``windows``."""
        days = max([self.policy.rolling_days, *(policy_of(r).rolling_days for r in records)])
        reach = timedelta(days=days - 1)
        rows = self._query(
            "SELECT * FROM ledger_entries WHERE list_max(windows) >= ? AND list_min(windows) <= ? "
            "ORDER BY seq",
            [min(windows) - reach, max(windows) + reach],
        )
        return [entry_from(r, None) for r in rows]

    def _append_or_refuse(self, request: ReleaseRequest) -> LedgerEntry:
        """Check the budget; record a refusal and raise, or append a pending entry."""
        records = self._record_policy()
        unit = self.policy.accounting_window
        # CDR and GPS units (subscriber, device) have the same windows and caps.
        if request.unit.window != unit or request.windows != windows_of(request.windows, unit):
            msg = (
                f"A release of {request.indicator} states privacy unit {request.privacy_unit!r} "
                f"and windows {[str(w) for w in request.windows]}, but the policy's accounting "
                f"window is {unit!r} (windows named by their first day): a bug."
            )
            raise InternalError(msg)
        cost = request.noise.cost
        outside = self._agreement_reasons(request)
        if outside:
            refusal = self._record_refusal(request, outside)
            raise AgreementRefusedError(_outside_message(request, outside, refusal, self.path))
        new = Charge(request.windows, cost)
        nearby = self._nearby_entries(request.windows, records)
        charges = [e.as_charge() for e in nearby]
        reasons: list[str] = []
        for policy in governing(self.policy, records, nearby, request.windows):
            reasons += [r for r in refusal_reasons(policy, charges, new) if r not in reasons]
        if reasons:
            refusal = self._record_refusal(request, reasons)
            msg = (
                f"Refused by the privacy budget: releasing {request.indicator!r} for "
                f"{_describe_windows(request.windows)} at {cost.describe()} would overspend "
                f"({self.policy.composition} composition) — {summarise_reasons(reasons)}. "
                f"Nothing was charged or published (refusal {refusal.refusal_id} is recorded in "
                f"{self.path}). Ask for a smaller ε or fewer windows: spent budget never comes "
                "back, and caps are set in [privacy] of mobility.toml."
            )
            raise BudgetExceededError(msg)
        return self._append_entry(request)

    def _agreement_reasons(
        self, request: ReleaseRequest, entries: Sequence[LedgerEntry] | None = None
    ) -> list[str]:
        """Why ``request`` falls outside the agreement it names (none if it names none), given
        the ``entries`` charged so far (default: read them)."""
        named = named_in(request.parameters)
        if named is None:
            return []
        if entries is None:  # one connection: the agreements and the charges (no publications)
            with self._read() as con:
                records = [] if con is None else agreement_rows(con)
                rows = [] if con is None else rows_of_query(con, "SELECT * FROM ledger_entries")
            entries = [entry_from(r, None) for r in rows]
        else:
            records = self.agreements()
        record = latest(records).get(named[0])
        if record is None:
            msg = (
                f"A release names agreement {named[0]!r}, which this ledger has never "
                "registered: a bug (plans name only registered agreements)."
            )
            raise InternalError(msg)
        cost = request.noise.cost
        return agreement_reasons(
            record, indicator=request.indicator, parameters=request.parameters,
            windows=request.windows, epsilon=cost.epsilon, delta=cost.delta,
            earlier=entries, today=now().date(),
        )  # fmt: skip

    def refuse_outside_agreement(self, request: ReleaseRequest, extra: Sequence[str] = ()) -> None:
        """Record and raise :class:`~schemas.errors.AgreementRefusedError` when ``request``
        falls outside its agreement, or for the door's ``extra`` reasons (a recipient's token
        not covered); do nothing otherwise. Checked early by every door, so that a request
        outside its agreement costs no aggregate; the charge checks again, atomically."""
        if not extra and not self._agreement_reasons(request):
            return  # made under no agreement, or within it (checked without the lock: the
            # charge checks again under it)
        with flock(
            self.writer_lock, exclusive=True, timeout=self.lock_timeout, purpose="a refusal"
        ):
            reasons = [*extra, *self._agreement_reasons(request)]
            if reasons:
                refusal = self._record_refusal(request, reasons)
                raise AgreementRefusedError(_outside_message(request, reasons, refusal, self.path))

    def register_agreement(self, agreement: Agreement) -> tuple[AgreementRecord, bool]:
        """Append ``agreement`` as a chained record; returns it and whether it is new.

        The same id and version registered again with the same content is a no-op; with other
        content it is refused (register a new version). Versions of one id must increase.
        """
        with flock(
            self.writer_lock, exclusive=True, timeout=self.lock_timeout, purpose="an agreement"
        ):
            wanted = frozen_mapping(agreement.as_dict())
            versions = [r for r in self.agreements() if r.agreement_id == agreement.agreement_id]
            for record in versions:
                if record.version == agreement.version:
                    if agreement_of(record) == agreement:
                        return record, False
                    msg = (
                        f"Agreement {agreement.label} is registered already (ledger seq "
                        f"{record.seq}) with other terms; registered versions never change. "
                        f"Register the amendment as version {versions[-1].version + 1}."
                    )
                    raise ConfigurationError(msg)
            if versions and agreement.version < versions[-1].version:
                msg = (
                    f"Agreement {agreement.agreement_id} is at version {versions[-1].version}; "
                    f"version {agreement.version} cannot follow it. Number the amendment "
                    f"{versions[-1].version + 1}."
                )
                raise ConfigurationError(msg)
            with self._write() as con:
                record = self._append(con, lambda seq, prev_hash: AgreementRecord(
                    seq, uuid.uuid4().hex, agreement.agreement_id, agreement.version, wanted,
                    now(), prev_hash, "",
                ))  # fmt: skip
            return record, True

    @staticmethod
    def _next(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
        """``seq`` and ``prev_hash`` of the record to append."""
        head = con.execute(HEAD_SQL).fetchall()
        return (int(head[0][0]) + 1, str(head[0][1])) if head else (1, GENESIS_HASH)

    def _append(
        self, con: duckdb.DuckDBPyConnection, draft: Callable[[int, str], RecordT]
    ) -> RecordT:
        """Append the record ``draft(seq, prev_hash)`` makes as the new head of the chain,
        sealed with its hash (:func:`~aggregation.ledger.chain.sealed`), into its table."""
        seq, prev_hash = self._next(con)
        record = sealed(draft(seq, prev_hash), seq, prev_hash)
        con.execute(INSERTS[record_kind(record)], row_of(record, record_columns(record)))
        return record

    def _record_policy(self) -> list[PolicyRecord]:
        """Append the workspace's policy unless it is the one recorded last; return them all.

        Refuses (:class:`~schemas.errors.ConfigurationError`) a change of accounting window or
        composition in a ledger that holds charges (:mod:`aggregation.ledger.policies`).
        """
        recorded = self.policies()
        last = policy_of(recorded[-1]) if recorded else None
        if last == self.policy:
            return recorded
        charged = bool(self._query("SELECT seq FROM ledger_entries LIMIT 1"))
        require_change_allowed(self.policy, last, charged=charged)
        wanted = frozen_mapping(self.policy.as_dict())
        with self._write() as con:
            record = self._append(
                con,
                lambda seq, prev_hash: PolicyRecord(
                    seq, uuid.uuid4().hex, wanted, now(), prev_hash, ""
                ),
            )
        return [*recorded, record]

    def _record_refusal(self, request: ReleaseRequest, reasons: Sequence[str]) -> Refusal:
        cost = request.noise.cost

        def draft(seq: int, prev_hash: str) -> Refusal:
            return Refusal(
                seq=seq,
                refusal_id=uuid.uuid4().hex,
                release_key=request.release_key,
                indicator=request.indicator,
                parameters=request.parameters,
                windows=request.windows,
                mechanism=request.noise.mechanism,
                epsilon=cost.epsilon,
                delta=cost.delta,
                rho=cost.rho,
                reason="; ".join(reasons),
                created_at=now(),
                prev_hash=prev_hash,
                record_hash="",
            )

        with self._write() as con:
            return self._append(con, draft)

    def _append_entry(self, request: ReleaseRequest) -> LedgerEntry:
        """Append ``request`` as the new head of the chain, pending (committed)."""
        noise, cost = request.noise, request.noise.cost

        def draft(seq: int, prev_hash: str) -> LedgerEntry:
            return LedgerEntry(
                seq=seq,
                entry_id=uuid.uuid4().hex,
                release_key=request.release_key,
                indicator=request.indicator,
                parameters=request.parameters,
                privacy_unit=request.privacy_unit,
                windows=request.windows,
                composition=self.policy.composition,
                mechanism=noise.mechanism,
                l1=noise.sensitivity.l1,
                l2=float(noise.sensitivity.l2),
                linf=noise.sensitivity.linf,
                scale=noise.scale,
                epsilon=cost.epsilon,
                delta=cost.delta,
                rho=cost.rho,
                zcdp_delta=cost.zcdp_delta,
                partition_threshold=noise.threshold,
                l0=noise.l0,
                k_threshold=request.k_threshold,
                input_fingerprint=request.input_fingerprint,
                inputs=request.inputs,
                code_version=request.code_version,
                created_at=now(),
                prev_hash=prev_hash,
                entry_hash="",
            )

        with self._write() as con:
            return self._append(con, draft)

    def _publish(
        self,
        entry: LedgerEntry,
        outputs: tuple[FileDigest, ...],
        cells_released: int,
        cells_suppressed: int,
    ) -> LedgerEntry:
        """Append the publication record of the pending ``entry``; return the entry with it."""
        with self._write() as con:
            done = con.execute(
                "SELECT count(*) FROM ledger_publications WHERE entry_id = ?", [entry.entry_id]
            ).fetchall()
            if done[0][0]:
                msg = f"Entry {entry.entry_id} is already published."
                raise InternalError(msg)
            publication = self._append(
                con,
                lambda seq, prev_hash: Publication(
                    seq=seq,
                    entry_id=entry.entry_id,
                    outputs=outputs,
                    cells_released=cells_released,
                    cells_suppressed=cells_suppressed,
                    published_at=now(),
                    prev_hash=prev_hash,
                    record_hash="",
                ),
            )
        return replace(entry, publication=publication)

    def _roll_back(self, entry: LedgerEntry, error: BaseException | None) -> None:
        """Delete the pending head entry: its noise never reached the disk, or was destroyed."""
        try:
            with self._write() as con:
                head = con.execute(HEAD_SQL).fetchall()
                if not head or int(head[0][0]) != entry.seq:
                    msg = (
                        f"Entry {entry.entry_id} (seq {entry.seq}) is no longer the head of the "
                        "ledger chain while its writer lock is held."
                    )
                    raise InternalError(msg)
                con.execute("DELETE FROM ledger_entries WHERE seq = ?", [entry.seq])
        except Exception as failure:
            if error is None:
                raise
            error.add_note(
                f"Rolling back ledger entry {entry.entry_id} failed too ({failure}); it stays "
                "charged as 'pending' (conservative)."
            )


def _outside_message(
    request: ReleaseRequest, reasons: Sequence[str], refusal: Refusal, path: Path
) -> str:
    return (
        f"Refused by its data-sharing agreement: releasing {request.indicator!r} for "
        f"{_describe_windows(request.windows)} — {summarise_reasons(reasons)}. Nothing was "
        f"charged or published (refusal {refusal.refusal_id} is recorded in {path}). See the "
        "agreement with `mobility agreement show ID`."
    )


def _describe_windows(windows: Sequence[date]) -> str:
    if len(windows) == 1:
        return windows[0].isoformat()
    return f"{windows[0].isoformat()}..{windows[-1].isoformat()} ({len(windows)} windows)"
