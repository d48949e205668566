"""``mobility agreement``: register data-sharing agreements in the ledger, list and show them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aggregation.audit.agreements import spend_per_agreement
from aggregation.ledger.agreements import agreement_of
from aggregation.release import open_context
from flows.cli._common import JSON_OPTION, emit_json
from schemas.agreement import AGREEMENT_JSON_SCHEMA, load_agreement
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from aggregation.ledger import AgreementRecord

_WORKSPACE = click.option(
    "--workspace", type=click.Path(path_type=Path, file_okay=False), envvar="MOBILITY_WORKSPACE",
    required=True, help="The workspace (env: MOBILITY_WORKSPACE).",
)  # fmt: skip


@click.group()
def agreement() -> None:
    """Register data-sharing agreements in the ledger (hash-chained), list and show them.

    \b
    add FILE   register an agreement file (TOML), or a new version of one
    list       every agreement: version in force, term, spend against its budget
    show ID    one agreement's terms (the version in force, or --version N)
    schema     the JSON Schema an agreement file is checked against
    """


def _record_doc(record: AgreementRecord) -> dict[str, Any]:
    return {
        **dict(record.agreement),
        "ledger": {"seq": record.seq, "record_hash": record.record_hash,
                   "recorded_at": record.recorded_at.isoformat(timespec="seconds")},
    }  # fmt: skip


@agreement.command("add")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_WORKSPACE
@JSON_OPTION
def add(*, file: Path, workspace: Path, as_json: bool) -> None:
    """Register the agreement FILE (TOML) as a chained ledger record.

    Registering the same id and version again with the same terms does nothing; an amendment is
    registered as a higher version, which is in force from then on.
    """
    parsed = load_agreement(file)
    ctx = open_context(workspace, need_secret=False)
    record, new = ctx.ledger.register_agreement(parsed)
    if as_json:
        emit_json({**_record_doc(record), "registered": new})
        return
    state = "registered" if new else "already registered (nothing changed)"
    click.echo(
        f"agreement {parsed.label} {state}: ledger seq {record.seq}, record hash "
        f"{record.record_hash}"
    )


@agreement.command("list")
@_WORKSPACE
@JSON_OPTION
def list_agreements(*, workspace: Path, as_json: bool) -> None:
    """List every agreement: the version in force, its term, and its spend against its budget."""
    ledger = open_context(workspace, need_secret=False).ledger
    spends = spend_per_agreement(ledger.agreements(), ledger.entries())
    if as_json:
        emit_json({"agreements": [s.as_dict() for s in spends]})
        return
    if not spends:
        click.echo("No agreement registered (register one with `mobility agreement add FILE`).")
    for s in spends:
        a = agreement_of(s.record)
        click.echo(
            f"{a.agreement_id}  v{a.version}  {a.start}..{a.end}  {s.releases} release(s)  "
            f"ε {s.epsilon_term:g} of {a.epsilon_term:g} over the term  "
            f"[{', '.join(a.indicators)}]"
        )


@agreement.command("show")
@click.argument("agreement_id")
@click.option("--version", "version", type=int, default=None,
              help="A registered version [default: the one in force].")  # fmt: skip
@_WORKSPACE
def show(*, agreement_id: str, version: int | None, workspace: Path) -> None:
    """Show the terms of agreement AGREEMENT_ID as registered (JSON), with its ledger record."""
    records = open_context(workspace, need_secret=False).ledger.agreements()
    versions = [r for r in records if r.agreement_id == agreement_id]
    if version is not None:
        versions = [r for r in versions if r.version == version]
    if not versions:
        known = sorted({f"{r.agreement_id} v{r.version}" for r in records}) or ["none"]
        msg = f"No agreement {agreement_id!r}" + (f" version {version}" if version else "")
        raise ConfigurationError(f"{msg} is registered; registered: {', '.join(known)}.")
    click.echo(json.dumps(_record_doc(versions[-1]), indent=2, sort_keys=True))


@agreement.command("schema")
def schema() -> None:
    """Print the JSON Schema of an agreement file (its TOML read as JSON, dates as strings)."""
    click.echo(json.dumps(AGREEMENT_JSON_SCHEMA, indent=2))
