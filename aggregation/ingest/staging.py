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

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.errors import ConfigurationError
from schemas.staged import STAGED_EVENTS

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

    from schemas.workspace import Workspace

SHARD = "_shard"
DROPS_DIR = "_drops"
LAYOUT_FILE = "_layout.json"
ROW_GROUP_ROWS = 128 * 1024


def partition_path(local_date: dt.date, shard: int, drop_id: str) -> str:
    """Path of a partition file relative to ``staged/``."""
    return f"date={local_date.isoformat()}/shard={shard:03d}/{drop_id}.parquet"


class StagedWriter:
    """Writes the staged rows of one drop into per-partition files under a scratch directory.

    Rows are buffered per partition and written in row groups of about ``row_group_rows`` rows by
    a pool of threads (one write at a time per file, so row groups keep file order); memory is
    bounded by that times the number of partitions the drop touches.
    """

    def __init__(self, root: Path, drop_id: str, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.root = root
        self.drop_id = drop_id
        self.row_group_rows = row_group_rows
        self.rows: dict[str, int] = {}
        self._buffers: dict[str, list[pa.Table]] = {}
        self._buffered: dict[str, int] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._pending: dict[str, Future[None]] = {}
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)

    def add(self, frame: pl.DataFrame) -> None:
        """Add rows with the staged columns plus ``_shard``, in file order."""
        if frame.is_empty():
            return
        frame = frame.sort("local_date", SHARD, maintain_order=True)
        runs = frame.select(pl.struct("local_date", SHARD).rle().alias("run")).unnest("run")
        table = frame.drop(SHARD).to_arrow().cast(STAGED_EVENTS.schema)
        offset = 0
        for length, key in runs.iter_rows():
            rel = partition_path(key["local_date"], int(key[SHARD]), self.drop_id)
            self._buffers.setdefault(rel, []).append(table.slice(offset, length))
            self._buffered[rel] = self._buffered.get(rel, 0) + length
            self.rows[rel] = self.rows.get(rel, 0) + length
            offset += length
            if self._buffered[rel] >= self.row_group_rows:
                self._flush(rel)

    def _flush(self, rel: str) -> None:
        tables = self._buffers.pop(rel, [])
        self._buffered[rel] = 0
        if not tables:
            return
        previous = self._pending.get(rel)
        if previous is not None:
            previous.result()
        writer = self._writers.get(rel)
        if writer is None:
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(path, STAGED_EVENTS.schema, compression="zstd")
            self._writers[rel] = writer
        table = pa.concat_tables(tables)
        self._pending[rel] = self._pool.submit(writer.write_table, table, row_group_size=1 << 30)

    def close(self) -> dict[str, int]:
        """Write what is buffered, close every file; rows per partition file."""
        for rel in sorted(self._buffers):
            self._flush(rel)
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


def contract_problems(path: Path) -> list[str]:
    """What breaks the staged contract in a written file, from its footer (schema, nulls)."""
    meta = pq.read_metadata(path)
    problems = STAGED_EVENTS.problems(meta.schema.to_arrow_schema())
    required = {c: i for i, c in enumerate(meta.schema.names) if c in STAGED_EVENTS.required}
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
