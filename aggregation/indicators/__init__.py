"""Every indicator: one module each, holding its whole definition, and what runs them.

An indicator's module (``od_trips.py`` …) says what it counts and from which records, why its
bounds have their defaults, its per-unit bound and the sensitivity derived from it, and the SQL
of each unit's contribution; it ends in one :class:`IndicatorDefinition`. Its
:class:`~schemas.indicators.IndicatorSpec` row (key set, value columns, scope, bounds used,
sources) is in :mod:`schemas.indicators`, where requests are validated. No noise is added here.

Modules:
    event_counts, presence, od_trips, od_connections, residents, home_away, mobility_distance,
    relocations -- one per indicator.
    registry   -- :data:`DEFINITIONS`: one line per indicator module; :func:`definition`.
    definition -- :class:`IndicatorDefinition`; the neighbouring relation and how a declared
                  sensitivity follows from a per-unit bound (day-local or home-based).
    request    -- :class:`AggregateRequest`: indicator, staged source, zones, scope, bounds.
    aggregate  -- :func:`exact_aggregate` and :func:`bounded_contributions`.
    keys       -- the public key set in SQL and the final per-key sum.
    homes      -- home zones, the first step of the home-based indicators.
    shards     -- exact aggregates as sums over shards.
"""

from aggregation.indicators.aggregate import bounded_contributions, exact_aggregate
from aggregation.indicators.definition import IndicatorDefinition
from aggregation.indicators.registry import DEFINITIONS, definition, sensitivities
from aggregation.indicators.request import AggregateRequest, KeyStrategy

__all__ = [
    "DEFINITIONS",
    "AggregateRequest",
    "IndicatorDefinition",
    "KeyStrategy",
    "bounded_contributions",
    "definition",
    "exact_aggregate",
    "sensitivities",
]
