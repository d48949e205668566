"""Build the transparency document from the ledger, and write it as a static site.

What it shows, for each data-sharing agreement (version in force, and its earlier versions):
the parties, the purpose, the term, what may be released (indicators, levels, sources, the
minimum k), the retention of released files, the budget, every release made under it (indicator,
value column, period, level, ε, δ, k, cells released, when) and the budget used against the
agreement's budget (per accounting window and over the term, as inline SVG charts). Then the
methods in plain words and the ledger head, which an outsider can note and compare with later
pages: records are only ever appended, so a later page's ledger must still hold it
(``mobility audit verify --expect-head``).

What it never shows: a released value (no data file is read), a refusal, a token, a staged file.
Everything it shows is in the metadata that recipients of the releases already get.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aggregation.ledger.agreements import agreement_of, latest, named_in, spend_of
from aggregation.transparency.charts import term_bar_svg, window_chart_svg

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.ledger import AgreementRecord, LedgerEntry
    from aggregation.release import ReleaseContext

PAGE = "index.html"
DOCUMENT = "transparency.json"


def _period(entry: LedgerEntry) -> dict[str, str]:
    """The days released (or the home period counted), from the entry's parameters."""
    value = entry.parameters.get("days") or entry.parameters.get("home_period")
    first, _, last = str(value).partition("..")
    return {"start": first, "end": last or first}


def _release(entry: LedgerEntry) -> dict[str, Any]:
    named = named_in(entry.parameters)
    return {
        "release_id": entry.entry_id,
        "indicator": entry.indicator,
        "value_column": entry.parameters.get("value"),
        "period": _period(entry),
        "level": entry.parameters.get("level"),
        "source": entry.parameters.get("source", "cdr"),
        "agreement_version": named[1] if named else None,
        "epsilon": entry.epsilon,
        "delta": entry.delta,
        "k": entry.k_threshold,
        "cells_released": entry.cells_released,
        "published_at": (
            entry.published_at.isoformat(timespec="seconds") if entry.published_at else None
        ),
    }


def _agreement(record: AgreementRecord, versions: list[AgreementRecord],
               entries: list[LedgerEntry], window: str) -> dict[str, Any]:  # fmt: skip
    a = agreement_of(record)
    mine = [e for e in entries if (named_in(e.parameters) or ("",))[0] == a.agreement_id]
    spend = spend_of(a.agreement_id, mine)
    return {
        **a.as_dict(),
        "ledger": {"seq": record.seq, "record_hash": record.record_hash,
                   "recorded_at": record.recorded_at.isoformat(timespec="seconds")},
        "versions": [
            {"version": v.version, "seq": v.seq, "record_hash": v.record_hash,
             "recorded_at": v.recorded_at.isoformat(timespec="seconds")}
            for v in versions
        ],
        "released": [_release(e) for e in mine if e.status == "published"],
        "spend": {
            "accounting_window": window,
            "releases_charged": spend.releases,
            "epsilon_term": spend.epsilon_term,
            "delta_term": spend.delta_term,
            "by_window": [
                {"window": str(w), "epsilon": eps, "delta": spend.delta_by_window[w]}
                for w, eps in spend.epsilon_by_window.items()
            ],
        },
    }  # fmt: skip


def build_transparency(ctx: ReleaseContext) -> dict[str, Any]:
    """The transparency document of the workspace of ``ctx``, from its ledger alone."""
    ledger = ctx.ledger
    records, entries = ledger.agreements(), ledger.entries()
    policy = ctx.policy
    head = ledger.head()
    first: dict[str, int] = {}
    for r in records:
        first.setdefault(r.agreement_id, r.seq)
    agreements = [  # in the order they were first registered
        _agreement(record, [r for r in records if r.agreement_id == agreement_id], entries,
                   policy.accounting_window)
        for agreement_id, record in sorted(latest(records).items(), key=lambda kv: first[kv[0]])
    ]  # fmt: skip
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ledger_head": None if head is None else {
            "seq": head.seq, "record": head.kind, "hash": head.record_hash,
        },
        "privacy_unit": (
            f"one subscriber's (or device's) records within one {policy.accounting_window}"
        ),
        "workspace_budget": {
            "composition": policy.composition,
            "accounting_window": policy.accounting_window,
            "epsilon_per_window": policy.epsilon_per_window,
            "delta_per_window": policy.delta_per_window,
        },
        "agreements": agreements,
        "releases_without_agreement": sum(
            1 for e in entries if e.status == "published" and named_in(e.parameters) is None
        ),
    }  # fmt: skip


