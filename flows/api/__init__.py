"""The HTTP API (FastAPI) for analysts, auditors and operators: ``mobility api``.

Modules:
    app            -- :func:`create_app`: the application of one workspace.
    tokens         -- :class:`TokenStore`: tokens created/revoked on the CLI, stored hashed.
    security       -- bearer authentication and the permissions of each role.
    requestlog     -- one JSON line per request with its token id, never the token.
    routes_data    -- indicators, releases, release files, exports, charts.
    routes_ledger  -- the ledger summary and entries; operators' new releases.
    responses      -- error bodies, statuses and media types each route documents.
    bodies         -- the bodies of successful answers (listings, metadata).
    params         -- shared query parameters.
    errors         -- error statuses (401/403/404/409/422/503) and their JSON shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    """Import FastAPI only when the app is asked for (``mobility token`` does not need it)."""
    if name == "create_app":
        from flows.api.app import create_app  # noqa: PLC0415 - lazy on purpose

        return create_app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
