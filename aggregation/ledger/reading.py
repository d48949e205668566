"""Reading the ledger: its DuckDB file opened under the sidecar locks, and its records.

Every read goes through a short-lived connection under a shared lock on ``<ledger>.lock``; every
write through one read-write transaction under the exclusive lock (:mod:`aggregation.ledger.locks`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import duckdb

from aggregation.budget import Charge, RollingBudget, WindowBudget, rolling_budget, window_budget
from aggregation.ledger.agreements import latest
from aggregation.ledger.chain import ChainLink, chain_links
from aggregation.ledger.locks import flock
from aggregation.ledger.policies import governing
from aggregation.ledger.tables import (
    DDL,
    Row,
    agreement_from,
    check_schema_version,
    entry_from,
    has_tables,
    policy_from,
    publication_from,
    refusal_from,
)
from schemas.errors import MobilityError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from datetime import date
    from pathlib import Path

    from aggregation.ledger.records import (
        AgreementRecord,
        LedgerEntry,
        PolicyRecord,
        Publication,
        Refusal,
    )
    from schemas.budget_policy import BudgetPolicy


class LedgerReader:
    """The ledger's DuckDB file opened under its sidecar locks, and every read of its records.

    :class:`~aggregation.ledger.store.Ledger` adds the writes: charges, refusals, policies and
    agreements, appended to the chain.
    """

    def __init__(self, path: Path, policy: BudgetPolicy, *, lock_timeout: float = 60.0) -> None:
        self.path = path
        self.policy = policy
        self.lock_timeout = lock_timeout
        self.access_lock = self.path.with_name(self.path.name + ".lock")
        self.writer_lock = self.path.with_name(self.path.name + ".writer.lock")

    # -- connections ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction, committed if the block succeeds."""
        with flock(self.access_lock, exclusive=True, timeout=self.lock_timeout, purpose="writing"):
            con = duckdb.connect(str(self.path))
            try:
                if has_tables(con):
                    check_schema_version(con, self.path, stamp=False)
                for statement in DDL:
                    con.execute(statement)
                check_schema_version(con, self.path, stamp=True)
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    @contextmanager
    def _read(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection, or None while the ledger has no tables yet."""
        with flock(self.access_lock, exclusive=False, timeout=self.lock_timeout, purpose="reading"):
            if not self.path.exists():
                yield None
                return
            con = duckdb.connect(str(self.path), read_only=True)
            try:
                if not has_tables(con):
                    yield None
                    return
                check_schema_version(con, self.path, stamp=False)
                yield con
            finally:
                con.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Rows of a read-only query, or none while the ledger has no tables yet."""
        with self._read() as con:
            if con is None:
                return []
            cursor = con.execute(sql, list(params))
            columns = [d[0] for d in cursor.description or ()]
            return [Row(columns, row) for row in cursor.fetchall()]

    # -- reading ----------------------------------------------------------------------------

    def publications(self) -> list[Publication]:
        """Every publication record, in chain order."""
        rows = self._query("SELECT * FROM ledger_publications ORDER BY seq")
        return [publication_from(r) for r in rows]

    def _entries(self, where: str = "", params: Sequence[object] = ()) -> list[LedgerEntry]:
        rows = self._query(f"SELECT * FROM ledger_entries {where} ORDER BY seq", params)  # noqa: S608 - our own SQL
        if not rows:
            return []
        published = {p.entry_id: p for p in self.publications()}
        return [entry_from(r, published.get(r.text("entry_id"))) for r in rows]

    def entries(self) -> list[LedgerEntry]:
        """Every charge, in chain order, with its publication if it has one."""
        return self._entries()

    def entry(self, entry_id: str) -> LedgerEntry:
        """The entry called ``entry_id``; :class:`MobilityError` if there is none."""
        found = self._entries("WHERE entry_id = ?", [entry_id])
        if not found:
            msg = f"The privacy ledger {self.path} has no entry {entry_id!r}."
            raise MobilityError(msg)
        return found[0]

    def find(self, key: str) -> LedgerEntry | None:
        """The published entry with release key ``key``, if the question was answered already."""
        found = [e for e in self._entries("WHERE release_key = ?", [key]) if e.publication]
        return found[0] if found else None

    def pending(self, key: str) -> LedgerEntry | None:
        """The charged, unpublished entry of release key ``key`` (its run was interrupted)."""
        found = [e for e in self._entries("WHERE release_key = ?", [key]) if not e.publication]
        return found[0] if found else None

    def refusals(self) -> list[Refusal]:
        """Every refused request, in chain order."""
        return [refusal_from(r) for r in self._query("SELECT * FROM ledger_refusals ORDER BY seq")]

    def policies(self) -> list[PolicyRecord]:
        """Every budget policy recorded, in chain order."""
        return [policy_from(r) for r in self._query("SELECT * FROM ledger_policies ORDER BY seq")]

    def agreements(self) -> list[AgreementRecord]:
        """Every agreement version registered, in chain order (none in a ledger made before
        agreements existed, until its next write adds the empty table)."""
        with self._read() as con:
            return [] if con is None else agreement_rows(con)

    def agreements_in_force(self) -> dict[str, AgreementRecord]:
        """The version in force (registered last) of every agreement id."""
        return latest(self.agreements())

    def chain(self) -> list[ChainLink]:
        """Every record of every kind, as the hash chain sees it, in ``seq`` order."""
        return chain_links(
            self.entries(), self.publications(), self.refusals(), self.policies(),
            self.agreements(),
        )  # fmt: skip

    def head(self) -> ChainLink | None:
        """The last record of the chain, if any."""
        links = self.chain()
        return links[-1] if links else None

    def charges(self) -> list[Charge]:
        """Every entry (pending or published) as the budget sees it."""
        return [entry.as_charge() for entry in self.entries()]

    def windows(self) -> list[date]:
        """Every accounting window any entry has charged, in order."""
        return sorted({w for charge in self.charges() for w in charge.windows})

    def window_budgets(self, windows: Iterable[date] | None = None) -> list[WindowBudget]:
        """Spend, cap and budget left of ``windows`` (default: every charged window), each under
        the strictest policy that governs it (:mod:`aggregation.ledger.policies`)."""
        entries, records = self.entries(), self.policies()
        charges = [e.as_charge() for e in entries]
        wanted = sorted(set(windows)) if windows is not None else self.windows()
        budgets = []
        for w in wanted:
            policies = governing(self.policy, records, entries, [w])
            strictest = min(policies, key=lambda p: (p.epsilon_per_window, p.delta_per_window))
            budgets.append(window_budget(strictest, charges, w))
        return budgets

    def rolling_budget(self, end: date) -> RollingBudget:
        """Spend, cap and budget left of the rolling span ending on ``end``."""
        return rolling_budget(self.policy, self.charges(), end)


def rows_of_query(con: duckdb.DuckDBPyConnection, sql: str) -> list[Row]:
    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description or ()]
    return [Row(columns, row) for row in cursor.fetchall()]


def agreement_rows(con: duckdb.DuckDBPyConnection) -> list[AgreementRecord]:
    """The agreement records, read on ``con`` (none while the table does not exist)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ledger_agreements'"
    ).fetchall()
    if not found[0][0]:
        return []
    return [
        agreement_from(r)
        for r in rows_of_query(con, "SELECT * FROM ledger_agreements ORDER BY seq")
    ]