@dataclass(frozen=True)
class Site:
    """The files written: the page and the JSON document."""

    page: Path
    document: Path


def write_site(document: dict[str, Any], out: Path) -> Site:
    """Write ``index.html`` and ``transparency.json`` into ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    page, doc = out / PAGE, out / DOCUMENT
    doc.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    page.write_text(render_page(document), encoding="utf-8")
    return Site(page, doc)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d2430; line-height: 1.5; }
h1, h2, h3 { line-height: 1.2; }
section.agreement { border-top: 3px solid #2f6690; margin-top: 2.5rem; padding-top: 0.5rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #d8dee6; padding: 0.25rem 0.5rem; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: 12rem 1fr; gap: 0.2rem 1rem; }
dt { font-weight: 600; }
code { font-size: 0.85rem; word-break: break-all; }
.note { color: #4a5565; font-size: 0.9rem; }
svg text { font-family: system-ui, sans-serif; font-size: 11px; fill: #1d2430; }
"""


def _methods(doc: dict[str, Any]) -> str:
    budget = doc["workspace_budget"]
    window = _e(budget["accounting_window"])
    return f"""
<section id="methods">
<h2>How the numbers are protected, in plain words</h2>
<p><strong>Differential privacy.</strong> Before any number is published, random noise is added
to it, drawn by the OpenDP library. The noise is sized so that the published results would have
been almost as likely if any one person's records — all of one phone's records within one
{window} — had been left out of the data altogether. ε (epsilon) measures that "almost": the
smaller it is, the less anyone can learn about whether you were in the data, or where you went,
from everything published. Each person's contribution is capped before counting (a few trips or
places a day), so the noise covers the most one person can change.</p>
<p><strong>The threshold k.</strong> A number (a count for one zone, or for one origin and
destination) is published only if its <em>noisy</em> value is at least k. Small counts are
dropped, and because the decision uses the noisy value, the choice of what is published reveals
nothing more about anyone.</p>
<p><strong>The budget.</strong> Every release spends some ε. The data holder keeps a ledger of
every release and refuses any release that would push the ε spent on any {window} of data above
the cap ({_num(budget["epsilon_per_window"])} per {window} in total, summed over every release
and every agreement). Each agreement has a budget of its own on top of that, shown below.
Asking the same question twice returns the same answer: no fresh noise, no second charge.</p>
<p><strong>What you can check.</strong> The ledger is a hash chain: each record seals every
record before it. Note the ledger head below; on a later page, an auditor can confirm that the
ledger still holds it, i.e. that nothing published before was removed or rewritten.</p>
</section>"""


