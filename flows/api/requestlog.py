"""Every request logged as one JSON line, with the caller's token id, never the token.

Lines go to ``<workspace>/api/requests.jsonl`` and to the ``mobility.api`` logger: time, token id
(``null`` without a well-formed token), role, method, the route matched, the path, the *names* of
the query parameters, status and duration. The ``Authorization`` header is never read here.

What a caller typed is never logged on the strength of a pattern alone (a token can be
percent-encoded, twice, or cut): query values are never logged, and a path segment or query name
is logged only if it is a short plain identifier (:data:`_PLAIN`: indicator names, release ids,
formats), which no token (60 characters) nor its secret part (43) can be. Anything else is
replaced by ``"[not logged]"``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.middleware.base import BaseHTTPMiddleware

from flows.api.tokens import API_DIR

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.middleware.base import RequestResponseEndpoint
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp

LOG_FILE = "requests.jsonl"
NOT_LOGGED = "[not logged]"
logger = logging.getLogger("mobility.api")

_PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,40}")
"""What a path segment or a query name must be to be logged as typed."""


def _plain(text: str) -> str:
    return text if _PLAIN.fullmatch(text) else NOT_LOGGED


def loggable_path(path: str) -> str:
    """``path`` with every segment that is not a short plain identifier replaced."""
    return "/".join(_plain(part) if part else part for part in path.split("/"))


def loggable_query(query: str) -> list[str]:
    """The names of the query parameters (never their values), unplain names replaced."""
    return sorted({_plain(name) for name, _ in parse_qsl(query, keep_blank_values=True)})


class RequestLog(BaseHTTPMiddleware):
    """Appends one line per request to the workspace's request log."""

    def __init__(self, app: ASGIApp, workspace_root: Path) -> None:
        super().__init__(app)
        self.path = workspace_root / API_DIR / LOG_FILE
        self._lock = threading.Lock()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Time the request, then log who asked what and how it ended."""
        started = time.perf_counter()
        code = 500
        try:
            response = await call_next(request)
            code = response.status_code
            return response
        finally:
            self.write(request, code, time.perf_counter() - started)

    def write(self, request: Request, code: int, seconds: float) -> None:
        """Append the line of one request."""
        route = request.scope.get("route")
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "token_id": getattr(request.state, "token_id", None),
            "role": getattr(request.state, "role", None),
            "method": request.method,
            "route": getattr(route, "path", None),
            "path": loggable_path(request.url.path),
            "query_names": loggable_query(request.url.query),
            "status": code,
            "ms": round(seconds * 1000, 1),
            "client": request.client.host if request.client else None,
        }
        line = json.dumps(entry, sort_keys=True)
        logger.info(line)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
