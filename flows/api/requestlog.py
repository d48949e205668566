"""Every request logged as one JSON line, with the caller's token id, never the token.

Lines go to ``<workspace>/api/requests.jsonl`` and to the ``mobility.api`` logger: time, token id
(``null`` without a well-formed token), role, method, path, query (any token-shaped text in it is
redacted), status and duration. The ``Authorization`` header is never read here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.middleware.base import BaseHTTPMiddleware

from flows.api.tokens import API_DIR, looks_like_token

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.middleware.base import RequestResponseEndpoint
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp

LOG_FILE = "requests.jsonl"
logger = logging.getLogger("mobility.api")


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
        query = request.url.query
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "token_id": getattr(request.state, "token_id", None),
            "role": getattr(request.state, "role", None),
            "method": request.method,
            "path": request.url.path,
            "query": "[redacted: contained a token]" if looks_like_token(query) else query,
            "status": code,
            "ms": round(seconds * 1000, 1),
            "client": request.client.host if request.client else None,
        }
        if looks_like_token(entry["path"]):
            entry["path"] = "[redacted: contained a token]"
        line = json.dumps(entry, sort_keys=True)
        logger.info(line)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
