"""Staged output: partitioned Parquet written aside, then swapped in; idempotent per drop.

Layout (contract :data:`~schemas.staged.STAGED_EVENTS`)::

    staged/date=YYYY-MM-DD/shard=NNN/<drop>.parquet   events of one drop, local date and shard
    staged/_drops/<drop>.json                         manifest of the drop, written last
    staged/_layout.json                               shards, time zone and key id of the data

``date`` is the local calendar day of the events and ``shard = int(pseudonym[:8], 16) % shards``,
so every shard holds whole subscribers. The files of a drop are written under the workspace's
scratch directory first; nothing in ``staged/`` changes until the whole file was read, checked
and reconciled. The commit then (1) removes the drop's manifest, (2) moves each new partition file
into place with ``os.replace``, (3) deletes the drop's files that the new run no longer produces,
(4) moves the quarantine file into place, and (5) writes the manifest. A drop is complete exactly
when its manifest exists; a crash during the commit (a few renames) leaves it without one, and
ingesting the file again completes it. Re-ingesting a file replaces exactly the files of its drop
and gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.errors import ConfigurationError, InternalError
from schemas.staged import STAGED_EVENT_TYPES, STAGED_EVENTS

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from schemas.workspace import Workspace

DROPS_DIR = "_drops"
LAYOUT_FILE = "_layout.json"
ROW_GROUP_ROWS = 512 * 1024
DICTIONARY_PAGE_BYTES = 8 << 20
"""Room for the dictionary of a row group's pseudonyms (a partition's subscribers, 36 bytes each):
below that, Parquet falls back to plain encoding, which writes slower and three times bigger."""
STATISTICS = ("event_time", "local_date", "local_hour")
"""Columns whose min/max statistics are written; those of the string columns cost a quarter of
the write and no reader prunes on them (dates are partitions, zones are grouped, not filtered)."""
DICTIONARY = tuple(f.name for f in STAGED_EVENTS.schema if pa.types.is_string(f.type))


def partition_path(local_date: dt.date, shard: int, drop_id: str) -> str:
    """Path of a partition file relative to ``staged/``."""
    return f"date={local_date.isoformat()}/shard={shard:03d}/{drop_id}.parquet"


@dataclass(frozen=True, slots=True)
class StagedRows:
    """Valid rows of a chunk as integer columns, in file order (one entry per row).

    Strings are not materialised here: ``pid`` indexes the drop's pseudonyms and ``place`` its
    places (cell id and zones), so partitioning moves small integers and the writer threads build
    the staged columns.
    """

    pid: NDArray[np.uint32]
    place: NDArray[np.uint32]
    event_ms: NDArray[np.int64]
    """Event time, milliseconds since the epoch (UTC), truncated to the second."""
    local_days: NDArray[np.int32]
    """Local calendar day, days since the epoch."""
    local_hour: NDArray[np.int8]
    event_type: NDArray[np.uint8]
    """Index into :data:`~schemas.staged.STAGED_EVENT_TYPES`."""
    shard: NDArray[np.uint16]

    def __len__(self) -> int:
        return len(self.pid)

    def take(self, order: NDArray[np.intp]) -> StagedRows:
        """The rows in ``order``."""
        return StagedRows(*(getattr(self, f)[order] for f in self.__slots__))

    def slice(self, start: int, stop: int) -> StagedRows:
        """Rows ``start`` to ``stop`` (views, no copy)."""
        return StagedRows(*(getattr(self, f)[start:stop] for f in self.__slots__))

    @staticmethod
    def concat(pieces: list[StagedRows]) -> StagedRows:
        """One set of rows from several, in order."""
        if len(pieces) == 1:
            return pieces[0]
        fields = StagedRows.__slots__
        return StagedRows(*(np.concatenate([getattr(p, f) for p in pieces]) for f in fields))


class StagedWriter:
    """Writes the staged rows of one drop into per-partition files under a scratch directory.

    :meth:`add` splits rows by (local date, shard) with a stable sort, so rows keep file order
    within a partition, and buffers them as integer columns; each partition is written in row
    groups of exactly ``row_group_rows`` rows (its last one smaller) by a pool of threads, which
    also builds the string columns from ``pseudonyms`` and ``places``. One write at a time per
    file keeps row groups in order; at most ``threads + 1`` writes are in flight, so memory is
    bounded by the buffers (``row_group_rows`` x partitions x 24 bytes) plus those writes.
    """

    def __init__(
        self,
        root: Path,
        drop_id: str,
        *,
        pseudonyms: pa.Array,
        places: pa.Table,
        source: str,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        self.root = root
        self.drop_id = drop_id
        self.row_group_rows = row_group_rows
        self.rows: dict[str, int] = {}
        self._pseudonyms = pseudonyms
        self._places = places
        self._source = source
        self._buffers: dict[tuple[int, int], list[StagedRows]] = {}
        self._buffered: dict[tuple[int, int], int] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, Future[None]] = {}
        self._in_flight: deque[Future[None]] = deque()
        self._threads = os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(max_workers=self._threads)

    def add(self, rows: StagedRows) -> None:
        """Add valid rows, in file order."""
        if len(rows) == 0:
            return
        first_day = int(rows.local_days.min())
        span = int(rows.local_days.max()) - first_day + 1
        top = int(rows.shard.max()) + 1
        key = (rows.local_days - first_day).astype(np.int64) * top + rows.shard
        if span * top <= np.iinfo(np.uint16).max:
            key = key.astype(np.uint16)  # a radix sort
        order = np.argsort(key, kind="stable")
        ordered = rows.take(order)
        sorted_key = key[order]
        starts = np.flatnonzero(np.diff(sorted_key)) + 1
        bounds = [0, *starts.tolist(), len(ordered)]
        for start, stop in itertools.pairwise(bounds):
            part = (int(ordered.local_days[start]), int(ordered.shard[start]))
            self._buffers.setdefault(part, []).append(ordered.slice(start, stop))
            self._buffered[part] = self._buffered.get(part, 0) + stop - start
            while self._buffered[part] >= self.row_group_rows:
                self._flush(part, self.row_group_rows)

    def _flush(self, part: tuple[int, int], size: int | None = None) -> None:
        """Write the first ``size`` buffered rows of ``part`` (all of them by default).

        Row groups hold exactly ``row_group_rows`` rows but the last, so the bytes written do
        not depend on how the file was cut into chunks.
        """
        pieces = self._buffers.pop(part, [])
        self._buffered[part] = 0
        if not pieces:
            return
        rows = StagedRows.concat(pieces)
        if size is not None and len(rows) > size:
            rest = rows.slice(size, len(rows))
            self._buffers[part], self._buffered[part] = [rest], len(rest)
            rows = rows.slice(0, size)
        day, shard = part
        rel = partition_path(_EPOCH + dt.timedelta(days=day), shard, self.drop_id)
        self.rows[rel] = self.rows.get(rel, 0) + len(rows)
        previous = self._pending.get(rel)
        if previous is not None:
            previous.result()
        while len(self._in_flight) > self._threads:
            self._in_flight.popleft().result()
        writer = self._writers.get(rel)
        if writer is None:
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(
                path,
                STAGED_EVENTS.schema,
                compression="zstd",
                use_dictionary=list(DICTIONARY),
                dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES,
                write_statistics=list(STATISTICS),
            )
            self._writers[rel] = writer
        future = self._pool.submit(self._write, writer, rows)
        self._pending[rel] = future
        self._in_flight.append(future)

    def _write(self, writer: pq.ParquetWriter, rows: StagedRows) -> None:
        writer.write_table(self._table(rows), row_group_size=1 << 30)

    def _table(self, rows: StagedRows) -> pa.Table:
        """The staged columns of ``rows`` (one local date)."""
        n = len(rows)
        place = pa.array(rows.place)
        columns = {
            "pseudonym": self._pseudonyms.take(pa.array(rows.pid)),
            "event_time": pa.array(rows.event_ms).cast(pa.timestamp("ms", tz="UTC")),
            "local_date": pa.array(rows.local_days).cast(pa.date32()),
            "local_hour": pa.array(rows.local_hour),
            "source": pa.repeat(pa.scalar(self._source), n),
            "event_type": _EVENT_TYPES.take(pa.array(rows.event_type)),
            **{c: self._places[c].take(place) for c in self._places.column_names},
        }
        table = pa.table(columns).cast(STAGED_EVENTS.schema)
        nulls = [c for c in STAGED_EVENTS.required if table[c].null_count]
        if nulls:
            msg = f"staged rows of drop {self.drop_id} hold nulls in required columns {nulls}"
            raise InternalError(msg)
        return table

    def close(self) -> dict[str, int]:
        """Write what is buffered, close every file; rows per partition file."""
        for part in sorted(self._buffers):
            self._flush(part)
        try:
            for future in self._pending.values():
                future.result()
        finally:
            self._shutdown()
        return dict(sorted(self.rows.items()))

    def abort(self) -> None:
        """Stop without finishing the drop (the scratch directory is discarded)."""
        self._shutdown()

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self._pending.clear()
        self._in_flight.clear()


_EPOCH = dt.date(1970, 1, 1)
_EVENT_TYPES = pa.array(STAGED_EVENT_TYPES, pa.string())


def contract_problems(path: Path) -> list[str]:
    """What breaks the staged contract in a written file, from its footer.

    The schema is checked, and the null counts of the required columns that have statistics
    (:data:`STATISTICS`; the writer checks the others before writing).
    """
    meta = pq.read_metadata(path)
    problems = STAGED_EVENTS.problems(meta.schema.to_arrow_schema())
    required = {
        c: i
        for i, c in enumerate(meta.schema.names)
        if c in STAGED_EVENTS.required and c in STATISTICS
    }
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for name, i in required.items():
            stats = group.column(i).statistics
            if stats is None or not stats.has_null_count or stats.null_count:
                problems.append(f"column {name!r} may hold nulls (row group {rg})")
    return problems


@dataclass(frozen=True, slots=True)
class Layout:
    """Settings every staged file of a workspace must share."""

    shards: int
    timezone: str
    key_id: str

    def check(self, workspace: Workspace) -> None:
        """Refuse to mix data staged under other settings; record them on the first ingest."""
        path = workspace.staged / LAYOUT_FILE
        if not path.exists():
            return
        recorded = json.loads(path.read_text(encoding="utf-8"))
        fixes = {
            "shards": "set [ingest] shards back to {old} in mobility.toml, or re-stage every drop",
            "timezone": 'set [workspace] timezone back to "{old}", or re-stage every drop',
            "key_id": (
                "the pseudonymisation secret differs from the one the staged data was written "
                "with (key id {old}); use that secret, or re-stage every drop"
            ),
        }
        for key, fix in fixes.items():
            old, new = recorded.get(key), getattr(self, key)
            if old != new:
                msg = (
                    f"{path}: staged data was written with {key} = {old!r}, this run has "
                    f"{new!r}; " + fix.format(old=old)
                )
                raise ConfigurationError(msg)

    def record(self, workspace: Workspace) -> None:
        """Write ``staged/_layout.json`` if it does not exist yet."""
        path = workspace.staged / LAYOUT_FILE
        if not path.exists():
            data = {"shards": self.shards, "timezone": self.timezone, "key_id": self.key_id}
            write_json_atomic(path, data)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON at ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def manifest_path(workspace: Workspace, drop_id: str) -> Path:
    """Where the manifest of a drop lives."""
    return workspace.staged / DROPS_DIR / f"{drop_id}.json"


def commit(
    workspace: Workspace,
    drop_id: str,
    scratch: Path,
    partitions: dict[str, int],
    quarantine: Path | None,
    manifest: dict[str, Any],
) -> None:
    """Swap the drop's new files (written under ``scratch``) into the workspace."""
    for rel in partitions:
        _fsync(scratch / rel)
    if quarantine is not None:
        _fsync(quarantine)
    manifest_file = manifest_path(workspace, drop_id)
    manifest_file.unlink(missing_ok=True)
    staged = workspace.staged
    for rel in partitions:
        target = staged / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        (scratch / rel).replace(target)
    for old in staged.glob(f"date=*/shard=*/{drop_id}.parquet"):
        rel = old.relative_to(staged).as_posix()
        if rel not in partitions:
            old.unlink()
            _remove_empty_dirs(old.parent, stop=staged)
    quarantine_file = workspace.quarantine / f"{drop_id}.parquet"
    if quarantine is not None:
        workspace.quarantine.mkdir(parents=True, exist_ok=True)
        quarantine.replace(quarantine_file)
    else:
        quarantine_file.unlink(missing_ok=True)
    write_json_atomic(manifest_file, manifest)


def _remove_empty_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
