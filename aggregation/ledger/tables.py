"""The ledger's DuckDB tables: their definitions, the schema version, and typed rows.

Tables (schema version :data:`SCHEMA_VERSION`): ``ledger_entries`` (charges),
``ledger_publications``, ``ledger_refusals``, ``ledger_policies``, ``ledger_agreements`` (added
by issue 20; a ledger without it gets it, empty, at its next write) — one hash chain over all of
them, numbered by ``seq`` (see :mod:`aggregation.ledger.chain`) — and ``ledger_meta`` (the schema
version). Rows are only ever inserted; a failed release's pending charge is the one row ever
deleted (the head of the chain, under the writer lock, after its noise was destroyed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from aggregation.ledger.chain import (
    AGREEMENT_COLUMNS,
    ENTRY_COLUMNS,
    POLICY_COLUMNS,
    PUBLICATION_COLUMNS,
    REFUSAL_COLUMNS,
)
from aggregation.ledger.hashing import canonical_json
from aggregation.ledger.records import (
    AgreementRecord,
    FileDigest,
    LedgerEntry,
    PolicyRecord,
    Publication,
    Refusal,
    frozen_mapping,
)
from schemas.errors import InternalError, MobilityError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import duckdb

SCHEMA_VERSION = "2"
"""Version 2 (issue 16): charges are immutable and publication is a record of its own; refusals
and policies are chained; windows are named by the first day of the policy's accounting window;
inputs are listed by relative path and content hash."""

DDL = (
    """CREATE TABLE IF NOT EXISTS ledger_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ledger_entries (
    seq BIGINT PRIMARY KEY,
    entry_id VARCHAR NOT NULL UNIQUE,
    release_key VARCHAR NOT NULL,
    indicator VARCHAR NOT NULL,
    parameters VARCHAR NOT NULL,
    privacy_unit VARCHAR NOT NULL,
    windows DATE[] NOT NULL,
    composition VARCHAR NOT NULL,
    mechanism VARCHAR NOT NULL,
    l1 BIGINT NOT NULL,
    l2 DOUBLE NOT NULL,
    linf BIGINT NOT NULL,
    scale DOUBLE NOT NULL,
    epsilon DOUBLE NOT NULL,
    delta DOUBLE NOT NULL,
    rho DOUBLE,
    zcdp_delta DOUBLE NOT NULL,
    partition_threshold BIGINT,
    l0 BIGINT,
    k_threshold BIGINT,
    input_fingerprint VARCHAR NOT NULL,
    inputs STRUCT(path VARCHAR, sha256 VARCHAR)[] NOT NULL,
    code_version VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    prev_hash VARCHAR NOT NULL,
    entry_hash VARCHAR NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS ledger_publications (
    seq BIGINT PRIMARY KEY,
    entry_id VARCHAR NOT NULL UNIQUE,
    outputs STRUCT(path VARCHAR, sha256 VARCHAR)[] NOT NULL,
    cells_released BIGINT NOT NULL,
    cells_suppressed BIGINT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    prev_hash VARCHAR NOT NULL,
    record_hash VARCHAR NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS ledger_refusals (
    seq BIGINT PRIMARY KEY,
    refusal_id VARCHAR NOT NULL UNIQUE,
    release_key VARCHAR NOT NULL,
    indicator VARCHAR NOT NULL,
    parameters VARCHAR NOT NULL,
    windows DATE[] NOT NULL,
    mechanism VARCHAR NOT NULL,
    epsilon DOUBLE NOT NULL,
    delta DOUBLE NOT NULL,
    rho DOUBLE,
    reason VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    prev_hash VARCHAR NOT NULL,
    record_hash VARCHAR NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS ledger_policies (
    seq BIGINT PRIMARY KEY,
    policy_id VARCHAR NOT NULL UNIQUE,
    policy VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    prev_hash VARCHAR NOT NULL,
    record_hash VARCHAR NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS ledger_agreements (
    seq BIGINT PRIMARY KEY,
    record_id VARCHAR NOT NULL UNIQUE,
    agreement_id VARCHAR NOT NULL,
    version BIGINT NOT NULL,
    agreement VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    prev_hash VARCHAR NOT NULL,
    record_hash VARCHAR NOT NULL,
    UNIQUE (agreement_id, version)
)""",
)

HEAD_SQL = """SELECT seq, h FROM (
    SELECT seq, entry_hash AS h FROM ledger_entries
    UNION ALL SELECT seq, record_hash FROM ledger_publications
    UNION ALL SELECT seq, record_hash FROM ledger_refusals
    UNION ALL SELECT seq, record_hash FROM ledger_policies
    UNION ALL SELECT seq, record_hash FROM ledger_agreements
) ORDER BY seq DESC LIMIT 1"""
"""The head of the chain: the record with the highest ``seq``, and its hash."""


def _version_problem(found: str, path: Path) -> MobilityError:
    msg = (
        f"The privacy ledger {path} has schema version {found}; this code reads and writes "
        f"version {SCHEMA_VERSION} (issue 16 made charges immutable, chained refusals, "
        "publications and budget policies, and names windows by the policy's accounting "
        "window). There is no automatic migration: keep the old ledger and its releases as "
        "they are for audit (audit them with the code that wrote them), and re-create the "
        "workspace's ledger by moving ledger.duckdb and releases/ aside before releasing again."
    )
    return MobilityError(msg)


def check_schema_version(con: duckdb.DuckDBPyConnection, path: Path, *, stamp: bool) -> None:
    """Refuse a ledger of another schema version; ``stamp`` a new one with ours."""
    if stamp:
        con.execute(
            "INSERT INTO ledger_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
            [SCHEMA_VERSION],
        )
    found = con.execute("SELECT value FROM ledger_meta WHERE key = 'schema_version'").fetchall()
    if found and found[0][0] != SCHEMA_VERSION:
        raise _version_problem(str(found[0][0]), path)


def has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the ledger tables exist (a ledger file created by this or an older version)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ledger_meta'"
    ).fetchall()
    return bool(found and found[0][0])


class Row:
    """Typed access to one row fetched from DuckDB; a type mismatch is a bug in this package."""

    def __init__(self, columns: Sequence[str], row: Sequence[object]) -> None:
        self.values = dict(zip(columns, row, strict=True))

    def _bug(self, name: str, expected: str) -> InternalError:
        value = self.values[name]
        return InternalError(f"Ledger column {name!r} holds {value!r}, not {expected}: a bug.")

    def text(self, name: str) -> str:
        value = self.values[name]
        if isinstance(value, str):
            return value
        raise self._bug(name, "a string")

    def whole(self, name: str) -> int:
        value = self.values[name]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self._bug(name, "an integer")

    def optional_whole(self, name: str) -> int | None:
        return None if self.values[name] is None else self.whole(name)

    def number(self, name: str) -> float:
        value = self.values[name]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise self._bug(name, "a number")

    def optional_number(self, name: str) -> float | None:
        return None if self.values[name] is None else self.number(name)

    def timestamp(self, name: str) -> datetime:
        value = self.values[name]
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        raise self._bug(name, "a timezone-aware timestamp")

    def dates(self, name: str) -> tuple[date, ...]:
        value = self.values[name]
        if isinstance(value, list) and all(isinstance(d, date) for d in value):
            return tuple(value)
        raise self._bug(name, "a list of dates")

    def json_object(self, name: str) -> Mapping[str, object]:
        value = json.loads(self.text(name))
        if isinstance(value, dict):
            return frozen_mapping(value)
        raise self._bug(name, "a JSON object")

    def files(self, name: str) -> tuple[FileDigest, ...]:
        value = self.values[name]
        if isinstance(value, list) and all(isinstance(o, dict) for o in value):
            return tuple(FileDigest(str(o["path"]), str(o["sha256"])) for o in value)
        raise self._bug(name, "a list of files")


def entry_from(r: Row, publication: Publication | None) -> LedgerEntry:
    """A charge row (and its publication, if any) as a :class:`LedgerEntry`."""
    return LedgerEntry(
        seq=r.whole("seq"),
        entry_id=r.text("entry_id"),
        release_key=r.text("release_key"),
        indicator=r.text("indicator"),
        parameters=r.json_object("parameters"),
        privacy_unit=r.text("privacy_unit"),
        windows=r.dates("windows"),
        composition=r.text("composition"),
        mechanism=r.text("mechanism"),
        l1=r.whole("l1"),
        l2=r.number("l2"),
        linf=r.whole("linf"),
        scale=r.number("scale"),
        epsilon=r.number("epsilon"),
        delta=r.number("delta"),
        rho=r.optional_number("rho"),
        zcdp_delta=r.number("zcdp_delta"),
        partition_threshold=r.optional_whole("partition_threshold"),
        l0=r.optional_whole("l0"),
        k_threshold=r.optional_whole("k_threshold"),
        input_fingerprint=r.text("input_fingerprint"),
        inputs=r.files("inputs"),
        code_version=r.text("code_version"),
        created_at=r.timestamp("created_at"),
        prev_hash=r.text("prev_hash"),
        entry_hash=r.text("entry_hash"),
        publication=publication,
    )


def publication_from(r: Row) -> Publication:
    """A ``ledger_publications`` row."""
    return Publication(
        seq=r.whole("seq"),
        entry_id=r.text("entry_id"),
        outputs=r.files("outputs"),
        cells_released=r.whole("cells_released"),
        cells_suppressed=r.whole("cells_suppressed"),
        published_at=r.timestamp("published_at"),
        prev_hash=r.text("prev_hash"),
        record_hash=r.text("record_hash"),
    )


def refusal_from(r: Row) -> Refusal:
    """A ``ledger_refusals`` row."""
    return Refusal(
        seq=r.whole("seq"),
        refusal_id=r.text("refusal_id"),
        release_key=r.text("release_key"),
        indicator=r.text("indicator"),
        parameters=r.json_object("parameters"),
        windows=r.dates("windows"),
        mechanism=r.text("mechanism"),
        epsilon=r.number("epsilon"),
        delta=r.number("delta"),
        rho=r.optional_number("rho"),
        reason=r.text("reason"),
        created_at=r.timestamp("created_at"),
        prev_hash=r.text("prev_hash"),
        record_hash=r.text("record_hash"),
    )


def policy_from(r: Row) -> PolicyRecord:
    """A ``ledger_policies`` row."""
    return PolicyRecord(
        seq=r.whole("seq"),
        policy_id=r.text("policy_id"),
        policy=r.json_object("policy"),
        recorded_at=r.timestamp("recorded_at"),
        prev_hash=r.text("prev_hash"),
        record_hash=r.text("record_hash"),
    )


def agreement_from(r: Row) -> AgreementRecord:
    """A ``ledger_agreements`` row."""
    return AgreementRecord(
        seq=r.whole("seq"),
        record_id=r.text("record_id"),
        agreement_id=r.text("agreement_id"),
        version=r.whole("version"),
        agreement=r.json_object("agreement"),
        recorded_at=r.timestamp("recorded_at"),
        prev_hash=r.text("prev_hash"),
        record_hash=r.text("record_hash"),
    )


def _cell(value: object) -> object:
    if isinstance(value, FileDigest):
        return value.as_json()
    if isinstance(value, tuple):
        return [_cell(v) for v in value]
    if isinstance(value, Mapping):  # parameters, policy: stored as canonical JSON text
        return canonical_json(dict(value)).decode("utf-8")
    return value


def row_of(record: object, columns: Sequence[str]) -> list[object]:
    """Parameters for an INSERT of ``record``, in ``columns`` order."""
    return [_cell(getattr(record, name)) for name in columns]


def insert_sql(table: str, columns: Sequence[str]) -> str:
    """``INSERT INTO table (columns) VALUES (?, …)`` for our own table and column names."""
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - our own names


INSERTS = {
    "charge": insert_sql("ledger_entries", ENTRY_COLUMNS),
    "publication": insert_sql("ledger_publications", PUBLICATION_COLUMNS),
    "refusal": insert_sql("ledger_refusals", REFUSAL_COLUMNS),
    "policy": insert_sql("ledger_policies", POLICY_COLUMNS),
    "agreement": insert_sql("ledger_agreements", AGREEMENT_COLUMNS),
}
