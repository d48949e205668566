"""Exact bounded aggregates of every indicator, ready for a DP mechanism.

Each indicator is computed by one DuckDB query over the staged Parquet files: extract (stays,
trips, homes, distances), bound (keyed random order per subscriber-day), then sum over the public
key set. No noise is added here; the declared sensitivity of each vector is
:meth:`AggregateRequest.sensitivities` (derived in :mod:`schemas.indicators`).

Modules:
    request   -- :class:`AggregateRequest`: indicator, staged source, zones, scope, bounds.
    aggregate -- :func:`exact_aggregate` and :func:`bounded_contributions`.
    keys      -- public key sets (zones, zone pairs, zone × hour) and the final per-key sum.
    counts    -- ``event_counts`` and ``presence``.
    od        -- ``od_trips`` and ``od_connections``.
    home      -- ``residents``, ``home_away`` and ``relocations``.
    distance  -- ``mobility_distance``.
"""

from aggregation.indicators.aggregate import bounded_contributions, exact_aggregate
from aggregation.indicators.request import AggregateRequest, KeyStrategy

__all__ = ["AggregateRequest", "KeyStrategy", "bounded_contributions", "exact_aggregate"]