def _releases_table(releases: list[dict[str, Any]]) -> str:
    if not releases:
        return "<p>Nothing has been released under this agreement yet.</p>"
    rows = "\n".join(
        f"<tr><td>{_e(r['indicator'])}</td><td>{_e(r['value_column'])}</td>"
        f"<td>{_e(r['period']['start'])} – {_e(r['period']['end'])}</td><td>{_e(r['level'])}</td>"
        f"<td>{_e(r['source'])}</td><td class='n'>{_num(r['epsilon'])}</td>"
        f"<td class='n'>{_num(r['delta'])}</td><td class='n'>{_e(r['k'])}</td>"
        f"<td class='n'>{_e(r['cells_released'])}</td><td>{_e(r['published_at'])}</td></tr>"
        for r in releases
    )
    return (
        "<table><thead><tr><th>indicator</th><th>value</th><th>period</th><th>level</th>"
        "<th>source</th><th class='n'>ε</th><th class='n'>δ</th><th class='n'>k</th>"
        "<th class='n'>cells released</th><th>published (UTC)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _agreement_section(a: dict[str, Any]) -> str:
    rel, bud, spend = a["releases"], a["budget"], a["spend"]
    data_days = (
        f"{_e(rel.get('data_from', 'any day'))} – {_e(rel.get('data_to', 'any day'))}"
        if "data_from" in rel or "data_to" in rel
        else "no limit besides the term"
    )
    versions = ", ".join(
        f"version {v['version']} (ledger seq {v['seq']}, registered {_e(v['recorded_at'])})"
        for v in a["versions"]
    )
    windows = spend["by_window"]
    return f"""
<section class="agreement" id="agreement-{_e(a["id"])}">
<h2>Agreement {_e(a["id"])}, version {a["version"]}</h2>
<p>{_e(a["purpose"])}</p>
<dl>
<dt>Parties</dt><dd>{"; ".join(_e(p) for p in a["parties"])}</dd>
<dt>Term</dt><dd>{_e(a["start"])} – {_e(a["end"])}</dd>
<dt>Indicators</dt><dd>{", ".join(_e(i) for i in rel["indicators"])}</dd>
<dt>Zone levels</dt><dd>{", ".join(_e(level) for level in rel["levels"])}</dd>
<dt>Data sources</dt><dd>{", ".join(_e(s) for s in rel["sources"])}</dd>
<dt>Days of data covered</dt><dd>{data_days}</dd>
<dt>Smallest threshold k</dt><dd>{_e(rel["min_k"])}</dd>
<dt>Recipients (roles)</dt><dd>{", ".join(_e(r) for r in a["recipients"]["roles"])}</dd>
<dt>Retention of released files</dt><dd>{_e(a["retention_days"])} days</dd>
<dt>Budget</dt><dd>ε {_num(bud["epsilon_per_window"])} per {_e(spend["accounting_window"])}
(δ {_num(bud["delta_per_window"])}); ε {_num(bud["epsilon_term"])} over the term
(δ {_num(bud["delta_term"])})</dd>
<dt>Versions registered</dt><dd>{versions}</dd>
<dt>Ledger record</dt><dd><code>{_e(a["ledger"]["record_hash"])}</code></dd>
</dl>
<h3>Budget used</h3>
{term_bar_svg(spend["epsilon_term"], bud["epsilon_term"])}
{
        window_chart_svg(
            [(w["window"], w["epsilon"]) for w in windows],
            bud["epsilon_per_window"],
            spend["accounting_window"],
        )
    }
<h3>Released under this agreement ({len(a["released"])})</h3>
{_releases_table(a["released"])}
</section>"""


def render_page(doc: dict[str, Any]) -> str:
    """The page: self-contained HTML (inline CSS and SVG; no script; nothing loaded)."""
    head = doc["ledger_head"]
    head_text = (
        "The ledger is empty."
        if head is None
        else f"Ledger head: record {head['seq']} ({_e(head['record'])}), hash "
        f"<code id='ledger-head'>{_e(head['hash'])}</code>."
    )
    sections = "\n".join(_agreement_section(a) for a in doc["agreements"]) or (
        "<p>No data-sharing agreement is registered.</p>"
    )
    others = doc["releases_without_agreement"]
    other_text = (
        f"<p class='note'>{others} release(s) were made under no agreement (before agreements "
        "were registered); they are not listed here.</p>"
        if others
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Data-sharing transparency</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Data-sharing transparency</h1>
<p>Which mobility statistics were shared, with whom, for what purpose, and at what privacy cost.
No released value is shown here. Page generated {_e(doc["generated_at"])} (UTC); the same
content for programs: <a href="transparency.json">transparency.json</a>.</p>
<p>{head_text}</p>
</header>
{sections}
{other_text}
{_methods(doc)}
</body>
</html>
"""  # noqa: E501 - one meta line
