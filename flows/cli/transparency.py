"""``mobility transparency``: the public page of what was shared, under which agreement."""

from __future__ import annotations

from pathlib import Path

import click

from aggregation.release import open_context
from aggregation.transparency.page import build_transparency, write_site
from flows.cli._common import JSON_OPTION, emit_json


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory to write index.html and transparency.json into.",
)
@click.option(
    "--workspace",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="MOBILITY_WORKSPACE",
    required=True,
    help="The workspace (env: MOBILITY_WORKSPACE).",
)
@JSON_OPTION
def transparency(*, out: Path, workspace: Path, as_json: bool) -> None:  # fmt: skip
    """Write the public transparency page: agreements, what was released under them, budgets.

    A static, self-contained site (index.html with inline charts, and transparency.json) that
    loads nothing from the network and shows no released value: for each data-sharing agreement
    its parties, purpose, term and terms, every release made under it (indicator, period,
    level, ε, k, cells released), the budget used against its budget, the methods in plain
    words, and the ledger head hash, which readers can compare with later pages.
    """
    document = build_transparency(open_context(workspace, need_secret=False))
    site = write_site(document, out)
    if as_json:
        emit_json({"page": str(site.page), "document": str(site.document),
                   "ledger_head": document["ledger_head"]})  # fmt: skip
        return
    head = document["ledger_head"]
    click.echo(f"Transparency page: {site.page} (and {site.document.name})")
    if head is not None:
        click.echo(f"  ledger head: seq {head['seq']} hash {head['hash']}")
