"""Staged output: partitioned Parquet written aside, then swapped in; idempotent per drop.

Layout (contract :data:`~schemas.staged.STAGED_EVENTS`)::

    staged/date=YYYY-MM-DD/shard=NNN/<drop>.parquet   events of one drop, local date and shard
    staged/_fixes/date=…/shard=…/<drop>.parquet       GPS drops: the same fixes with coordinates
    staged/_drops/<drop>.json                         manifest of the drop, written last
    staged/_layout.json                               shards, time zone and key id of the data

``date`` is the local calendar day of the events and ``shard = int(pseudonym[:8], 16) % shards``, so
every shard holds whole subscribers. The files of a drop are written under the workspace's scratch
directory first; nothing in ``staged/`` changes until the whole file was read, checked and
reconciled. The commit (:mod:`aggregation.ingest.commit`) then (1) removes the drop's manifest, (2)
moves each new partition file into place with ``os.replace``, (3) deletes the drop's files that the
new run no longer produces, (4) moves the quarantine file into place, and (5) writes the manifest. A
drop is complete exactly when its manifest exists; a crash during the commit (a few renames) leaves
it without one, and ingesting the file again completes it. Re-ingesting a file replaces exactly the
files of its drop and gives the same bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aggregation.ingest.encoding import Coded, Compacted, Values, encoded, group_by_partition
from schemas.errors import InternalError
from schemas.staged import FIXES_DIR, STAGED_EVENT_TYPES, STAGED_EVENTS, STAGED_FIXES

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from schemas.contract import Contract

_EPOCH = dt.date(1970, 1, 1)
ROW_GROUP_ROWS = 1 << 20
"""Rows of a row group: 1 M writes 11 % faster than 512 k (a row group's dictionaries of
pseudonyms and cells are written and compressed once for twice the rows) and its buffers hold
24 MiB a partition."""
DICTIONARY_PAGE_BYTES = 8 << 20
"""Room for the dictionary of a row group's pseudonyms (a partition's subscribers, 36 bytes each):
below that, Parquet falls back to plain encoding, which writes slower and three times bigger."""
ENCODING = {"event_time": "DELTA_BINARY_PACKED"}
"""Event times are written as differences: exports come roughly in time order, so they shrink to
a few bits a row, written 35 % faster, stored in half the bytes and read faster than plain."""
STATISTICS = ("event_time", "local_date", "local_hour")
"""Columns whose min/max statistics are written; those of the string columns cost a quarter of
the write and no reader prunes on them (dates are partitions, zones are grouped, not filtered)."""
DICTIONARY = tuple(f.name for f in STAGED_EVENTS.schema if pa.types.is_string(f.type))
_WRITTEN_SCHEMA = pa.schema(
    f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in DICTIONARY else f
    for f in STAGED_EVENTS.schema
)
"""What the writer is handed: the string columns as dictionary arrays (see :meth:`_table`)."""
FIX_DICTIONARY = tuple(f.name for f in STAGED_FIXES.schema if pa.types.is_string(f.type))
_WRITTEN_FIXES = pa.schema(
    f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in FIX_DICTIONARY else f
    for f in STAGED_FIXES.schema
)
_FOOTER = {
    **{k.decode(): v.decode() for k, v in (STAGED_EVENTS.schema.metadata or {}).items()},
    "ARROW:schema": base64.b64encode(STAGED_EVENTS.schema.serialize().to_pybytes()).decode(),
}
"""Footer metadata: the contract's schema as Arrow stores it (plain strings, field descriptions),
so that readers see the staged contract, not the dictionary arrays the writer was handed."""
_FIXES_FOOTER = {
    **{k.decode(): v.decode() for k, v in (STAGED_FIXES.schema.metadata or {}).items()},
    "ARROW:schema": base64.b64encode(STAGED_FIXES.schema.serialize().to_pybytes()).decode(),
}


def day_date(day: int) -> dt.date:
    """The date ``day`` days after 1970-01-01 (local days, as :class:`StagedRows` holds them)."""
    return _EPOCH + dt.timedelta(days=day)


def partition_path(local_date: dt.date, shard: int, drop_id: str) -> str:
    """Path of a partition file relative to ``staged/``."""
    return f"date={local_date.isoformat()}/shard={shard:03d}/{drop_id}.parquet"


def fixes_path(rel: str) -> str:
    """Path, relative to ``staged/``, of the fixes sidecar of the partition file ``rel``."""
    return f"{FIXES_DIR}/{rel}"


@dataclass(frozen=True, slots=True)
class FixCoords:
    """Coordinates of GPS rows, one entry per row like :class:`StagedRows`."""

    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    accuracy_m: NDArray[np.float32]
    """Reported accuracy in metres; NaN where the device did not report it (staged as null)."""

    def __len__(self) -> int:
        return len(self.lat)

    def slice(self, start: int, stop: int) -> FixCoords:
        """Rows ``start`` to ``stop`` (views, no copy)."""
        return FixCoords(*(getattr(self, f)[start:stop] for f in self.__slots__))

    def take(self, rows: NDArray[np.int64]) -> FixCoords:
        """The rows at ``rows``, in that order."""
        return FixCoords(*(getattr(self, f)[rows] for f in self.__slots__))

    @staticmethod
    def concat(pieces: list[FixCoords]) -> FixCoords:
        """One set of rows from several, in order."""
        if len(pieces) == 1:
            return pieces[0]
        fields = FixCoords.__slots__
        return FixCoords(*(np.concatenate([getattr(p, f) for p in pieces]) for f in fields))


@dataclass(frozen=True, slots=True)
class StagedRows:
    """Rows of a chunk as integer columns, in file order (one entry per row).

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

    :meth:`add` groups rows by (local date, shard) with a counting sort, so rows keep file order
    within a partition, and buffers them as integer columns; each partition is written in row
    groups of exactly ``row_group_rows`` rows (its last one smaller) by a pool of threads, which
    also builds the string columns from ``pseudonyms`` and ``places``. One write at a time per
    file keeps row groups in order; at most ``threads + 1`` writes are in flight, so memory is
    bounded by the buffers (``row_group_rows`` x partitions x 24 bytes) plus those writes.

    GPS drops hand :meth:`add` the coordinates of their rows too: each partition then also gets
    its fixes sidecar (:data:`~schemas.staged.STAGED_FIXES`, :func:`fixes_path`), written in the
    same row groups as its events; :attr:`fix_rows` counts its rows per file. CDR drops write
    exactly what they wrote before.
    """

    def __init__(
        self,
        root: Path,
        drop_id: str,
        *,
        pseudonyms: Values,
        places: pa.Table,
        source: str,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        self.root = root
        self.drop_id = drop_id
        self.row_group_rows = row_group_rows
        self.rows: dict[str, int] = {}
        self.fix_rows: dict[str, int] = {}
        self._coords: dict[tuple[int, int], list[FixCoords]] = {}
        self._pseudonyms = pseudonyms
        self._places = {c: Coded.of(places[c]) for c in places.column_names}
        self._source = pa.array([source], pa.string())
        self._buffers: dict[tuple[int, int], list[StagedRows]] = {}
        self._buffered: dict[tuple[int, int], int] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, Future[None]] = {}
        self._in_flight: deque[Future[None]] = deque()
        self._threads = os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(max_workers=self._threads)

    def add(
        self,
        rows: StagedRows,
        keep: NDArray[np.bool_] | None = None,
        coords: FixCoords | None = None,
    ) -> dict[int, int]:
        """Add the rows where ``keep`` is true (all by default), in file order; returns how many
        were added for each local day (days since the epoch). ``coords`` (GPS drops: every
        chunk, or none) are the rows' coordinates, staged in the fixes sidecar."""
        if keep is None:
            keep = np.ones(len(rows), dtype=np.bool_)
        lengths = {len(keep), *(len(getattr(rows, f)) for f in _FIELDS)}
        if coords is not None:
            lengths.add(len(coords))
        if len(lengths) != 1:  # the compiled grouping does not check bounds
            msg = f"staged rows and their keep flags differ in length: {sorted(lengths)}"
            raise InternalError(msg)
        first, shards, bounds, *fields = group_by_partition(
            keep, *(getattr(rows, f) for f in _FIELDS)
        )
        first_day, top = int(first), int(shards)
        grouped = StagedRows(*fields)
        grouped_coords = None
        if coords is not None:  # the same stable order as the counting sort's
            kept = np.flatnonzero(keep)
            cell = (rows.local_days[kept].astype(np.int64) - first_day) * top + rows.shard[kept]
            grouped_coords = coords.take(kept[np.argsort(cell, kind="stable")])
        by_day: dict[int, int] = {}
        for k in np.flatnonzero(np.diff(bounds)).tolist():
            start, stop = int(bounds[k]), int(bounds[k + 1])
            part = (first_day + k // top, k % top)
            by_day[part[0]] = by_day.get(part[0], 0) + stop - start
            self._buffers.setdefault(part, []).append(grouped.slice(start, stop))
            if grouped_coords is not None:
                self._coords.setdefault(part, []).append(grouped_coords.slice(start, stop))
            self._buffered[part] = self._buffered.get(part, 0) + stop - start
            while self._buffered[part] >= self.row_group_rows:
                self._flush(part, self.row_group_rows)
        return by_day

    def _flush(self, part: tuple[int, int], size: int | None = None) -> None:
        """Write the first ``size`` buffered rows of ``part`` (all of them by default).

        Row groups hold exactly ``row_group_rows`` rows but the last, so the bytes written do
        not depend on how the file was cut into chunks.
        """
        pieces = self._buffers.pop(part, [])
        coord_pieces = self._coords.pop(part, [])
        self._buffered[part] = 0
        if not pieces:
            return
        rows = StagedRows.concat(pieces)
        coords = FixCoords.concat(coord_pieces) if coord_pieces else None
        if size is not None and len(rows) > size:
            rest = rows.slice(size, len(rows))
            self._buffers[part], self._buffered[part] = [rest], len(rest)
            rows = rows.slice(0, size)
            if coords is not None:
                self._coords[part] = [coords.slice(size, len(coords))]
                coords = coords.slice(0, size)
        day, shard = part
        rel = partition_path(day_date(day), shard, self.drop_id)
        self.rows[rel] = self.rows.get(rel, 0) + len(rows)
        previous = self._pending.get(rel)
        if previous is not None:
            previous.result()
        while len(self._in_flight) > self._threads:
            self._in_flight.popleft().result()
        writer = self._writer(rel, _WRITTEN_SCHEMA, DICTIONARY, _FOOTER)
        fix_writer = None
        if coords is not None:
            fixes_rel = fixes_path(rel)
            self.fix_rows[fixes_rel] = self.fix_rows.get(fixes_rel, 0) + len(coords)
            fix_writer = self._writer(fixes_rel, _WRITTEN_FIXES, FIX_DICTIONARY, _FIXES_FOOTER)
        future = self._pool.submit(self._write, writer, rows, fix_writer, coords)
        self._pending[rel] = future
        self._in_flight.append(future)

    def _writer(
        self, rel: str, schema: pa.Schema, dictionary: tuple[str, ...], footer: dict[str, str]
    ) -> pq.ParquetWriter:
        """The open writer of the file ``rel`` (relative to the scratch root), opened once."""
        writer = self._writers.get(rel)
        if writer is None:
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(
                path,
                schema,
                store_schema=False,  # the footer holds the contract's schema instead
                compression="zstd",
                use_dictionary=list(dictionary),
                column_encoding=ENCODING,
                dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES,
                write_statistics=list(STATISTICS),
            )
            writer.add_key_value_metadata(footer)
            self._writers[rel] = writer
        return writer

    def _write(
        self,
        writer: pq.ParquetWriter,
        rows: StagedRows,
        fix_writer: pq.ParquetWriter | None,
        coords: FixCoords | None,
    ) -> None:
        table = self._table(rows)
        writer.write_table(table, row_group_size=1 << 30)
        if fix_writer is not None and coords is not None:
            fix_writer.write_table(_fixes_table(table, coords), row_group_size=1 << 30)

    def _table(self, rows: StagedRows) -> pa.Table:
        """The staged columns of ``rows`` (one local date).

        String columns are dictionary arrays whose dictionary holds just the values of these
        rows, in order of first appearance: Parquet then writes that dictionary and the codes as
        they are, instead of hashing every row's string.
        """
        n = len(rows)
        places = Compacted.of(rows.place)
        columns = {
            "pseudonym": encoded(rows.pid, self._pseudonyms),
            "event_time": pa.array(rows.event_ms).cast(pa.timestamp("ms", tz="UTC")),
            "local_date": pa.array(rows.local_days).cast(pa.date32()),
            "local_hour": pa.array(rows.local_hour),
            "source": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), self._source),
            "event_type": encoded(rows.event_type, _EVENT_TYPES),
            **{c: coded.encoded(places) for c, coded in self._places.items()},
        }
        table = pa.table(columns, schema=_WRITTEN_SCHEMA)
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


