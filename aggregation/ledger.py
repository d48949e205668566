"""The persistent privacy ledger: one hash-chained entry per release, in a DuckDB file.

The ledger is charged *before* anything is published, atomically, and a release it refuses is
recorded with its reason. Accounting rules live in :mod:`aggregation.budget`; this module stores
charges, serialises writers, and keeps the record tamper-evident.

**Tables.** ``ledger_entries``: one row per release (see :class:`LedgerEntry`), chained by
``prev_hash`` → ``entry_hash`` = SHA-256 of :func:`canonical_entry_json` (which covers every
column but ``entry_hash``, including ``prev_hash``). ``ledger_refusals``: one row per refused
request (what was asked, why, when). ``ledger_meta``: the schema version.

**One release = one transaction** (:meth:`Ledger.charge`, a context manager)::

    with ledger.charge(request) as tx:        # check every window and rolling span, then
        if tx.reused:                          # record a 'pending' entry (committed), or
            return tx.entry                    # find the stored release of the same question
        values = mechanism.release(exact)      # draw noise, write files aside, hash them
        tx.publish(outputs=..., cells_released=..., cells_suppressed=..., move=rename_into_place)

- A refused request raises :class:`~schemas.errors.BudgetExceededError` before the block runs;
  nothing is charged, the refusal is recorded.
- A Python exception inside the block *before* ``publish`` calls ``move`` deletes the pending
  entry: a failed run leaves no charge (its noise never left the process).
- ``publish`` first passes the point of no return, then calls ``move`` (which makes the files
  visible), then marks the entry ``published`` with the outputs' SHA-256. If ``move`` or that
  last update fails, the entry stays ``pending``: charged, perhaps published — never the reverse.
- If the process dies (kill -9, power loss) after the charge, the committed ``pending`` entry
  stays spent. An auditor sees "charged, not published"; spending without publishing is safe for
  privacy, publishing without charging never happens. A later run of the same question is charged
  afresh (its earlier noise may have reached the disk), so budget is never under-counted.

**Re-runs.** A request whose :func:`release_key` matches a ``published`` entry gets that entry
back (``tx.reused``), whatever the budget now says, and charges nothing: the caller reuses the
stored release and never draws fresh noise for the same question.

**Concurrency.** DuckDB lets one process hold the file read-write, and a read-only open fails
while a writer has it, so every operation opens a short-lived connection under ``fcntl.flock``
on a sidecar lock file: ``<ledger>.lock`` (exclusive for a read-write connection, shared for a
read-only one, held only while the connection is open) and ``<ledger>.writer.lock`` (exclusive
for a whole charge transaction, so that check-then-append is atomic across processes and threads
and the pending entry stays the head of the hash chain until it is published or rolled back).
Locks are released by the kernel when a process dies. Waiting longer than ``lock_timeout``
raises a :class:`~schemas.errors.MobilityError` naming the lock file and its holder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import duckdb

from aggregation.budget import (
    Charge,
    RollingBudget,
    WindowBudget,
    refusal_reasons,
    rolling_budget,
    summarise_reasons,
    window_budget,
)
from schemas.errors import BudgetExceededError, InternalError, MobilityError
from schemas.privacy import BudgetPolicy, NoiseSpec, PrivacyCost, windows_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

SCHEMA_VERSION = "1"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first entry of a ledger."""

Status = Literal["pending", "published"]
"""``pending``: charged, publication in progress or interrupted. ``published``: files in place."""

_ENTRY_COLUMNS = (
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
    "cells_released",
    "cells_suppressed",
    "input_fingerprint",
    "outputs",
    "code_version",
    "created_at",
    "published_at",
    "status",
    "prev_hash",
    "entry_hash",
)

