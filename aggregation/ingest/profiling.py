"""One bounded-memory scan of a raw file before its rows are processed.

It finds what the chunked pass needs to know about the whole file in advance: which rows may be
exact duplicates of another row (see :mod:`~aggregation.ingest.dedupe`). Exact copies have the
same id and time, so the scan hashes the (id, time) of every well-formed row
(:func:`duplicate_key`, only those two columns are read) and keeps the hashes met more than once:
the *shared* hashes, few in any real file. The chunked pass compares exactly only the rows whose
hash is shared.

Finding the shared hashes means sorting all of them. A file's hashes are sorted in memory when
they fit in ``[ingest] memory_limit_mb`` (:data:`ROW_BYTES` per row, so 3 GiB holds 160 M rows):
the hashes in file order are then kept for the chunked pass, which takes its rows' hashes from
them instead of hashing its rows again. Those of a bigger file are spread by hash over that many
part files in the ingest's scratch directory, and each part is read back and sorted on its own
(the chunked pass then hashes its rows). Memory stays within the setting whatever the size of the
file; a bigger file only writes and reads its hashes once more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from aggregation.ingest.reading import ID_COLUMN, MALFORMED, READ_ERRORS, TIME_COLUMN

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from numpy.typing import NDArray

    from aggregation.ingest.drops import Feed
    from aggregation.ingest.reading import Source

ROW_BYTES = 20
"""Memory counted per row of a part: its hash in file order (kept for the chunked pass when the
file's hashes fit), a copy of it to sort, the comparison with its neighbour, and room for the
batch being read (19 bytes a row measured at the peak, 5 M rows)."""
SCAN_ROWS = 4_000_000
"""Rows read at a time (two columns)."""
SEED = 0xD0_0B1E
KEY = "_dupe_key"


def duplicate_key(feed: Feed) -> pl.Expr:
    """The hash of a row's (id, time) that exact copies share: the same in every chunk."""
    return pl.struct(ID_COLUMN[feed], TIME_COLUMN[feed]).hash(SEED).alias(KEY)


@dataclass(frozen=True, slots=True)
class Profile:
    """What one scan of a raw file tells ingest before it processes the rows."""

    shared: NDArray[np.uint64]
    """The :func:`duplicate_key` values of more than one row, sorted."""
    parts: int
    """Into how many parts the hashes were spread (1: they were sorted in memory)."""
    keys: NDArray[np.uint64] | None = None
    """The :func:`duplicate_key` of every row, in file order (malformed lines: any value), when
    the hashes were sorted in memory; None when they went through part files."""


def profile(
    source: Source,
    *,
    memory_limit_mb: int,
    scratch: Path,
    scan_rows: int = SCAN_ROWS,
    row_bytes: int = ROW_BYTES,
) -> Profile:
    """The shared duplicate keys of ``source``, in memory bounded by ``memory_limit_mb``.

    ``row_bytes`` is the memory counted per row (tests raise it to make small files take parts).
    """
    capacity = max(1, memory_limit_mb * 2**20 // row_bytes)
    # parts filled to 80 % of capacity on average: chance alone then does not over-fill one
    parts = 1 if source.rows_in <= capacity else math.ceil(source.rows_in / (0.8 * capacity))
    if parts == 1:
        keys = np.empty(source.rows_in, dtype=np.uint64)
        well_formed = np.empty(source.rows_in, dtype=np.uint64)
        n = m = 0
        for batch, malformed in _hashes(source, scan_rows):
            keys[n : n + len(batch)] = batch
            n += len(batch)
            good = batch[~malformed] if malformed.any() else batch
            well_formed[m : m + len(good)] = good
            m += len(good)
        repeated = _repeated([well_formed[:m]], several=False)
        # rows not as counted: the chunked pass hashes its rows (and reconciliation reports it)
        return Profile(repeated, parts, keys if n == source.rows_in else None)
    hashes = (
        b[~malformed] if malformed.any() else b for b, malformed in _hashes(source, scan_rows)
    )
    files = _spread(hashes, parts, scratch)
    try:
        shared = [
            _repeated(_blocks(path, capacity), several=path.stat().st_size > 8 * capacity)
            for path in files
        ]
    finally:
        for path in files:
            path.unlink()
    return Profile(np.sort(np.concatenate(shared)), parts)


def _hashes(
    source: Source, scan_rows: int
) -> Iterator[tuple[NDArray[np.uint64], NDArray[np.bool_]]]:
    """The duplicate key of each row of ``source`` and whether the row is a malformed line,
    ``scan_rows`` rows at a time."""
    rows = source.scan().select(duplicate_key(source.raw.feed), MALFORMED)
    for offset in range(0, source.rows_in, scan_rows):
        try:  # slices push down to the Parquet reader (a filter before them would not)
            batch = rows.slice(offset, scan_rows).collect()
        except READ_ERRORS as exc:
            raise source.unreadable(exc) from exc
        yield batch[KEY].to_numpy(), batch[MALFORMED].to_numpy()


def _repeated(blocks: Iterable[NDArray[np.uint64]], *, several: bool) -> NDArray[np.uint64]:
    """The values met more than once in ``blocks`` (each sorted in place), sorted and distinct.

    With ``several`` blocks, the distinct values met so far are kept to compare the next blocks
    with. A part only takes several blocks when it is over-full, that is when its rows repeat a
    few values many times, so these are few.
    """
    found: list[NDArray[np.uint64]] = []
    seen = np.empty(0, dtype=np.uint64)
    for block in blocks:
        block.sort()
        again = block[1:] == block[:-1]
        found.append(block[1:][again])
        if several:
            distinct = np.concatenate([block[:1], block[1:][~again]])
            at = np.searchsorted(seen, distinct).clip(max=max(len(seen) - 1, 0))
            found.append(distinct[seen[at] == distinct] if len(seen) else distinct[:0])
            seen = np.union1d(seen, distinct)
    return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.uint64)


def _spread(hashes: Iterator[NDArray[np.uint64]], parts: int, scratch: Path) -> list[Path]:
    """Write each hash to part file ``hash % parts``; the part files."""
    scratch.mkdir(parents=True, exist_ok=True)
    files = [scratch / f"duplicate-keys-{k}.u64" for k in range(parts)]
    handles = [path.open("wb") for path in files]
    try:
        for batch in hashes:
            part = (batch % np.uint64(parts)).astype(np.intp)
            ordered = batch[np.argsort(part, kind="stable")]
            ends = np.cumsum(np.bincount(part, minlength=parts))
            for k, piece in enumerate(np.split(ordered, ends[:-1])):
                piece.tofile(handles[k])
    finally:
        for handle in handles:
            handle.close()
    return files


def _blocks(path: Path, rows: int) -> Iterator[NDArray[np.uint64]]:
    """The hashes of a part file, ``rows`` at a time."""
    total = path.stat().st_size // 8
    for start in range(0, total, rows):
        yield np.fromfile(path, dtype=np.uint64, count=min(rows, total - start), offset=8 * start)
