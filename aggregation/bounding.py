"""Contribution bounding: cap what one subscriber contributes, with a keyed random order.

When a subscriber-day holds more than a bound allows (more trips than ``max_trips_per_day``, more
zones than ``max_zones_per_day`` …), the records kept are the first ones in a *keyed random order*:
rows are ranked by ``hash(secret, pseudonym, <the record's own fields>)`` within the subscriber-day,
with the same fields as tie-breaks (:func:`aggregation.sql.keyed_order`). The rank of a record
depends only on the secret and on that subscriber's own record, never on other subscribers' data
(guarantee 3 of docs/design.md), so the kept set of one subscriber is the same whoever else is in
the data, and a shard-by-shard run keeps the same records as a single run. Unlike "first by
time", the random order does not favour morning trips. DuckDB refuses ``random()`` in a window's
``ORDER BY``; the keyed hash is deterministic, so re-running gives the same exact aggregates.

DuckDB's ``hash`` is a fast 64-bit non-cryptographic hash. The DP guarantee does not rest on it
(any choice that is a function of the subscriber's own records keeps the bounds); the secret makes
the choice unpredictable to anyone without it. The secret is bound as a query parameter, never
written into SQL text, logs, ``repr`` or outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aggregation.sql import keyed_order, sql
from schemas.errors import ConfigurationError, InternalError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.sql import SqlPlan

MIN_SECRET_BYTES = 16
"""Shortest accepted secret for the keyed order (128 bits)."""


@dataclass(frozen=True, slots=True)
class BoundingKey:
    """The secret that keys the random order of contribution bounding. Never shown in ``repr``."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_SECRET_BYTES:
            size = len(self.secret) if isinstance(self.secret, bytes) else type(self.secret)
            msg = (
                f"The bounding secret must be at least {MIN_SECRET_BYTES} bytes; got {size} "
                "(the value is not shown). Use the workspace secret or os.urandom(32)."
            )
            raise ConfigurationError(msg)

    @classmethod
    def from_secret(cls, secret: bytes | str) -> BoundingKey:
        """A key from the workspace secret, as bytes or text (UTF-8)."""
        return cls(secret.encode() if isinstance(secret, str) else secret)

    @property
    def sql_value(self) -> bytes:
        """The value bound to ``$salt`` in queries."""
        return self.secret


def keep_at_most(
    plan: SqlPlan,
    src: str,
    out: str,
    *,
    per: Sequence[str],
    order: Sequence[str],
    limit: int,
    key: BoundingKey,
) -> SqlPlan:
    """Add CTE ``out``: the rows of ``src`` ranked ``<= limit`` within each ``per`` group.

    Rows are ranked by the keyed order of ``order`` (which must include ``pseudonym`` and enough
    of the row to tell different rows apart).
    """
    if "pseudonym" not in order or "pseudonym" not in per:
        msg = f"Keyed bounding must group and order by pseudonym; got per={per}, order={order}."
        raise InternalError(msg)
    body = sql(
        """SELECT * FROM {src}
QUALIFY row_number() OVER (PARTITION BY {per} ORDER BY {order}) <= ${out}_limit""",
        src=src,
        per=per,
        order=keyed_order(*order),
        out=out,
    )
    return plan.with_cte(out, body, **{f"{out}_limit": limit, "salt": key.sql_value})


def cap_events(
    plan: SqlPlan,
    src: str,
    out: str,
    *,
    per_zone_hour: int,
    per_day: int,
    key: BoundingKey,
) -> SqlPlan:
    """Add CTEs ``out_cells`` and ``out``: per subscriber-day, event counts per (zone, local hour)
    capped at ``per_zone_hour``, then at most ``per_day`` events in all.

    Columns: ``pseudonym, local_date, zone, local_hour, n`` (events kept in the cell, >= 1). Only
    counts are released, so which events of a cell are kept does not matter: a cell keeps
    ``min(events, per_zone_hour)``. The day cap then takes whole cells in keyed random order of
    (pseudonym, day, zone, hour), the cell that crosses the cap partly.

    One GROUP BY over the events, then one window over the cells: each cell's ``before`` is the
    running sum of the cells ahead of it in its subscriber-day. A day under the cap keeps every
    cell whole (``before + n <= total <= cap``), so it needs no test of its own. This replaced a
    window over the days over the cap joined back to the others (an anti and a semi join on
    ``pseudonym, local_date`` and the cells materialised for three readers): the same rows, but
    its CPU per event grew 1.46× from a query of 6.3 M events to one of 62 M (a shard of a
    1 B-event day), against 1.18× for this one, which costs 9 % less there and 4-13 % more on
    queries of a few million events (``benchmarks/README.md``, "``event_counts``: the day cap").
    """
    cells = f"{out}_cells"
    body = sql(
        """SELECT pseudonym, local_date, zone, local_hour, least(count(*), ${out}_cell_cap) AS n
FROM {src}
GROUP BY pseudonym, local_date, zone, local_hour""",
        src=src,
        out=out,
    )
    plan = plan.with_cte(cells, body, **{f"{out}_cell_cap": per_zone_hour})
    # Within a partition ``pseudonym, local_date`` are constant: ordering by the keyed hash, then
    # zone and hour, is the keyed order of (pseudonym, local_date, zone, local_hour) (a total
    # order: a subscriber-day has one cell per zone and hour), without sorting on the partition
    # columns twice. ``sum(...) - n`` over the frame ending at the current row is the sum of the
    # rows before it, without the empty frame of the first row.
    body = sql(
        """SELECT pseudonym, local_date, zone, local_hour, least(n, ${out}_day_cap - before) AS n
FROM (
    SELECT *, sum(n) OVER (
        PARTITION BY pseudonym, local_date
        ORDER BY hash($salt, pseudonym, local_date, zone, local_hour), zone, local_hour
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - n AS before
    FROM {cells}
)
WHERE before < ${out}_day_cap""",
        out=out,
        cells=cells,
    )
    return plan.with_cte(out, body, **{f"{out}_day_cap": per_day, "salt": key.sql_value})


def keep_zones(plan: SqlPlan, src: str, out: str, *, limit: int, key: BoundingKey) -> SqlPlan:
    """Add CTEs ``out`` and ``out_all``: at most ``limit`` distinct zones per subscriber-day.

    Columns: ``pseudonym, local_date, zone``; the zones kept are chosen in keyed order of
    (pseudonym, day, zone), so ``presence`` and ``od_connections`` keep the same zones.
    """
    every = f"{out}_all"
    body = sql("SELECT DISTINCT pseudonym, local_date, zone FROM {src}", src=src)
    plan = plan.with_cte(every, body)
    day = ("pseudonym", "local_date")
    return keep_at_most(plan, every, out, per=day, order=(*day, "zone"), limit=limit, key=key)


def keep_trips(plan: SqlPlan, src: str, out: str, *, limit: int, key: BoundingKey) -> SqlPlan:
    """Add CTE ``out``: at most ``limit`` trips of ``src`` per subscriber-day, in keyed order.

    ``src`` has the columns of :func:`aggregation.extract.trips`.
    """
    order = ("pseudonym", "arrival_time", "origin", "destination")
    day = ("pseudonym", "local_date")
    return keep_at_most(plan, src, out, per=day, order=order, limit=limit, key=key)
