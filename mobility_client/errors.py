"""One exception class per error status of the API, each carrying the server's message.

Every error body is ``{"detail": "<what was wrong and how to fix it>"}``; a 422 adds ``errors``
(one item per bad parameter) and a 404 for data never released adds ``release_command`` (the
``mobility release`` commands that would release it, for the data holder to decide).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer of the API: its status, the server's message and the whole body."""

    status = 0

    def __init__(self, status: int, detail: str, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.body = body


class UnauthorizedError(ApiError):
    """401: the token is missing, malformed, unknown or revoked; ask an operator for one."""


class ForbiddenError(ApiError):
    """403: the token's role may not do this (the message names the roles that may)."""


class NotFoundError(ApiError):
    """404: no such release, or data never released."""

    @property
    def release_command(self) -> list[str]:
        """For data never released: the commands that would release it (empty otherwise)."""
        commands = self.body.get("release_command") or []
        return [str(c) for c in commands]


class BudgetRefusedError(ApiError):
    """409: a release was refused by the privacy budget; nothing was charged or published."""


class InvalidRequestError(ApiError):
    """422: bad parameters; :attr:`problems` lists each, with what is accepted."""

    @property
    def problems(self) -> list[str]:
        """One ``"<where>: <what is wrong>"`` per bad parameter."""
        return [
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg', '')}"
            for e in self.body.get("errors", [])
        ]


class ServiceUnavailableError(ApiError):
    """503: the server cannot release (it was started without the pseudonymisation secret)."""


class ServerError(ApiError):
    """Any other error status (a 5xx is a problem for the operator, not the request)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: BudgetRefusedError,
    422: InvalidRequestError,
    503: ServiceUnavailableError,
}


def error_for(status: int, body: dict[str, Any] | None, text: str) -> ApiError:
    """The exception for an error answer (``body`` is its JSON, if it was JSON)."""
    body = body or {}
    detail = body.get("detail")
    message = detail if isinstance(detail, str) else (text.strip() or f"HTTP {status}")
    return _BY_STATUS.get(status, ServerError)(status, message, body)
