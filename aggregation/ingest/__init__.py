"""Ingest: raw operator exports in, pseudonymised, zone-mapped, staged events out; nothing lost.

``ingest_files(paths, workspace)`` ingests a batch and writes its report. Modules:
    drops         -- raw file names: feed, export day, format, drop id; finding files in folders.
    reading       -- CSV (plain, gzipped) and Parquet reading with exact row and line numbers.
    profiling     -- one bounded-memory scan: distinct ids and duplicate candidates.
    dedupe        -- exact duplicates: compared exactly, dropped and counted.
    validation    -- the rules that quarantine a row, and their precedence.
    zones         -- cell table lookups and GPS point-in-polygon.
    pseudonymise  -- keyed pseudonyms (HMAC-SHA256) and the secret they need.
    quarantine    -- refused rows, with reason, file and line, and no raw id.
    staging       -- partitioned Parquet written aside, then committed per drop.
    report        -- the reconciliation report (JSON and a readable summary).
    context       -- the workspace, key and reference data a run needs (``prepare``).
    pipeline      -- one file, one batch: the steps above in order.
"""

from aggregation.ingest.context import IngestContext, prepare
from aggregation.ingest.drops import RawFile, discover
from aggregation.ingest.pipeline import IngestBusyError, Progress, ingest_file, ingest_files
from aggregation.ingest.pseudonymise import Pseudonymiser, Secret, SecretError, load_secret
from aggregation.ingest.reading import RawFileError
from aggregation.ingest.report import (
    FileOutcome,
    IngestFailedError,
    IngestReport,
    new_run_id,
    write_report,
)

__all__ = [
    "FileOutcome",
    "IngestBusyError",
    "IngestContext",
    "IngestFailedError",
    "IngestReport",
    "Progress",
    "Pseudonymiser",
    "RawFile",
    "RawFileError",
    "Secret",
    "SecretError",
    "discover",
    "ingest_file",
    "ingest_files",
    "load_secret",
    "new_run_id",
    "prepare",
    "write_report",
]
