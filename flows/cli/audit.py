"""``mobility audit``: verify the privacy ledger, report the spend, test a release's noise.

Single-shot commands over :mod:`aggregation.audit`; they read the ledger with its shared lock
only, so they run on a copy of a workspace and while a flow is releasing. Exit status: 0 when
every check holds, 1 with the list of what failed and where, 2 for bad usage or configuration.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from aggregation.audit import (
    DEFAULT_ALPHA,
    audit_noise,
    build_report,
    verify_workspace,
    write_report,
)
from aggregation.audit.noise import CONFIDENTIAL
from aggregation.audit.report import units_released
from flows.cli._common import JSON_OPTION, emit_json

if TYPE_CHECKING:
    from aggregation.audit import NoiseAudit, VerifyReport

WORKSPACE_OPTION = click.option(
    "--workspace",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    envvar="MOBILITY_WORKSPACE",
    required=True,
    help="The workspace, or a copy of it (env: MOBILITY_WORKSPACE).",
)
EXPECT_HEAD_OPTION = click.option(
    "--expect-head",
    metavar="HASH",
    default=None,
    help="A ledger head hash noted at an earlier audit (12+ hex digits): fail unless the ledger "
    "still holds it (detects a ledger cut short or rewritten).",
)


@click.group()
def audit() -> None:
    """Check, without trusting the pipeline, that every published number was paid for.

    \b
    verify  ledger chain, published files, costs recomputed with OpenDP, caps
    report  spend per window and indicator, refusals, timeline PNG, HTML report
    noise   one release's noise against its declaration (needs staged data + secret)
    """


def _verify_text(report: VerifyReport) -> str:
    doc = report.as_dict()
    policy = report.policy
    lines = [
        (
            f"Audit of {report.workspace}: {doc['entries']} ledger entries ({doc['published']} "
            f"published, {doc['pending']} pending), {doc['files_checked']} published files, "
            f"{doc['refusals']} refusal(s)"
        ),
        (
            "  checked: hash chain, published files and metadata, costs recomputed with OpenDP, "
            "sensitivities, caps "
            f"({policy.composition} composition: ε <= {policy.epsilon_per_window:g} and "
            f"δ <= {policy.delta_per_window:g} per window, ε <= {policy.epsilon_rolling:g} per "
            f"{policy.rolling_days} days), refusals"
        ),
    ]
    head = report.snapshot.head
    if head is not None:
        lines.append(
            f"  ledger head: seq {head.seq} ({head.kind}) hash {head.record_hash}; note it "
            "outside the workspace and pass --expect-head next time"
        )
    for spend in report.agreement_spend:
        a = spend.as_dict()
        lines.append(
            f"  agreement {a['agreement']} v{a['version']}: {a['releases']} release(s), ε "
            f"{a['epsilon_term_spent']:g} of {a['epsilon_term_budget']:g} over its term, "
            f"busiest window {a['busiest_window'] or '-'} ε {a['epsilon_busiest_window']:g} of "
            f"{a['epsilon_per_window_budget']:g}"
        )
    lines += [f.line() for f in (*report.failures, *report.warnings)]
    verdict = (
        "all checks hold"
        if report.passed
        else f"{len(report.failures)} check(s) FAILED (listed above)"
    )
    lines.append(f"Result: {verdict}.")
    return "\n".join(lines)


@audit.command()
@WORKSPACE_OPTION
@EXPECT_HEAD_OPTION
@JSON_OPTION
def verify(workspace: Path, expect_head: str | None, as_json: bool) -> None:
    """Verify the ledger and every published file of the workspace.

    Exit 0 when the chain, the published files, the recomputed costs and every window's and
    rolling span's caps all hold; otherwise 1, listing each failure and where it is.
    """
    report = verify_workspace(workspace, expected_head=expect_head)
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(_verify_text(report))
    if not report.passed:
        sys.exit(1)


@audit.command()
@WORKSPACE_OPTION
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory for report.html, timeline.png and report.json "
    "[default: WORKSPACE/reports/audit-<UTC time>].",
)
@EXPECT_HEAD_OPTION
@JSON_OPTION
def report(workspace: Path, out: Path | None, expect_head: str | None, as_json: bool) -> None:
    """Write the budget report: spend and budget left, refusals, a timeline and the findings.

    The HTML file is self-contained (the timeline is embedded): open it in a browser and file
    it. Exit 1 when a verification check fails (the report is written all the same).
    """
    built = build_report(workspace, expected_head=expect_head)
    stamp = built.generated_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out if out is not None else built.verification.workspace / "reports" / f"audit-{stamp}"
    files = write_report(built, target)
    if as_json:
        emit_json({**built.as_dict(), "files": {k: str(v) for k, v in vars(files).items()}})
    else:
        spend = built.spend
        lines = [_verify_text(built.verification), "Spend per window:"]
        lines += [
            f"  {w.window}: {w.releases} release(s), ε {w.epsilon_spent:g} of "
            f"{w.epsilon_cap:g} (left {w.epsilon_left:g}), δ {w.delta_spent:g}"
            for w in spend.windows
        ]
        lines.append("Spend per indicator (ε summed over the windows each release read):")
        lines += [
            f"  {i.indicator}: {i.releases} release(s) over {i.windows} window(s), ε {i.epsilon:g}"
            for i in spend.indicators
        ]
        units = units_released(built.verification.snapshot.entries)
        lines.append(
            "Releases per privacy unit: "
            + (", ".join(f"{n} per {unit}" for unit, n in units.items()) or "none")
            + " (CDR and GPS releases are charged to the same windows and caps)"
        )
        lines.append(f"Refused requests: {len(spend.refusals)}")
        lines.append(f"Report: {files.html} (also {files.png.name}, {files.json.name})")
        click.echo("\n".join(lines))
    if not built.verification.passed:
        sys.exit(1)


def _noise_text(result: NoiseAudit) -> str:
    shown = result.candidates_shown
    of = f" of {shown} candidate cells" if shown is not None else ""
    lines = [
        CONFIDENTIAL,
        (
            f"Release {result.release_id} ({result.indicator}, {result.value_column}): "
            f"{result.mechanism} scale {result.declared_scale:g}, {result.keys} keys, "
            f"threshold {result.threshold}; {result.cells_released} cells released{of}"
        ),
        f"Verdict: {result.verdict.upper()}. {result.summary()}",
    ]
    lines += [f"  problem: {p}" for p in result.problems]
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)


@audit.command()
@click.argument("release_id")
@WORKSPACE_OPTION
@click.option(
    "--alpha",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=DEFAULT_ALPHA,
    show_default=True,
    help="False-alarm rate: the chance that an honest release fails.",
)
@JSON_OPTION
def noise(release_id: str, workspace: Path, alpha: float, as_json: bool) -> None:
    """Test the noise of RELEASE_ID against the distribution it declares.

    Recomputes the release's exact bounded aggregates from the staged data (needs the workspace
    secret, as for releasing) and tests released - exact, accounting for suppression. Exit 0
    when the noise fits (or the test is inconclusive: too few cells), 1 when it does not.
    """
    result = audit_noise(workspace, release_id, alpha=alpha)
    if as_json:
        emit_json({**result.as_dict(), "checked_at": datetime.now(UTC).isoformat()})
    else:
        click.echo(_noise_text(result))
    if not result.passed:
        sys.exit(1)
