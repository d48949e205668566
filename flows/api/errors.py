"""Error responses: one JSON shape, ``{"detail": message, ...}``, with the status documented.

=====  ==========================================================================================
401    missing, malformed, unknown or revoked token
403    the token's role may not do this
404    unknown release, or data never released (with ``release_command``, the CLI that would)
409    a requested release was refused: by the privacy budget (the ledger's message), or because
       the workspace cannot answer it (days not staged)
400    a request body that is not JSON
405    a method the path does not have (``Allow`` names every one it has)
422    bad parameters; the message says what is accepted
500    a failure the operator must fix (e.g. a release file changed after publication)
503    the server cannot release: it was started without the pseudonymisation secret
=====  ==========================================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import Match

from aggregation.export import NotReleasedError
from schemas.errors import BudgetExceededError, ConfigurationError, MobilityError

if TYPE_CHECKING:
    from fastapi import FastAPI, Request


def _where(loc: tuple[object, ...] | list[object]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "body", "header"):
        kind = {"query": "query parameter", "path": "path parameter", "body": "body field",
                "header": "header"}[parts[0]]  # fmt: skip
        return f"{kind} {'.'.join(parts[1:]) or '(whole body)'!r}"
    return ".".join(parts)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with one readable sentence per problem (pydantic names the accepted values)."""
    del request
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = [f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
    return JSONResponse(
        {"detail": "Bad parameters: " + "; ".join(problems) + ".",
         "errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )  # fmt: skip


def _parameters_of(request: Request) -> str:
    """Where a request's parameters are: the body of a POST, the query string otherwise."""
    return "body" if request.method == "POST" else "query"


async def mobility_error(request: Request, exc: Exception) -> JSONResponse:
    """Map the project's errors onto statuses (see the module docstring)."""
    if isinstance(exc, NotReleasedError):
        return JSONResponse(
            {"detail": str(exc), "release_command": exc.commands},
            status_code=status.HTTP_404_NOT_FOUND,
        )
    if isinstance(exc, BudgetExceededError):
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)
    if isinstance(exc, ConfigurationError):  # same shape as a validation error: one problem
        return JSONResponse(
            {"detail": str(exc), "errors": [{"loc": [_parameters_of(request)], "msg": str(exc)}]},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 naming, in ``Allow``, every method of every route at this path (not only the first's)."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    del exc
    msg = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}."
    return JSONResponse(
        {"detail": msg},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": ", ".join(allowed)},
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, method_not_allowed)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(MobilityError, mobility_error)
