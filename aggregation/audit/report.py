"""``audit report``: spend per window and per indicator, budget left, refusals, a timeline PNG,
the verification findings, and one self-contained HTML file an auditor can open and file.

Files written into the output directory: ``report.html`` (the PNG embedded, no external
resources), ``timeline.png`` and ``report.json`` (the same figures for scripts). The report reads
the ledger exactly as ``audit verify`` does (shared lock only) and includes its findings.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from aggregation.audit.spend import summarise_spend
from aggregation.audit.timeline import timeline_png
from aggregation.audit.verify import verify_workspace
from schemas.privacy import PrivacyUnit

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from aggregation.audit.spend import SpendSummary
    from aggregation.audit.verify import VerifyReport
    from aggregation.ledger import LedgerEntry

HTML_FILE = "report.html"
PNG_FILE = "timeline.png"
JSON_FILE = "report.json"

CROSS_SOURCE = (
    "CDR releases protect subscribers (unit subscriber-<window>) and GPS releases protect devices "
    "(unit device-<window>). The two identifiers cannot be linked and one person may be both, so "
    "releases of both sources are charged to the same accounting windows and caps: a window's "
    "spend, as checked here, bounds what any one person loses through both sources together."
)
"""How the budget covers both sources, stated in every report."""


def units_released(entries: Sequence[LedgerEntry]) -> dict[str, int]:
    """Releases per privacy unit (``subscriber-day``: CDR, ``device-day``: GPS …)."""
    found: dict[str, int] = {}
    for entry in entries:
        found[entry.privacy_unit] = found.get(entry.privacy_unit, 0) + 1
    return dict(sorted(found.items()))


LIMITATIONS = (
    (
        "The caps checked are the budget policy recorded in the ledger (hash-chained), which the "
        "data holder sets: compare it with the approved policy."
    ),
    (
        "A ledger cut short together with the release files of its last records, or rebuilt "
        "whole with recomputed hashes, keeps a valid chain: note the head hash of every audit "
        "outside the workspace and pass it to `audit verify --expect-head` next time."
    ),
    (
        "Group privacy across windows is accounted as m·ε and m·e^((m-1)ε)·δ per release over a "
        "rolling span: valid, and loose for long releases with a δ."
    ),
    "Noise is checked statistically only by `audit noise`, inside the data holder.",
)


@dataclass(frozen=True)
class AuditReport:
    """A report: when, verification outcome and spend; rendered by :func:`render_html`."""

    generated_at: datetime
    verification: VerifyReport
    spend: SpendSummary

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready account (``report.json``, ``audit report --json``)."""
        return {
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "verification": self.verification.as_dict(),
            "spend": self.spend.as_dict(),
            "releases": [_entry_row(e) for e in self.verification.snapshot.entries],
            "limitations": list(LIMITATIONS),
            "cross_source_accounting": CROSS_SOURCE,
            "releases_per_unit": units_released(self.verification.snapshot.entries),
        }


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`write_report` put the report."""

    html: Path
    png: Path
    json: Path


def build_report(root: Path | str, *, expected_head: str | None = None) -> AuditReport:
    """Verify the workspace at ``root`` and summarise its spend."""
    verification = verify_workspace(root, expected_head=expected_head)
    snapshot = verification.snapshot
    spend = summarise_spend(verification.policy, snapshot.entries, snapshot.refusals)
    return AuditReport(datetime.now(UTC), verification, spend)


def write_report(report: AuditReport, out: Path) -> ReportFiles:
    """Write ``report.html``, ``timeline.png`` and ``report.json`` into ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    png = timeline_png(report.spend)
    files = ReportFiles(out / HTML_FILE, out / PNG_FILE, out / JSON_FILE)
    files.png.write_bytes(png)
    files.html.write_text(render_html(report, png), encoding="utf-8")
    document = json.dumps(report.as_dict(), indent=2, sort_keys=True, default=str)
    files.json.write_text(document + "\n", encoding="utf-8")
    return files


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #17692b; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
.warn { color: #8a5a00; } code { font-size: .9em; } img { max-width: 100%; }
"""


def _entry_row(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "release_id": entry.entry_id,
        "indicator": entry.indicator,
        "unit": entry.privacy_unit,
        "windows": f"{entry.windows[0]}..{entry.windows[-1]} ({len(entry.windows)})",
        "mechanism": entry.mechanism,
        "scale": entry.scale,
        "epsilon": entry.epsilon,
        "delta": entry.delta,
        "k": entry.k_threshold,
        "cells": f"{entry.cells_released} / {entry.cells_suppressed}",
        "status": entry.status,
        "created_at": entry.created_at.isoformat(timespec="seconds"),
    }


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.6g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _table(rows: list[dict[str, Any]], empty: str) -> str:
    if not rows:
        return f"<p>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(_cell(v) for v in row.values()) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verification_html(v: VerifyReport) -> str:
    status = (
        '<span class="pass">all checks hold</span>'
        if v.passed
        else f'<span class="fail">{len(v.failures)} check(s) failed</span>'
    )
    items = "".join(
        f'<li class="{f.severity}"><b>{escape(f.severity.upper())}</b> [{escape(f.check)}] '
        f"<code>{escape(f.where)}</code>: {escape(f.message)}</li>"
        for f in (*v.failures, *v.warnings)
    )
    head = v.snapshot.head
    anchor = (
        "The ledger is empty."
        if head is None
        else f"Ledger head: seq {head.seq} ({escape(head.kind)}), hash "
        f"<code>{escape(head.record_hash)}</code>. Keep it outside the workspace and pass it to "
        "<code>mobility audit verify --expect-head</code> next time."
    )
    return (
        f"<p>Verification: {status}; {len(v.snapshot.entries)} ledger entries, "
        f"{v.files_checked} published files checked, {len(v.warnings)} warning(s).</p>"
        f"<p>{anchor}</p>" + (f"<ul>{items}</ul>" if items else "")
    )


def _policy_html(report: AuditReport) -> str:
    p = report.spend.policy
    rows: list[dict[str, Any]] = [
        {"setting": "composition (as the ledger states)", "value": p.composition},
        {
            "setting": "accounting window (privacy unit)",
            "value": str(PrivacyUnit("subscriber", p.accounting_window)),
        },
        {"setting": "ε cap per window", "value": p.epsilon_per_window},
        {"setting": "δ cap per window", "value": p.delta_per_window},
        {"setting": "rolling span (days)", "value": p.rolling_days},
        {"setting": "ε cap per rolling span", "value": p.epsilon_rolling},
        {"setting": "sources (CDR and GPS)", "value": CROSS_SOURCE},
    ]
    return _table(rows, "")


def render_html(report: AuditReport, png: bytes) -> str:
    """The report as one self-contained HTML document (the PNG inlined as a data URI)."""
    v, spend = report.verification, report.spend
    worst = spend.worst_rolling
    rolling = (
        "No spend yet."
        if worst is None
        else f"Most-spent {spend.policy.rolling_days}-day span: {worst.start}..{worst.end}, "
        f"ε={worst.epsilon_spent:.6g} of {worst.epsilon_cap:.6g} (left {worst.epsilon_left:.6g})."
    )
    image = base64.b64encode(png).decode("ascii")
    refusals = [
        {
            "time": r.created_at.isoformat(timespec="seconds"),
            "indicator": r.indicator,
            "windows": f"{r.windows[0]}..{r.windows[-1]} ({len(r.windows)})",
            "epsilon": r.epsilon,
            "reason": r.reason,
        }
        for r in spend.refusals
    ]
    sections = [
        f"<h1>Privacy audit of {escape(str(v.workspace))}</h1>",
        f"<p>Generated {escape(report.generated_at.isoformat(timespec='seconds'))}.</p>",
        "<h2>Verification</h2>",
        _verification_html(v),
        "<h2>Budget policy</h2>",
        _policy_html(report),
        "<h2>Timeline</h2>",
        f'<img alt="Spend per window and per rolling span" src="data:image/png;base64,{image}">',
        "<h2>Spend and budget left per window</h2>",
        _table([_window_row(w) for w in spend.as_dict()["windows"]], "No window was charged."),
        f"<p>{escape(rolling)}</p>",
        "<h2>Spend per indicator</h2>",
        _table([i.as_dict() for i in spend.indicators], "No release yet."),
        "<h2>Spend per data-sharing agreement</h2>",
        _table([a.as_dict() for a in v.agreement_spend], "No agreement is registered."),
        "<h2>Releases</h2>",
        _table([_entry_row(e) for e in v.snapshot.entries], "No release yet."),
        "<h2>Refused requests</h2>",
        _table(refusals, "No request was refused."),
        "<h2>Limitations of these checks</h2>",
        "<ul>" + "".join(f"<li>{escape(text)}</li>" for text in LIMITATIONS) + "</ul>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Privacy audit</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _window_row(w: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in w.items() if v is not None}
    over = w["epsilon_spent"] > w["epsilon_cap"] or w["delta_spent"] > w["delta_cap"]
    row["status"] = "OVER CAP" if over else "ok"
    return row
