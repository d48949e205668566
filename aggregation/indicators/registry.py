"""The registry: one line per indicator module.

Adding an indicator adds its module, a line here, and its :class:`~schemas.indicators.Indicator`
member with its row in :data:`schemas.indicators.SPECS` (what requests are validated against).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.indicators import (
    event_counts,
    home_away,
    mobility_distance,
    od_connections,
    od_trips,
    presence,
    relocations,
    residents,
)
from schemas.indicators import spec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aggregation.indicators.definition import IndicatorDefinition
    from aggregation.indicators.request import AggregateRequest
    from schemas.indicators import Indicator
    from schemas.privacy import AccountingWindow, Sensitivity

DEFINITIONS: Mapping[Indicator, IndicatorDefinition] = {
    m.DEFINITION.indicator: m.DEFINITION
    for m in (
        event_counts,
        presence,
        od_trips,
        od_connections,
        residents,
        home_away,
        mobility_distance,
        relocations,
    )
}


def definition(indicator: Indicator | str) -> IndicatorDefinition:
    """The definition of ``indicator`` (an unknown name is refused naming the known ones)."""
    return DEFINITIONS[spec(indicator).indicator]


def sensitivities(
    request: AggregateRequest, window: AccountingWindow = "day"
) -> dict[str, Sensitivity]:
    """Declared sensitivity of each value column of ``request``, per privacy unit of ``window``."""
    return definition(request.indicator).sensitivities(request.bounds, request.scope, window)
