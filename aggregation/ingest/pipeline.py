"""Ingest of one raw file, and of a batch: read, dedupe, validate, map, pseudonymise, stage.

Per file, under the workspace's ingest lock:

1. :func:`~aggregation.ingest.reading.open_source` checks the file (CSV is normalised to scratch);
2. :func:`~aggregation.ingest.profiling.profile` finds the rows that may be exact duplicates;
3. chunk by chunk (``[ingest] batch_rows`` rows, in file order; the next chunk is read in a
   background thread meanwhile): exact duplicates are dropped, rows are checked
   (:mod:`~aggregation.ingest.validation`), given the number of their pseudonym (in the file's
   :class:`~aggregation.ingest.idtable.IdTable`, which keys each new id once) and of their place,
   and handed to the :class:`~aggregation.ingest.staging.StagedWriter` as integer columns;
   its threads build the string columns and write row groups to scratch, while refused rows go
   to the quarantine file;
4. the written files are checked (contract, reconciliation with the rows read) and committed
   (:func:`~aggregation.ingest.staging.commit`).

Memory is bounded by the settings, not by the size of the file: two chunks, the writer's buffers
(``row_group_rows`` rows per partition, 24 bytes a row) and a few row groups being written,
the duplicate scan's ``[ingest] memory_limit_mb``, and the table of the file's distinct ids
(about 80 bytes per subscriber).

A file that cannot be read fails alone (:class:`~aggregation.ingest.reading.RawFileError`):
nothing from it is staged, its previous staged data stay as they were, and the batch goes on.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from aggregation.ingest.context import IngestContext, prepare
from aggregation.ingest.dedupe import Deduplicator
from aggregation.ingest.drops import RawFile, discover
from aggregation.ingest.idtable import IdTable
from aggregation.ingest.profiling import profile
from aggregation.ingest.quarantine import QuarantineWriter, quarantine_rows
from aggregation.ingest.reading import (
    ID_COLUMN,
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
    StagedRows,
    StagedWriter,
    commit,
    contract_problems,
)
from aggregation.ingest.validation import (
    BAD,
    COLUMN,
    DETAIL,
    LAT,
    LOCAL,
    LON,
    REASON,
    UTC,
    Window,
    explain,
    flag,
)
from aggregation.ingest.zones import PLACE
from schemas.errors import InternalError, MobilityError
from schemas.quality import QuarantineReason
from schemas.staged import STAGED_EVENT_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path

    from aggregation.ingest.drops import Feed
    from schemas.workspace import Workspace

LOCK_FILE = ".ingest.lock"
PID = "_pid"
"""Position of a row's id in the drop's table of pseudonyms."""


class Progress(Protocol):
    """Called as rows of a file are processed."""

    def __call__(self, raw: RawFile, rows_done: int, rows_total: int, /) -> None: ...


class IngestBusyError(MobilityError):
    """Another ingest holds the workspace."""


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
    with _workspace_lock(ctx.workspace) as scratch:
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


def _batches(rows: pl.LazyFrame, size: int, source: Source) -> Iterator[pl.DataFrame]:
    """``rows`` evaluated ``size`` rows at a time, in file order.

    Each slice is read and computed on its own (slices push down to the Parquet reader), so
    memory holds a slice or two whatever the size of the file: the next slice is read in a
    background thread while the caller works on the current one.
    """

    def read(offset: int) -> pl.DataFrame:
        try:
            return rows.slice(offset, size).collect()
        except READ_ERRORS as exc:
            raise source.unreadable(exc) from exc

    offsets = range(0, source.rows_in, size)
    if not offsets:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(read, offsets[0])
        for following in [*offsets[1:], None]:
            batch = upcoming.result()
            if following is not None:
                upcoming = pool.submit(read, following)
            yield batch


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@contextmanager
def _workspace_lock(ws: Workspace) -> Iterator[Path]:
    """Hold the workspace's ingest lock; yield a fresh scratch directory, removed afterwards."""
    ws.root.mkdir(parents=True, exist_ok=True)
    with (ws.root / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            msg = (
                f"Another ingest is running in {ws.root} (it holds {LOCK_FILE}); wait for it "
                "to finish, then run this one again."
            )
            raise IngestBusyError(msg) from exc
        scratch = ws.scratch / "ingest"
        shutil.rmtree(scratch, ignore_errors=True)  # anything here is left from a crashed run
        scratch.mkdir(parents=True)
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


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
        found = profile(
            source, memory_limit_mb=cfg.ingest.memory_limit_mb, scratch=self.scratch / "keys"
        )
        dedupe = Deduplicator(found.shared, feed, source.contract.names)
        ids = IdTable(self.ctx.pseudonymiser, feed)
        places = self.ctx.cells.places if feed == "cdr" else self.ctx.zones.places
        staged = StagedWriter(
            self.scratch / "staged",
            self.raw.drop_id,
            pseudonyms=ids,
            places=places,
            source=feed,
        )
        quarantine = QuarantineWriter(self.scratch / "quarantine.parquet", feed)
        rows = flag(source.scan(), feed, **self._rule_args(source))
        try:
            for chunk in _batches(rows, cfg.ingest.batch_rows, source):
                self._chunk(source, chunk, dedupe, ids, staged, quarantine)
        except BaseException:
            staged.abort()
            quarantine.close()
            raise
        partitions = staged.close()
        quarantine_file = quarantine.close()
        self._verify(partitions, quarantine_file)
        layout.record(self.ctx.workspace)
        commit(
            self.ctx.workspace,
            self.raw.drop_id,
            self.scratch / "staged",
            partitions,
            quarantine_file,
            self._manifest(partitions),
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
        feed = self.raw.feed
        self.rows_done += len(chunk)
        dupes = dedupe.duplicates(chunk)
        n_dupes = int(dupes.sum())
        if n_dupes:
            chunk = chunk.filter(~dupes)
        pid = ids.positions(chunk[ID_COLUMN[feed]], PID)
        chunk = chunk.with_columns(pid, ids.shards(pid))
        any_bad = bool(chunk[BAD].any())
        flagged = chunk.filter(pl.col(BAD)) if any_bad else chunk.clear()
        bad = explain(flagged, feed, **self._rule_args(source))
        good, refused = self._locate(chunk.filter(~pl.col(BAD)) if any_bad else chunk)
        if len(refused):
            bad = pl.concat([bad, refused.select(bad.columns)]).sort(ROW)
        staged.add(_staged_rows(good, feed))
        bad = bad.with_columns(ids.pseudonyms(bad[PID]))
        quarantine.add(quarantine_rows(bad, feed, self.raw.name, text=source.text))
        self._count(good, bad, n_dupes)
        if self.progress is not None:
            self.progress(self.raw, self.rows_done, source.rows_in)

    def _locate(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Valid rows with their zones, and those refused: unknown cell or outside coverage."""
        if self.raw.feed == "cdr":
            cells = self.ctx.cells
            located = cells.join(rows)
            unknown = cells.unknown(pl.col(LOCAL).dt.date())
            reason, column, detail = QuarantineReason.UNKNOWN_CELL, "cell_id", _CELL_DETAIL
        else:
            found = self.ctx.zones.locate(
                rows[LON].to_numpy().astype(np.float64), rows[LAT].to_numpy().astype(np.float64)
            )
            place = pl.Series(PLACE, found).cast(pl.UInt32, strict=False)  # -1 (none): null
            located = rows.with_columns(place)
            unknown = pl.col(PLACE).is_null()
            reason, column, detail = QuarantineReason.OUTSIDE_COVERAGE, "lat", _GPS_DETAIL
        located = located.with_columns(unknown.alias(BAD))
        if not located[BAD].any():
            return located, located.clear()
        refused = located.filter(pl.col(BAD)).with_columns(
            pl.lit(reason.value).alias(REASON),
            pl.lit(column).alias(COLUMN),
            pl.lit(detail).alias(DETAIL),
        )
        return located.filter(~pl.col(BAD)), refused

    def _count(self, good: pl.DataFrame, bad: pl.DataFrame, n_dupes: int) -> None:
        out = self.outcome
        out.rows_staged += len(good)
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
        if len(good):
            for day, n in good[LOCAL].dt.date().value_counts().iter_rows():
                key = day.isoformat()
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

    def _manifest(self, partitions: dict[str, int]) -> dict[str, Any]:
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
        }


_CELL_DETAIL = "cell not in the cell table, or not in service on the event's local date"
_GPS_DETAIL = "position outside every admin3 zone"


def _staged_rows(good: pl.DataFrame, feed: Feed) -> StagedRows:
    """Valid, located rows as staged integer columns (see :class:`StagedRows`)."""
    event_type = (
        pl.col("event_type").cast(pl.Enum(STAGED_EVENT_TYPES)).to_physical()
        if feed == "cdr"
        else pl.lit(STAGED_EVENT_TYPES.index("gps"))
    )
    cols = good.select(
        pl.col(PID),
        pl.col(PLACE).cast(pl.UInt32),
        pl.col(UTC).dt.truncate("1s").dt.epoch("ms"),
        pl.col(LOCAL).dt.date().cast(pl.Int32).alias("local_days"),
        pl.col(LOCAL).dt.hour().cast(pl.Int8).alias("local_hour"),
        event_type.cast(pl.UInt8).alias("event_type"),
        pl.col("shard").cast(pl.UInt16),
    )
    return StagedRows(*(cols.to_series(i).to_numpy() for i in range(cols.width)))