def _fixes_table(events: pa.Table, coords: FixCoords) -> pa.Table:
    """The fixes sidecar of a row group of staged GPS ``events``: their coordinates beside the
    columns they share (the same dictionary arrays, no string built twice)."""
    accuracy = pa.array(coords.accuracy_m, pa.float32(), mask=np.isnan(coords.accuracy_m))
    columns = {
        "pseudonym": events["pseudonym"],
        "event_time": events["event_time"],
        "local_date": events["local_date"],
        "local_hour": events["local_hour"],
        "lat": pa.array(coords.lat, pa.float64()),
        "lon": pa.array(coords.lon, pa.float64()),
        "accuracy_m": accuracy,
        "admin1": events["admin1"],
        "admin2": events["admin2"],
        "admin3": events["admin3"],
    }
    return pa.table(columns, schema=_WRITTEN_FIXES)


_EVENT_TYPES = pa.array(STAGED_EVENT_TYPES, pa.string())
_FIELDS = StagedRows.__slots__


def contract_problems(path: Path, contract: Contract = STAGED_EVENTS) -> list[str]:
    """What breaks the staged contract (events, or the fixes sidecar) in a written file, from
    its footer.

    The schema is checked, and the null counts of the required columns that have statistics
    (:data:`STATISTICS`; the writer checks the others before writing).
    """
    meta = pq.read_metadata(path)
    problems = contract.problems(meta.schema.to_arrow_schema())
    required = {
        c: i for i, c in enumerate(meta.schema.names) if c in contract.required and c in STATISTICS
    }
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for name, i in required.items():
            stats = group.column(i).statistics
            if stats is None or not stats.has_null_count or stats.null_count:
                problems.append(f"column {name!r} may hold nulls (row group {rg})")
    return problems
