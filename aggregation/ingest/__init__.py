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
    staging       -- partitioned Parquet written aside (encoding: its compiled column coding).
    commit        -- a drop's files swapped into the workspace, its manifest written last.
    report        -- the reconciliation report (JSON and a readable summary).
    context       -- the workspace, key and reference data a run needs (``prepare``).
    pipeline      -- one file, one batch: the steps above in order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregation.ingest.context import IngestBusyError, IngestContext, prepare
    from aggregation.ingest.drops import RawFile, discover
    from aggregation.ingest.pipeline import Progress, ingest_file, ingest_files
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

# Where each public name lives: imported on first use, so that a module needing one small piece
# (the release reads the secret through ``load_secret``) does not load the whole ingest (numba).
_HOME = {
    "FileOutcome": "aggregation.ingest.report",
    "IngestBusyError": "aggregation.ingest.context",
    "IngestContext": "aggregation.ingest.context",
    "IngestFailedError": "aggregation.ingest.report",
    "IngestReport": "aggregation.ingest.report",
    "Progress": "aggregation.ingest.pipeline",
    "Pseudonymiser": "aggregation.ingest.pseudonymise",
    "RawFile": "aggregation.ingest.drops",
    "RawFileError": "aggregation.ingest.reading",
    "Secret": "aggregation.ingest.pseudonymise",
    "SecretError": "aggregation.ingest.pseudonymise",
    "discover": "aggregation.ingest.drops",
    "ingest_file": "aggregation.ingest.pipeline",
    "ingest_files": "aggregation.ingest.pipeline",
    "load_secret": "aggregation.ingest.pseudonymise",
    "new_run_id": "aggregation.ingest.report",
    "prepare": "aggregation.ingest.context",
    "write_report": "aggregation.ingest.report",
}


def __getattr__(name: str) -> Any:
    """Import the module defining ``name`` on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
