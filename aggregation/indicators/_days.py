"""The periods of a request's scope, checked present (the request validated them already)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.errors import InternalError

if TYPE_CHECKING:
    from aggregation.indicators.request import AggregateRequest
    from schemas.indicators import Period


def _need(request: AggregateRequest, name: str, period: Period | None) -> Period:
    if period is None:
        msg = f"{request.indicator}: scope.{name} is missing after validation."
        raise InternalError(msg)
    return period


def release_days(request: AggregateRequest) -> Period:
    """The release days of a daily indicator."""
    return _need(request, "days", request.scope.days)


def home_period(request: AggregateRequest) -> Period:
    """The period home zones are computed over."""
    return _need(request, "home_period", request.scope.home_period)


def previous_home_period(request: AggregateRequest) -> Period:
    """The earlier home period of ``relocations``."""
    return _need(request, "previous_home_period", request.scope.previous_home_period)
