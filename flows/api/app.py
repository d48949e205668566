"""The FastAPI application of one workspace (:func:`create_app`)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from fastapi_offline import FastAPIOffline

from flows.api import errors
from flows.api.requestlog import RequestLog
from flows.api.routes_data import router as data_router
from flows.api.routes_ledger import router as ledger_router
from schemas.workspace import Workspace

if TYPE_CHECKING:
    from pathlib import Path

    from fastapi import FastAPI

DESCRIPTION = """
Released mobility indicators for public-sector users, and the privacy ledger behind them.

Every request but `/health` and this document needs `Authorization: Bearer <token>`; tokens are
created with `mobility token create --role analyst|auditor|operator --workspace DIR` and revoked
with `mobility token revoke ID`. Roles: **analyst** (releases, exports, charts), **auditor**
(releases, ledger), **operator** (all of it, and `POST /v1/releases`). Once data-sharing
agreements are registered, analyst and operator tokens are bound to agreements (`mobility token
create --agreement ID`): they see only the releases made under their agreements, and an operator
releases only under them.

Exports and charts are assembled from release files only: they spend no privacy budget and draw no
noise. Errors are `{"detail": "..."}`: 401 token missing or wrong, 403 role not allowed, 404
unknown release or data never released (with `release_command`, the `mobility release` command
that would release it), 409 release refused by the budget or by its data-sharing agreement (the
rule that refused is named), 422 bad parameters (says what is
accepted; `errors` lists each bad parameter), 503 server cannot release (no secret). Days are
`YYYY-MM-DD`. Swagger UI (`/docs`) and ReDoc (`/redoc`) are served from this server: they work
on a closed network.
"""


def _version() -> str:
    try:
        return version("mobility-dp")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unpackaged"


def create_app(workspace_root: Path | str) -> FastAPI:
    """The API serving the workspace at ``workspace_root`` (checked now: exit early if wrong)."""
    root = Workspace.open(workspace_root).root
    # Swagger UI and ReDoc assets come from the fastapi-offline package: no CDN on closed networks.
    app = FastAPIOffline(
        title="mobility-dp API",
        version=_version(),
        description=DESCRIPTION,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
    )
    app.state.workspace_root = root
    app.add_middleware(RequestLog, workspace_root=root)
    errors.install(app)

    @app.get("/health", summary="Liveness (no token needed)", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(data_router, tags=["released data"])
    app.include_router(ledger_router, tags=["ledger and releases"])
    return app
