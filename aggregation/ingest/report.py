"""The ingest report: what happened to every row of every file, as JSON and as a readable summary.

Each run writes ``reports/ingest_<run-id>.json`` and ``reports/ingest_<run-id>.txt``. For every file
the report reconciles ``rows_in = rows_staged + rows_quarantined + duplicates_dropped`` and breaks
the quarantined rows down by reason. Reports hold counts, file names, line numbers, reason codes
and column names only: never a raw id, a raw value or the secret.

JSON layout::

    {"run_id", "started", "finished", "workspace", "ok", "warnings": [message],
     "settings": {"timezone", "shards", "late_days", "key_id"},
     "totals": {"files", "failed", "rows_in", "rows_staged", "rows_quarantined",
                "duplicates_dropped", "quarantined_by_reason": {reason: n}},
     "files": [{"file", "drop_id", "feed", "format", "export_day", "window", "status", "error",
                "rows_in", "rows_staged", "rows_quarantined", "duplicates_dropped", "reconciled",
                "quarantined_by_reason": {reason: n}, "staged_by_date": {date: n},
                "partitions", "quarantine_file", "examples": [{"row_number", "line", "reason",
                "column"}], "seconds", "rows_per_second"}],
     "report_files": {"json", "summary"}}
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from schemas.errors import MobilityError
from schemas.quality import QuarantineReason

if TYPE_CHECKING:
    from pathlib import Path

Status = Literal["staged", "failed"]
MAX_EXAMPLES = 5


class IngestFailedError(MobilityError):
    """Some files of an ingest run could not be read; the others were staged."""


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique run id: UTC time and a random suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def no_reasons() -> dict[str, int]:
    """Every reason code with a zero count."""
    return {r.value: 0 for r in QuarantineReason}


@dataclass
class FileOutcome:
    """What ingest did with one raw file."""

    file: str
    drop_id: str
    feed: str
    format: str
    export_day: str
    window: str
    status: Status = "staged"
    error: str | None = None
    rows_in: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    duplicates_dropped: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=no_reasons)
    staged_by_date: dict[str, int] = field(default_factory=dict)
    partitions: int = 0
    quarantine_file: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reconciled(self) -> bool:
        """Every row in is accounted for (always true of a staged file)."""
        accounted = self.rows_staged + self.rows_quarantined + self.duplicates_dropped
        by_reason = sum(self.quarantined_by_reason.values())
        return self.rows_in == accounted and by_reason == self.rows_quarantined

    @property
    def rows_per_second(self) -> float:
        """Throughput of this file."""
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["reconciled"] = self.reconciled
        data["rows_per_second"] = round(self.rows_per_second)
        return data


@dataclass
class IngestReport:
    """One ingest run over a batch of files."""

    run_id: str
    started: str
    workspace: str
    settings: dict[str, Any]
    files: list[FileOutcome] = field(default_factory=list)
    finished: str | None = None
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No file failed."""
        return all(f.status == "staged" for f in self.files)

    @property
    def failed(self) -> list[FileOutcome]:
        """The files that failed."""
        return [f for f in self.files if f.status == "failed"]

    @property
    def empty(self) -> list[FileOutcome]:
        """Files read without error that held no row (a header and nothing else, or no line)."""
        return [f for f in self.files if f.status == "staged" and f.rows_in == 0]

    def warnings(self) -> list[str]:
        """What needs a look although nothing failed: drops with no rows."""
        return [
            (
                f"{f.drop_id}.{f.format} has no rows (a header and nothing else): nothing was "
                f"staged from it for {f.export_day}. If the export was cut short, re-export the "
                "drop and ingest it again; if the day really had no events, ignore this."
            )
            for f in self.empty
        ]

    def failure_message(self) -> str:
        """What failed and what to do, for the error raised at the end of a run."""
        names = ", ".join(f.drop_id + "." + f.format for f in self.failed)
        return (
            f"{len(self.failed)} of {len(self.files)} file(s) could not be read and were not "
            f"staged: {names}. Fix or re-export them and ingest them again; see "
            f"{self.paths.get('summary', 'the report')}."
        )

    def totals(self) -> dict[str, Any]:
        """Sums over the files."""
        reasons = no_reasons()
        for f in self.files:
            for r, n in f.quarantined_by_reason.items():
                reasons[r] += n
        return {
            "files": len(self.files),
            "failed": len(self.failed),
            "rows_in": sum(f.rows_in for f in self.files),
            "rows_staged": sum(f.rows_staged for f in self.files),
            "rows_quarantined": sum(f.rows_quarantined for f in self.files),
            "duplicates_dropped": sum(f.duplicates_dropped for f in self.files),
            "quarantined_by_reason": reasons,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run_id,
            "started": self.started,
            "finished": self.finished,
            "workspace": self.workspace,
            "ok": self.ok,
            "warnings": self.warnings(),
            "settings": self.settings,
            "totals": self.totals(),
            "files": [f.to_dict() for f in self.files],
            "report_files": self.paths,
        }

    def summary(self) -> str:
        """The readable summary: one line per file, the reasons, the failures."""
        t = self.totals()
        lines = [
            f"Ingest run {self.run_id} into {self.workspace}",
            (
                f"{t['files']} file(s), {t['failed']} failed; rows in {t['rows_in']:,} = staged "
                f"{t['rows_staged']:,} + quarantined {t['rows_quarantined']:,} + duplicates "
                f"dropped {t['duplicates_dropped']:,}"
            ),
            "",
            (
                f"{'file':<28} {'status':<7} {'rows in':>12} {'staged':>12} {'quarant.':>9} "
                f"{'dupes':>7} {'rows/s':>10}"
            ),
        ]
        lines += [
            f"{f.drop_id + '.' + f.format:<28} {f.status:<7} {f.rows_in:>12,} {f.rows_staged:>12,} "
            f"{f.rows_quarantined:>9,} {f.duplicates_dropped:>7,} {f.rows_per_second:>10,.0f}"
            for f in self.files
        ]
        reasons = {r: n for r, n in t["quarantined_by_reason"].items() if n}
        if reasons:
            lines += ["", "Quarantined by reason:"]
            lines += [f"  {r:<24} {n:>10,}" for r, n in reasons.items()]
            lines.append("  (rows are in quarantine/<drop>.parquet with file, row and line)")
        for f in self.files:
            for ex in f.examples:
                where = (
                    f"line {ex['line']}" if ex["line"] is not None else f"row {ex['row_number']}"
                )
                column = f" ({ex['column']})" if ex["column"] else ""
                lines.append(f"  e.g. {f.drop_id}.{f.format} {where}: {ex['reason']}{column}")
        if self.empty:
            lines += ["", "WARNING: drops with no rows (nothing staged from them):"]
            lines += [f"  {w}" for w in self.warnings()]
        if self.failed:
            lines += ["", "Failed files (nothing from them was staged):"]
            lines += [f"  {f.error}" for f in self.failed]
        return "\n".join(lines) + "\n"


def write_report(report: IngestReport, reports_dir: Path) -> dict[str, str]:
    """Write the JSON report and the summary; their paths."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    json_path = reports_dir / f"ingest_{report.run_id}.json"
    text_path = reports_dir / f"ingest_{report.run_id}.txt"
    report.paths = {"json": str(json_path), "summary": str(text_path)}
    for path, content in (
        (json_path, json.dumps(report.to_dict(), indent=2) + "\n"),
        (text_path, report.summary()),
    ):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(path)
    return report.paths
