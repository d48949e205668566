"""A small Python client for the mobility-dp HTTP API, for analysts working in notebooks.

    from mobility_client import Client

    with Client("http://127.0.0.1:8000", token) as api:
        trips = api.export("od_trips", "2026-03-02", "2026-03-08", zones=["NL01"])
        trips.data            # a Polars DataFrame (trips.to_pandas() with pandas installed)
        trips.releases[0].epsilon, trips.releases[0].k, trips.releases[0].ci95_half_width

Modules:
    client  -- :class:`Client`: indicators, releases, release data and exports.
    models  -- what the API answers, as frozen dataclasses (:class:`Release`, :class:`Privacy`...).
    errors  -- one exception class per error status (401, 403, 404, 409, 422, 503), with the
               server's message.

It depends on httpx and Polars only, and on nothing else of this repository: the server's
contract is its OpenAPI document (``/openapi.json``).
"""

from mobility_client.client import Client
from mobility_client.errors import (
    ApiError,
    BudgetRefusedError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from mobility_client.models import Export, IndicatorInfo, Privacy, Release, ReleaseDetails

__all__ = [
    "ApiError",
    "BudgetRefusedError",
    "Client",
    "Export",
    "ForbiddenError",
    "IndicatorInfo",
    "InvalidRequestError",
    "NotFoundError",
    "Privacy",
    "Release",
    "ReleaseDetails",
    "ServerError",
    "ServiceUnavailableError",
    "UnauthorizedError",
]
