"""What each route documents it may answer: error bodies, statuses and media types.

The OpenAPI document is generated from these, so a client generated from it handles every answer
the server gives: ``{"detail": ...}`` for every error, plus ``errors`` on a 422 and
``release_command`` on a 404 for data never released (:mod:`flows.api.errors` builds them).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """An error: what was wrong and how to fix it."""

    detail: str = Field(description="What was wrong and how to fix it.")


class ProblemItem(BaseModel):
    """One bad parameter."""

    loc: list[str | int] = Field(description="Where: 'query', 'path' or 'body', then its name.")
    msg: str = Field(description="What is wrong with it and what is accepted.")


class ValidationErrorBody(ErrorBody):
    """422: bad parameters, one sentence per problem in ``detail`` and one item in ``errors``."""

    errors: list[ProblemItem]


class NotFoundBody(ErrorBody):
    """404: no such release, or data never released (then with the commands that would)."""

    release_command: list[str] | None = Field(
        None, description="For data never released: the `mobility release` commands that would."
    )


_ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    400: (ErrorBody, "The request body is not JSON."),
    401: (ErrorBody, "Token missing, malformed, unknown or revoked."),
    403: (ErrorBody, "The token's role may not do this."),
    404: (NotFoundBody, "No such release, or data never released (with the command that would)."),
    409: (ErrorBody, "Refused (budget exceeded, or days not staged); nothing charged or written."),
    422: (ValidationErrorBody, "Bad parameters; the message says what is accepted."),
    500: (ErrorBody, "A release file changed after publication: the operator must check it."),
    503: (ErrorBody, "The server has no pseudonymisation secret and cannot release."),
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may answer ``codes``, and 401/403 (every route with a
    token), each with its body schema."""
    return {
        code: {"model": _ERRORS[code][0], "description": _ERRORS[code][1]}
        for code in sorted({401, 403, *codes})
    }


def files(media_types: dict[str, str], description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a route answering a file in one of ``media_types`` (name -> media type)."""
    content: dict[str, dict[str, Any]] = {}
    for media in media_types.values():
        if media == "application/json":  # a release's rows
            schema: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
        elif media.endswith("+json"):  # GeoJSON: one FeatureCollection
            schema = {"type": "object", "description": "An RFC 7946 FeatureCollection."}
        else:
            schema = {"type": "string", "format": "binary"}
        content[media] = {"schema": schema}
    return {200: {"description": description, "content": content}}