_DDL = (
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
    cells_released BIGINT,
    cells_suppressed BIGINT,
    input_fingerprint VARCHAR NOT NULL,
    outputs STRUCT(path VARCHAR, sha256 VARCHAR)[] NOT NULL,
    code_version VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ,
    status VARCHAR NOT NULL CHECK (status IN ('pending', 'published')),
    prev_hash VARCHAR NOT NULL,
    entry_hash VARCHAR NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS ledger_refusals (
    refusal_id VARCHAR PRIMARY KEY,
    release_key VARCHAR NOT NULL,
    indicator VARCHAR NOT NULL,
    parameters VARCHAR NOT NULL,
    windows DATE[] NOT NULL,
    mechanism VARCHAR NOT NULL,
    epsilon DOUBLE NOT NULL,
    delta DOUBLE NOT NULL,
    rho DOUBLE,
    reason VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
)""",
)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputFile:
    """A published file: its path (relative to the workspace) and the SHA-256 of its bytes."""

    path: str
    sha256: str

    def __post_init__(self) -> None:
        if _SHA256_HEX.fullmatch(self.sha256) is None:
            msg = f"sha256 of {self.path!r} must be 64 lowercase hex digits; got {self.sha256!r}."
            raise ValueError(msg)


def _frozen(mapping: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """What a release asks the ledger for, known before any noise is drawn.

    ``parameters`` hold whatever defines the question besides the indicator and the windows
    (zone level, contribution bounds, …); ``noise`` is the spec built by
    :mod:`aggregation.mechanisms` — its cost is what OpenDP's privacy map returned.
    """

    indicator: str
    parameters: Mapping[str, object]
    windows: tuple[date, ...]
    privacy_unit: str
    noise: NoiseSpec
    input_fingerprint: str
    code_version: str
    k_threshold: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", _frozen(self.parameters))
        object.__setattr__(self, "windows", tuple(sorted(self.windows)))
        Charge(self.windows, self.noise.cost)  # validates the windows
        if not self.indicator or not self.privacy_unit:
            msg = (
                "A release names its indicator and privacy unit; got "
                f"indicator={self.indicator!r}, privacy_unit={self.privacy_unit!r}."
            )
            raise ValueError(msg)
        if self.k_threshold is not None and self.k_threshold < 0:
            msg = f"k_threshold must be non-negative; got {self.k_threshold!r}."
            raise ValueError(msg)
        canonical_json(dict(self.parameters))  # fails early on values JSON cannot hold

    @property
    def release_key(self) -> str:
        """The idempotency key of this request (see :func:`release_key`)."""
        return release_key(self)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One release's row of ``ledger_entries``: what was charged, for what, and what came out."""

    seq: int
    entry_id: str
    release_key: str
    indicator: str
    parameters: Mapping[str, object] = field(hash=False)
    privacy_unit: str
    windows: tuple[date, ...]
    composition: str
    mechanism: str
    l1: int
    l2: float
    linf: int
    scale: float
    epsilon: float
    delta: float
    rho: float | None
    zcdp_delta: float
    partition_threshold: int | None
    l0: int | None
    k_threshold: int | None
    cells_released: int | None
    cells_suppressed: int | None
    input_fingerprint: str
    outputs: tuple[OutputFile, ...]
    code_version: str
    created_at: datetime
    published_at: datetime | None
    status: Status
    prev_hash: str
    entry_hash: str

    @property
    def cost(self) -> PrivacyCost:
        """What this entry charged each window it reads."""
        return PrivacyCost(
            epsilon=self.epsilon, delta=self.delta, rho=self.rho, zcdp_delta=self.zcdp_delta
        )

    def as_charge(self) -> Charge:
        """The entry as the budget sees it."""
        return Charge(self.windows, self.cost)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the budget refused, and why. Nothing was charged or published for it."""

    refusal_id: str
    release_key: str
    indicator: str
    parameters: Mapping[str, object] = field(hash=False)
    windows: tuple[date, ...]
    mechanism: str
    epsilon: float
    delta: float
    rho: float | None
    reason: str
    created_at: datetime


# --------------------------------------------------------------------------------------------
# Canonical serialisation and hashes (the basis of ``audit verify``)
# --------------------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            msg = f"Timestamps in the ledger must be timezone-aware; got {value!r}."
            raise ValueError(msg)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, MappingProxyType):
        return dict(value)
    if isinstance(value, OutputFile):
        return {"path": value.path, "sha256": value.sha256}
    msg = f"Cannot write {value!r} ({type(value).__name__}) into the ledger's canonical JSON."
    raise TypeError(msg)


def canonical_json(value: object) -> bytes:
    """The canonical JSON bytes of ``value``, as every ledger hash is computed.

    UTF-8; object keys sorted; no whitespace (separators ``,`` and ``:``); non-ASCII kept as is;
    integers as digits, floats as Python's shortest round-trip ``repr`` (``1.0``, ``1e-06``);
    NaN and infinities rejected; ``None`` as ``null``; tuples as arrays; dates as ``YYYY-MM-DD``;
    timestamps in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``; output files as
    ``{"path": …, "sha256": …}``.
    """
    text = json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )
    return text.encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _noise_summary(noise: NoiseSpec) -> dict[str, object]:
    cost = noise.cost
    return {
        "mechanism": noise.mechanism,
        "scale": noise.scale,
        "sensitivity": [noise.sensitivity.l1, noise.sensitivity.l2, noise.sensitivity.linf],
        "epsilon": cost.epsilon,
        "delta": cost.delta,
        "rho": cost.rho,
        "zcdp_delta": cost.zcdp_delta,
        "threshold": noise.threshold,
        "l0": noise.l0,
    }


def release_key(request: ReleaseRequest) -> str:
    """SHA-256 of the canonical JSON of the question a request asks.

    Covers ``indicator``, ``parameters``, ``windows``, ``k_threshold`` and the noise (mechanism,
    scale, sensitivity, cost, threshold): the same question asked again gets the same key, and
    any change to what would be published gets a new one.
    """
    return _sha256(
        canonical_json(
            {
                "indicator": request.indicator,
                "parameters": dict(request.parameters),
                "windows": list(request.windows),
                "k_threshold": request.k_threshold,
                "noise": _noise_summary(request.noise),
            }
        )
    )


def entry_content(entry: LedgerEntry) -> dict[str, object]:
    """Every field of ``entry`` except ``entry_hash`` (it includes ``prev_hash``)."""
    return {name: getattr(entry, name) for name in _ENTRY_COLUMNS if name != "entry_hash"}


def canonical_entry_json(entry: LedgerEntry) -> bytes:
    """The bytes ``entry_hash`` is the SHA-256 of: :func:`canonical_json` of
    :func:`entry_content` (keys are the ``ledger_entries`` column names)."""
    return canonical_json(entry_content(entry))


def compute_entry_hash(entry: LedgerEntry) -> str:
    """SHA-256 (hex) of :func:`canonical_entry_json`: what ``entry.entry_hash`` must equal."""
    return _sha256(canonical_entry_json(entry))


# --------------------------------------------------------------------------------------------
# Locks and connections
# --------------------------------------------------------------------------------------------


def _lock_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


@contextmanager
def _flock(path: Path, *, exclusive: bool, timeout: float, purpose: str) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if missing) for the block; poll until ``timeout``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    msg = (
                        f"The privacy ledger is busy: could not lock {path} for {purpose} within "
                        f"{timeout:g} s (held by {_lock_holder(path)}). Wait for that run to "
                        "finish; a lock is freed as soon as its process ends."
                    )
                    raise MobilityError(msg) from None
                time.sleep(0.02)
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {_now().isoformat()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _now() -> datetime:
    return datetime.now(UTC)


class _Row:
    """Typed access to one row fetched from DuckDB; a type mismatch is a bug in this module."""

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

    def optional_timestamp(self, name: str) -> datetime | None:
        return None if self.values[name] is None else self.timestamp(name)

    def dates(self, name: str) -> tuple[date, ...]:
        value = self.values[name]
        if isinstance(value, list) and all(isinstance(d, date) for d in value):
            return tuple(value)
        raise self._bug(name, "a list of dates")

    def json_object(self, name: str) -> Mapping[str, object]:
        value = json.loads(self.text(name))
        if isinstance(value, dict):
            return _frozen(value)
        raise self._bug(name, "a JSON object")

    def outputs(self, name: str) -> tuple[OutputFile, ...]:
        value = self.values[name]
        if isinstance(value, list) and all(isinstance(o, dict) for o in value):
            return tuple(OutputFile(str(o["path"]), str(o["sha256"])) for o in value)
        raise self._bug(name, "a list of output files")

    def status(self, name: str) -> Status:
        value = self.values[name]
        if value == "pending":
            return "pending"
        if value == "published":
            return "published"
        raise self._bug(name, "'pending' or 'published'")


def _entry_from(r: _Row) -> LedgerEntry:
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
        cells_released=r.optional_whole("cells_released"),
        cells_suppressed=r.optional_whole("cells_suppressed"),
        input_fingerprint=r.text("input_fingerprint"),
        outputs=r.outputs("outputs"),
        code_version=r.text("code_version"),
        created_at=r.timestamp("created_at"),
        published_at=r.optional_timestamp("published_at"),
        status=r.status("status"),
        prev_hash=r.text("prev_hash"),
        entry_hash=r.text("entry_hash"),
    )


def _refusal_from(r: _Row) -> Refusal:
    return Refusal(
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
    )


def _entry_row(entry: LedgerEntry) -> list[object]:
    """Parameters for an INSERT of ``entry``, in :data:`_ENTRY_COLUMNS` order."""
    values: dict[str, object] = {name: getattr(entry, name) for name in _ENTRY_COLUMNS}
    values["parameters"] = canonical_json(dict(entry.parameters)).decode("utf-8")
    values["windows"] = list(entry.windows)
    values["outputs"] = [{"path": o.path, "sha256": o.sha256} for o in entry.outputs]
    return [values[name] for name in _ENTRY_COLUMNS]


def _describe_windows(windows: Sequence[date]) -> str:
    if len(windows) == 1:
        return windows[0].isoformat()
    return f"{windows[0].isoformat()}..{windows[-1].isoformat()} ({len(windows)} windows)"


# --------------------------------------------------------------------------------------------
# The ledger
# --------------------------------------------------------------------------------------------


class ChargeTransaction:
    """An open charge: the pending (or reused) entry, and the way to publish it.

    Obtained only from :meth:`Ledger.charge`; see the module docstring for the protocol.
    """

    def __init__(self, ledger: Ledger, entry: LedgerEntry, *, reused: bool) -> None:
        self._ledger = ledger
        self.entry = entry
        self.reused = reused
        self.committed = False
        """True once :meth:`publish` has passed the point of no return (no rollback after)."""
        self.published = False

    def publish(
        self,
        *,
        outputs: Sequence[OutputFile],
        cells_released: int,
        cells_suppressed: int,
        move: Callable[[], None] | None = None,
    ) -> LedgerEntry:
        """Pass the point of no return, run ``move`` (make the files visible), then mark the
        entry ``published`` with the outputs' hashes. Returns the final entry."""
        if self.reused:
            msg = "A reused release is already published; reuse its stored files instead."
            raise InternalError(msg)
        if self.committed:
            msg = f"Entry {self.entry.entry_id} is already being published."
            raise InternalError(msg)
        if cells_released < 0 or cells_suppressed < 0:
            msg = (
                "Cell counts must be non-negative; got "
                f"cells_released={cells_released}, cells_suppressed={cells_suppressed}."
            )
            raise ValueError(msg)
        self.committed = True
        if move is not None:
            move()
        self.entry = self._ledger._finalize(
            self.entry, tuple(outputs), cells_released, cells_suppressed
        )
        self.published = True
        return self.entry


class Ledger:
    """The privacy ledger of a workspace: a DuckDB file plus its sidecar lock files."""

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
        with _flock(self.access_lock, exclusive=True, timeout=self.lock_timeout, purpose="writing"):
            con = duckdb.connect(str(self.path))
            try:
                for statement in _DDL:
                    con.execute(statement)
                _check_schema_version(con, self.path)
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
        """A read-only connection, or None while the ledger file does not exist yet."""
        with _flock(
            self.access_lock, exclusive=False, timeout=self.lock_timeout, purpose="reading"
        ):
            if not self.path.exists():
                yield None
                return
            con = duckdb.connect(str(self.path), read_only=True)
            try:
                yield con
            finally:
                con.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[_Row]:
        """Rows of a read-only query, or none while the ledger has no tables yet."""
        with self._read() as con:
            if con is None or not _has_tables(con):
                return []
            cursor = con.execute(sql, list(params))
            columns = [d[0] for d in cursor.description or ()]
            return [_Row(columns, row) for row in cursor.fetchall()]

    # -- reading ----------------------------------------------------------------------------

    def entries(self) -> list[LedgerEntry]:
        """Every entry, in chain order."""
        return [_entry_from(r) for r in self._query(_SELECT_ENTRIES + " ORDER BY seq")]

    def entry(self, entry_id: str) -> LedgerEntry:
        """The entry called ``entry_id``; :class:`MobilityError` if there is none."""
        rows = self._query(_SELECT_ENTRIES + " WHERE entry_id = ?", [entry_id])
        if not rows:
            msg = f"The privacy ledger {self.path} has no entry {entry_id!r}."
            raise MobilityError(msg)
        return _entry_from(rows[0])

    def find(self, key: str) -> LedgerEntry | None:
        """The published entry with release key ``key``, if the question was answered already."""
        rows = self._query(
            _SELECT_ENTRIES + " WHERE release_key = ? AND status = 'published' ORDER BY seq",
            [key],
        )
        return _entry_from(rows[0]) if rows else None

    def refusals(self) -> list[Refusal]:
        """Every refused request, oldest first."""
        return [_refusal_from(r) for r in self._query(_SELECT_REFUSALS + " ORDER BY created_at")]

    def charges(self) -> list[Charge]:
        """Every entry (pending or published) as the budget sees it."""
        return [entry.as_charge() for entry in self.entries()]

    def windows(self) -> list[date]:
        """Every accounting window any entry has charged, in order."""
        return sorted({w for charge in self.charges() for w in charge.windows})

    def window_budgets(self, windows: Iterable[date] | None = None) -> list[WindowBudget]:
        """Spend, cap and budget left of ``windows`` (default: every charged window)."""
        charges = self.charges()
        wanted = sorted(set(windows)) if windows is not None else self.windows()
        return [window_budget(self.policy, charges, w) for w in wanted]

    def rolling_budget(self, end: date) -> RollingBudget:
        """Spend, cap and budget left of the rolling span ending on ``end``."""
        return rolling_budget(self.policy, self.charges(), end)

    def refusal_reasons(self, request: ReleaseRequest) -> list[str]:
        """Why ``request`` would be refused now (empty if it would be charged); writes nothing."""
        if self.find(request.release_key) is not None:
            return []
        new = Charge(request.windows, request.noise.cost)
        return refusal_reasons(self.policy, self.charges(), new)

    # -- charging ---------------------------------------------------------------------------

    @contextmanager
    def charge(self, request: ReleaseRequest) -> Iterator[ChargeTransaction]:
        """Charge ``request`` before publication, atomically; see the module docstring.

        Yields a :class:`ChargeTransaction` whose ``entry`` is the new pending entry, or the
        stored published entry of the same question (``reused``). Raises
        :class:`~schemas.errors.BudgetExceededError` (and records the refusal) when any window
        or rolling span would go over its cap.
        """
        with _flock(
            self.writer_lock, exclusive=True, timeout=self.lock_timeout, purpose="a release"
        ):
            stored = self.find(request.release_key)
            if stored is not None:
                yield ChargeTransaction(self, stored, reused=True)
                return
            entry = self._append_or_refuse(request)
            transaction = ChargeTransaction(self, entry, reused=False)
            try:
                yield transaction
            except BaseException as error:
                if not transaction.committed:
                    self._roll_back(entry, error)
                raise
            if not transaction.published:
                self._roll_back(entry, None)
                msg = (
                    f"The charge of {request.indicator} (entry {entry.entry_id}) ended without "
                    "publish(); it was rolled back."
                )
                raise InternalError(msg)

    def _relevant_charges(self, windows: Sequence[date]) -> list[Charge]:
        """Charges that share a window or a rolling span with ``windows``."""
        reach = timedelta(days=self.policy.rolling_days - 1)
        rows = self._query(
            _SELECT_ENTRIES + " WHERE list_max(windows) >= ? AND list_min(windows) <= ?",
            [min(windows) - reach, max(windows) + reach],
        )
        return [_entry_from(r).as_charge() for r in rows]

    def _append_or_refuse(self, request: ReleaseRequest) -> LedgerEntry:
        """Check the budget; record a refusal and raise, or append a pending entry."""
        unit = self.policy.accounting_window
        if request.privacy_unit != f"subscriber-{unit}" or request.windows != windows_of(
            request.windows, unit
        ):
            msg = (
                f"A release of {request.indicator} states privacy unit {request.privacy_unit!r} "
                f"and windows {[str(w) for w in request.windows]}, but the policy's accounting "
                f"window is {unit!r} (windows named by their first day): a bug."
            )
            raise InternalError(msg)
        cost = request.noise.cost
        reasons = refusal_reasons(
            self.policy, self._relevant_charges(request.windows), Charge(request.windows, cost)
        )
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
        return self._append(request)

    def _record_refusal(self, request: ReleaseRequest, reasons: Sequence[str]) -> Refusal:
        cost = request.noise.cost
        refusal = Refusal(
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
            created_at=_now(),
        )
        with self._write() as con:
            con.execute(
                "INSERT INTO ledger_refusals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    refusal.refusal_id,
                    refusal.release_key,
                    refusal.indicator,
                    canonical_json(dict(refusal.parameters)).decode("utf-8"),
                    list(refusal.windows),
                    refusal.mechanism,
                    refusal.epsilon,
                    refusal.delta,
                    refusal.rho,
                    refusal.reason,
                    refusal.created_at,
                ],
            )
        return refusal

    def _append(self, request: ReleaseRequest) -> LedgerEntry:
        """Append ``request`` as the new head of the chain, status ``pending`` (committed)."""
        noise, cost = request.noise, request.noise.cost
        with self._write() as con:
            head = con.execute(
                "SELECT seq, entry_hash FROM ledger_entries ORDER BY seq DESC LIMIT 1"
            ).fetchall()
            seq, prev_hash = (int(head[0][0]) + 1, str(head[0][1])) if head else (1, GENESIS_HASH)
            draft = LedgerEntry(
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
                cells_released=None,
                cells_suppressed=None,
                input_fingerprint=request.input_fingerprint,
                outputs=(),
                code_version=request.code_version,
                created_at=_now(),
                published_at=None,
                status="pending",
                prev_hash=prev_hash,
                entry_hash="",
            )
            entry = replace(draft, entry_hash=compute_entry_hash(draft))
            con.execute(_INSERT_ENTRY, _entry_row(entry))
        return entry

    def _require_head(self, con: duckdb.DuckDBPyConnection, entry: LedgerEntry) -> None:
        head = con.execute("SELECT max(seq) FROM ledger_entries").fetchall()
        if not head or head[0][0] != entry.seq:
            msg = (
                f"Entry {entry.entry_id} (seq {entry.seq}) is no longer the head of the ledger "
                f"chain (head seq {head[0][0] if head else None}) while its writer lock is held."
            )
            raise InternalError(msg)

    def _finalize(
        self,
        entry: LedgerEntry,
        outputs: tuple[OutputFile, ...],
        cells_released: int,
        cells_suppressed: int,
    ) -> LedgerEntry:
        """Mark the pending head entry published, with its outputs, and rehash it."""
        draft = replace(
            entry,
            outputs=outputs,
            cells_released=cells_released,
            cells_suppressed=cells_suppressed,
            published_at=_now(),
            status="published",
            entry_hash="",
        )
        final = replace(draft, entry_hash=compute_entry_hash(draft))
        with self._write() as con:
            self._require_head(con, entry)
            con.execute(
                "UPDATE ledger_entries SET outputs = ?, cells_released = ?, cells_suppressed = ?, "
                "published_at = ?, status = 'published', entry_hash = ? "
                "WHERE seq = ? AND status = 'pending'",
                [
                    [{"path": o.path, "sha256": o.sha256} for o in outputs],
                    cells_released,
                    cells_suppressed,
                    final.published_at,
                    final.entry_hash,
                    entry.seq,
                ],
            )
        return final

    def _roll_back(self, entry: LedgerEntry, error: BaseException | None) -> None:
        """Delete the pending head entry: nothing was published, so nothing stays charged."""
        try:
            with self._write() as con:
                self._require_head(con, entry)
                con.execute(
                    "DELETE FROM ledger_entries WHERE seq = ? AND status = 'pending'", [entry.seq]
                )
        except Exception as failure:
            if error is None:
                raise
            error.add_note(
                f"Rolling back ledger entry {entry.entry_id} failed too ({failure}); it stays "
                "charged as 'pending' (conservative)."
            )


def _check_schema_version(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Stamp a new ledger with :data:`SCHEMA_VERSION`; refuse to write one of another version."""
    con.execute(
        "INSERT INTO ledger_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
        [SCHEMA_VERSION],
    )
    found = con.execute("SELECT value FROM ledger_meta WHERE key = 'schema_version'").fetchall()
    if found[0][0] != SCHEMA_VERSION:
        msg = (
            f"The privacy ledger {path} has schema version {found[0][0]}; this code writes "
            f"version {SCHEMA_VERSION}. Upgrade the code (or migrate the ledger) before releasing."
        )
        raise MobilityError(msg)


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ledger_entries'"
    ).fetchall()
    return bool(found and found[0][0])


_SELECT_ENTRIES = "SELECT * FROM ledger_entries"
_SELECT_REFUSALS = "SELECT * FROM ledger_refusals"
_INSERT_ENTRY = (
    "INSERT INTO ledger_entries VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
