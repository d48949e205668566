"""``mobility api`` (the HTTP API) and ``mobility token`` (its tokens)."""

from __future__ import annotations

from pathlib import Path

import click

from flows.api.tokens import ROLES, TokenStore
from flows.cli._common import JSON_OPTION, emit_json
from schemas.workspace import Workspace

_WORKSPACE = click.option(
    "--workspace", type=click.Path(path_type=Path, file_okay=False), envvar="MOBILITY_WORKSPACE",
    required=True, help="The workspace (env: MOBILITY_WORKSPACE).",
)  # fmt: skip


@click.command()
@_WORKSPACE
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (use 0.0.0.0 only behind a TLS proxy).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port.")  # fmt: skip
def api(*, workspace: Path, host: str, port: int) -> None:
    """Serve released data, exports, charts and the ledger over HTTP (FastAPI).

    Every request needs a token (`mobility token create`); each is logged with its token id in
    WORKSPACE/api/requests.jsonl. The OpenAPI document is at /openapi.json. To let operators
    request releases, start it with the pseudonymisation secret in the environment.
    """
    import uvicorn  # noqa: PLC0415 - slow import, needed only here

    from flows.api import create_app  # noqa: PLC0415 - FastAPI is slow to import

    app = create_app(workspace)
    click.echo(f"Serving {Workspace.open(workspace).root} on http://{host}:{port}", err=True)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")


@click.group()
def token() -> None:
    """Create, list and revoke API tokens (stored hashed in WORKSPACE/api/tokens.json)."""


@token.command("create")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="analyst: data and exports; auditor: ledger; operator: may also release.",
)
@click.option("--label", default="", help="Who or what the token is for (shown in listings).")
@click.option("--agreement", "agreements", multiple=True, metavar="ID",
              help="Bind the token to a data-sharing agreement (repeatable): it sees only the "
                   "releases made under its agreements.")  # fmt: skip
@_WORKSPACE
@JSON_OPTION
def create(
    *, role: str, label: str, agreements: tuple[str, ...], workspace: Path, as_json: bool
) -> None:
    """Create a token for ROLE. It is printed once and cannot be shown again."""
    store = TokenStore(Workspace.open(workspace).root)
    record, secret = store.create(role, label, agreements)
    if as_json:
        emit_json({**record.public(), "token": secret})
        return
    click.echo(secret)
    click.echo(
        f"token id {record.token_id} ({record.role}) created; keep the token secret, it is "
        f"shown only now. Revoke it with `mobility token revoke {record.token_id}`.",
        err=True,
    )


@token.command("list")
@_WORKSPACE
@JSON_OPTION
def list_tokens(*, workspace: Path, as_json: bool) -> None:
    """List tokens (ids, roles, labels, dates; never the tokens)."""
    records = TokenStore(Workspace.open(workspace).root).records()
    if as_json:
        emit_json({"tokens": [r.public() for r in records]})
        return
    for r in records:
        state = f"revoked {r.revoked_at}" if r.revoked_at else "active"
        bound = f"  agreements: {', '.join(r.agreements)}" if r.agreements else ""
        click.echo(
            f"{r.token_id}  {r.role:<8}  {state:<30}  created {r.created_at}  {r.label}{bound}"
        )


@token.command("revoke")
@click.argument("token_id")
@_WORKSPACE
def revoke(*, token_id: str, workspace: Path) -> None:
    """Revoke the token TOKEN_ID; requests with it get 401 from now on."""
    record = TokenStore(Workspace.open(workspace).root).revoke(token_id)
    click.echo(f"token {record.token_id} ({record.role}) revoked at {record.revoked_at}")
