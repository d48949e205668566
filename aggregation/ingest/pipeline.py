"""Ingest of one raw file, and of a batch: read, dedupe, validate, map, pseudonymise, stage.

Per file, under the workspace's ingest lock:

1. :func:`~aggregation.ingest.reading.open_source` checks the file (CSV is normalised to scratch);
2. background threads start reading the file chunk by chunk (``[ingest] batch_rows`` rows, in
   file order, four chunks ahead) and preparing each chunk read: each row gets the number of its
   id in the file's :class:`~aggregation.ingest.idtable.IdTable` (which keys each new id once,
   and checks its format once), and the rows that break a rule are flagged
   (:mod:`~aggregation.ingest.validation`);
3. meanwhile :func:`~aggregation.ingest.profiling.profile` finds the rows that may be exact
   duplicates;
4. then, chunk by chunk: exact duplicates are dropped, rows are given the number of their place,
   and the valid ones are handed to the :class:`~aggregation.ingest.staging.StagedWriter` as
   integer columns; its threads build the string columns and write row groups to scratch, while
   refused rows go to the quarantine file;
5. the written files are checked (contract, reconciliation with the rows read) and committed
   (:func:`~aggregation.ingest.commit.commit`).

Memory is bounded by the settings, not by the size of the file: five chunks, the writer's
buffers (``row_group_rows`` rows per partition, 24 bytes a row) and a few row groups being
written, the duplicate scan's ``[ingest] memory_limit_mb``, and the table of the file's distinct
ids (about 40 bytes per subscriber).

A file that cannot be read fails alone (:class:`~aggregation.ingest.reading.RawFileError`):
nothing from it is staged, its previous staged data stay as they were, and the batch goes on.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from aggregation.ingest.chunks import (
    CELL_ROW,
    MICROS_PER_DAY,
    PID,
    fix_coords,
    flag_and_code,
    identify,
    micros,
    staged_rows,
)
from aggregation.ingest.commit import commit
from aggregation.ingest.context import IngestContext, prepare, workspace_lock
from aggregation.ingest.dedupe import Deduplicator
from aggregation.ingest.drops import RawFile, discover
from aggregation.ingest.idtable import IdTable
from aggregation.ingest.profiling import profile
from aggregation.ingest.quarantine import QuarantineWriter, quarantine_rows
from aggregation.ingest.reading import (
    LINE,
    READ_ERRORS,
    ROW,
    RawFileError,
    Source,
    open_source,
)
from aggregation.ingest.report import (
    MAX_EXAMPLES,
    FileOutcome,
    IngestReport,
    new_run_id,
    write_report,
)
from aggregation.ingest.staging import (
    StagedWriter,
    contract_problems,
    day_date,
)
from aggregation.ingest.validation import (
    BAD,
    COLUMN,
    DETAIL,
    ID_FORMAT,
    LAT,
    LOCAL,
    LON,
    REASON,
    Window,
    explain,
)
from aggregation.staged_lock import changing_staged
from schemas.errors import InternalError
from schemas.quality import QuarantineReason
from schemas.staged import FIXES_DIR as STAGED_FIXES_DIR
from schemas.staged import STAGED_FIXES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path

    from numpy.typing import NDArray

    from schemas.workspace import Workspace


class Progress(Protocol):
    """Called as rows of a file are processed."""

    def __call__(self, raw: RawFile, rows_done: int, rows_total: int, /) -> None: ...


def ingest_files(
    paths: Iterable[Path | str],
    workspace: Workspace | Path | str,
    *,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> IngestReport:
    """Ingest raw files (or directories of them) into the workspace; write and return the report.

    Files that cannot be read are reported as failed; the others are staged. Check
    :attr:`IngestReport.ok`.
    """
    files = discover(paths)
    ctx = prepare(workspace, feeds={f.feed for f in files}, environ=environ)
    report = IngestReport(
        run_id=run_id or new_run_id(),
        started=_now(),
        workspace=str(ctx.workspace.root),
        settings=ctx.settings(),
    )
    for raw in files:
        report.files.append(ingest_file(ctx, raw, progress=progress))
    report.finished = _now()
    write_report(report, ctx.workspace.reports)
    return report


def ingest_file(
    ctx: IngestContext, raw: RawFile, *, progress: Progress | None = None
) -> FileOutcome:
    """Ingest one raw file; a file that cannot be read gives a failed outcome, not an error."""
    cfg = ctx.workspace.config
    window = Window.for_export(raw.export_day, cfg.ingest.late_days)
    outcome = FileOutcome(
        file=str(raw.path),
        drop_id=raw.drop_id,
        feed=raw.feed,
        format=raw.fmt,
        export_day=raw.export_day.isoformat(),
        window=str(window),
    )
    started = time.perf_counter()
    with workspace_lock(ctx.workspace) as scratch:
        try:
            _DropRun(ctx, raw, window, scratch, outcome, progress).run()
        except RawFileError as exc:
            outcome.status = "failed"
            outcome.error = str(exc)
            outcome.rows_staged = outcome.rows_quarantined = outcome.duplicates_dropped = 0
            outcome.quarantined_by_reason = dict.fromkeys(outcome.quarantined_by_reason, 0)
            outcome.staged_by_date, outcome.examples, outcome.partitions = {}, [], 0
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


class _Chunks:
    """The rows of a file ``size`` at a time, in file order, each passed to ``read`` then to
    ``prepare``.

    Two background threads work from the moment this is made, up to ``ahead`` chunks before the
    one being used: one reads each chunk and passes it to ``read``, the other passes each chunk
    read to ``prepare``, so reading the next chunk overlaps preparing this one; the first chunks
    are ready when the caller, meanwhile busy with the duplicate scan, starts on them. Each slice
    is read and computed on its own (slices push down to the Parquet reader), so memory holds
    ``ahead + 1`` chunks whatever the size of the file. ``prepare`` runs on one chunk at a time,
    in file order. Use it in a ``with`` block: leaving it stops the threads.
    """

    def __init__(
        self,
        rows: pl.LazyFrame,
        size: int,
        source: Source,
        read: Callable[[pl.DataFrame], pl.DataFrame],
        prepare: Callable[[pl.DataFrame], pl.DataFrame],
        ahead: int = 4,
    ) -> None:
        self._rows, self._size, self._source = rows, size, source
        self._then_read, self._prepare = read, prepare
        self._offsets = iter(range(0, source.rows_in, size))
        self._reader = ThreadPoolExecutor(max_workers=1)
        self._preparer = ThreadPoolExecutor(max_workers=1)  # one: chunks prepared in file order
        self._pending: deque[tuple[Future[pl.DataFrame], Future[pl.DataFrame]]] = deque()
        for _ in range(ahead):
            self._submit()

    def __enter__(self) -> _Chunks:
        return self

    def __exit__(self, *exc: object) -> None:
        for futures in self._pending:
            for future in futures:
                future.cancel()
        self._preparer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    def __iter__(self) -> Iterator[pl.DataFrame]:
        while self._pending:
            _, prepared = self._pending.popleft()
            chunk = prepared.result()
            self._submit()
            yield chunk

    def _submit(self) -> None:
        offset = next(self._offsets, None)
        if offset is not None:
            read = self._reader.submit(self._read, offset)
            self._pending.append((read, self._preparer.submit(self._prepared, read)))

    def _read(self, offset: int) -> pl.DataFrame:
        try:  # what the file holds may make the steps fail too: that file fails alone
            return self._then_read(self._rows.slice(offset, self._size).collect())
        except READ_ERRORS as exc:
            raise self._source.unreadable(exc) from exc

    def _prepared(self, read: Future[pl.DataFrame]) -> pl.DataFrame:
        chunk = read.result()
        try:
            return self._prepare(chunk)
        except READ_ERRORS as exc:
            raise self._source.unreadable(exc) from exc


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class _DropRun:
    """The ingest of one file into scratch, then its commit."""

    ctx: IngestContext
    raw: RawFile
    window: Window
    scratch: Path
    outcome: FileOutcome
    progress: Progress | None
    rows_done: int = 0

    def run(self) -> None:
        layout = self.ctx.layout
        layout.check(self.ctx.workspace)
        cfg = self.ctx.workspace.config
        feed = self.raw.feed
        source = open_source(self.raw, self.scratch)
        self.outcome.rows_in = source.rows_in
        ids = IdTable(self.ctx.pseudonymiser, feed, id_format=ID_FORMAT[feed])
        cells = self.ctx.cells if feed == "cdr" else None
        flagged = partial(flag_and_code, feed, self._rule_args(source), cells)
        identified = partial(identify, ids, feed)
        with _Chunks(source.scan(), cfg.ingest.batch_rows, source, flagged, identified) as chunks:
            found = profile(  # while the first chunks are read and identified
                source, memory_limit_mb=cfg.ingest.memory_limit_mb, scratch=self.scratch / "keys"
            )
            dedupe = Deduplicator(found.shared, feed, source.contract.names, found.keys)
            places = cells.places if cells is not None else self.ctx.zones.places
            staged = StagedWriter(
                self.scratch / "staged",
                self.raw.drop_id,
                pseudonyms=ids,
                places=places,
                source=feed,
            )
            quarantine = QuarantineWriter(self.scratch / "quarantine.parquet", feed)
            try:
                for chunk in chunks:
                    self._chunk(source, chunk, dedupe, ids, staged, quarantine)
            except BaseException:
                staged.abort()
                quarantine.close()
                raise
        partitions = staged.close()
        fixes = staged.fix_rows
        quarantine_file = quarantine.close()
        self._verify(partitions, quarantine_file)
        self._verify_fixes(partitions, fixes)
        layout.record(self.ctx.workspace)
        with changing_staged(self.ctx.workspace.root):  # once no release is reading them
            commit(
                self.ctx.workspace,
                self.raw.drop_id,
                self.scratch / "staged",
                {**partitions, **fixes},
                quarantine_file,
                self._manifest(partitions, fixes),
            )
        self.outcome.partitions = len(partitions)
        if quarantine_file is not None:
            self.outcome.quarantine_file = f"quarantine/{self.raw.drop_id}.parquet"

    def _rule_args(self, source: Source) -> dict[str, Any]:
        tz = self.ctx.workspace.config.workspace.timezone
        return {"text": source.text, "window": self.window, "timezone": tz}

    def _chunk(
        self,
        source: Source,
        chunk: pl.DataFrame,
        dedupe: Deduplicator,
        ids: IdTable,
        staged: StagedWriter,
        quarantine: QuarantineWriter,
    ) -> None:
        """Stage the good rows of ``chunk`` and quarantine the others.

        The chunk is never filtered whole (that copies every column): rows are told apart by
        masks, and only the refused rows (few) and the staged integer columns are taken out.
        """
        feed = self.raw.feed
        self.rows_done += len(chunk)
        kept = ~dedupe.duplicates(chunk)
        checked = kept & ~chunk[BAD].to_numpy()
        local_us = micros(chunk[LOCAL])
        local_days = np.floor_divide(local_us, MICROS_PER_DAY)
        place = self._locate(chunk, local_days, checked)
        good = checked & (place >= 0)
        bad = self._refused(source, chunk, kept & ~checked, checked & (place < 0))
        coords = fix_coords(chunk) if feed == "gps" else None
        by_day = staged.add(staged_rows(chunk, place, local_us, local_days, feed), good, coords)
        bad = bad.with_columns(ids.pseudonyms(bad[PID]))
        quarantine.add(quarantine_rows(bad, feed, self.raw.name, text=source.text))
        self._count(by_day, bad, len(chunk) - int(kept.sum()))
        if self.progress is not None:
            self.progress(self.raw, self.rows_done, source.rows_in)

    def _locate(
        self, chunk: pl.DataFrame, local_days: NDArray[np.int64], checked: NDArray[np.bool_]
    ) -> NDArray[np.int64]:
        """The place of each row (-1: unknown cell, or outside coverage); rows not ``checked``
        (refused already) are not located."""
        if self.raw.feed == "cdr":
            return self.ctx.cells.in_service(chunk[CELL_ROW].to_numpy(), local_days)
        place = np.full(len(chunk), -1, dtype=np.int64)
        lon = chunk[LON].to_numpy()[checked].astype(np.float64)
        lat = chunk[LAT].to_numpy()[checked].astype(np.float64)
        place[checked] = self.ctx.zones.locate(lon, lat)
        return place

    def _refused(
        self,
        source: Source,
        chunk: pl.DataFrame,
        flagged: NDArray[np.bool_],
        unlocated: NDArray[np.bool_],
    ) -> pl.DataFrame:
        """The rows of ``chunk`` that break a rule (``flagged``) or could not be located, in
        file order, with the reason, column and detail of each."""
        bad = explain(
            chunk.filter(flagged) if flagged.any() else chunk.clear(),
            self.raw.feed,
            **self._rule_args(source),
        )
        if not unlocated.any():
            return bad
        if self.raw.feed == "cdr":
            reason, column, detail = QuarantineReason.UNKNOWN_CELL, "cell_id", _CELL_DETAIL
        else:
            reason, column, detail = QuarantineReason.OUTSIDE_COVERAGE, "lat", _GPS_DETAIL
        refused = chunk.filter(unlocated).with_columns(
            pl.lit(reason.value).alias(REASON),
            pl.lit(column).alias(COLUMN),
            pl.lit(detail).alias(DETAIL),
        )
        return pl.concat([bad, refused.select(bad.columns)]).sort(ROW)

    def _count(self, by_day: dict[int, int], bad: pl.DataFrame, n_dupes: int) -> None:
        """Add a chunk's rows staged (per local day), refused and dropped to the outcome."""
        out = self.outcome
        out.rows_staged += sum(by_day.values())
        out.rows_quarantined += len(bad)
        out.duplicates_dropped += n_dupes
        if len(bad):
            for reason, n in bad[REASON].value_counts().iter_rows():
                out.quarantined_by_reason[reason] += n
            room = MAX_EXAMPLES - len(out.examples)
            if room > 0:
                out.examples += (
                    bad.head(room)
                    .select(
                        pl.col(ROW).alias("row_number"),
                        pl.col(LINE).alias("line"),
                        pl.col(REASON).alias("reason"),
                        pl.col(COLUMN).alias("column"),
                    )
                    .to_dicts()
                )
        if by_day:
            for day, n in by_day.items():
                key = day_date(day).isoformat()
                out.staged_by_date[key] = out.staged_by_date.get(key, 0) + n
            out.staged_by_date = dict(sorted(out.staged_by_date.items()))

    def _verify(self, partitions: dict[str, int], quarantine_file: Path | None) -> None:
        """The written files hold exactly the rows counted, and conform to their contracts."""
        out = self.outcome
        root = self.scratch / "staged"
        written = 0
        for rel, rows in partitions.items():
            problems = contract_problems(root / rel)
            n = pq.read_metadata(root / rel).num_rows
            if problems or n != rows:
                msg = f"staged file {rel} of {self.raw.name} is wrong: {problems or [n, rows]}"
                raise InternalError(msg)
            written += n
        in_quarantine = pq.read_metadata(quarantine_file).num_rows if quarantine_file else 0
        if (
            written != out.rows_staged
            or in_quarantine != out.rows_quarantined
            or not out.reconciled
        ):
            msg = (
                f"{self.raw.name} does not reconcile: rows in {out.rows_in}, staged {written} "
                f"(counted {out.rows_staged}), quarantined {in_quarantine} (counted "
                f"{out.rows_quarantined}), duplicates {out.duplicates_dropped}. Nothing was "
                "staged. This is a bug: please report it."
            )
            raise InternalError(msg)

    def _verify_fixes(self, partitions: dict[str, int], fixes: dict[str, int]) -> None:
        """A GPS drop's fixes sidecar mirrors its staged events file for file, row for row."""
        if self.raw.feed != "gps":
            if fixes:
                msg = f"{self.raw.name}: a CDR drop wrote GPS fixes {sorted(fixes)[:3]}"
                raise InternalError(msg)
            return
        root = self.scratch / "staged"
        expected = {f"{STAGED_FIXES_DIR}/{rel}": n for rel, n in partitions.items()}
        written = {rel: pq.read_metadata(root / rel).num_rows for rel in fixes}
        problems = {rel: contract_problems(root / rel, STAGED_FIXES) for rel in fixes}
        if expected != fixes or written != fixes or any(problems.values()):
            msg = (
                f"the GPS fixes staged from {self.raw.name} do not mirror its staged events "
                f"(events {expected}, fixes counted {fixes}, written {written}, contract "
                f"{ {k: v for k, v in problems.items() if v} }). Nothing was staged. This is a "
                "bug: please report it."
            )
            raise InternalError(msg)

    def _manifest(self, partitions: dict[str, int], fixes: dict[str, int]) -> dict[str, Any]:
        out = self.outcome
        stat = self.raw.path.stat()
        return {
            "drop_id": self.raw.drop_id,
            "source_file": self.raw.name,
            "source_bytes": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns,
            "feed": self.raw.feed,
            "format": self.raw.fmt,
            "export_day": self.raw.export_day.isoformat(),
            "window": str(self.window),
            "ingested_at": _now(),
            **self.ctx.settings(),
            "rows_in": out.rows_in,
            "rows_staged": out.rows_staged,
            "rows_quarantined": out.rows_quarantined,
            "duplicates_dropped": out.duplicates_dropped,
            "quarantined_by_reason": out.quarantined_by_reason,
            "partitions": partitions,
            **({"fixes": fixes} if fixes else {}),
        }


_CELL_DETAIL = "cell not in the cell table, or not in service on the event's local date"
_GPS_DETAIL = "position outside every admin3 zone"
