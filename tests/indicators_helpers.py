"""Helpers for the extract/bound/indicator tests: a tiny geography and staged Parquet builders.

Builds ``staged/date=YYYY-MM-DD/shard=NNN/*.parquet`` files conforming to ``STAGED_EVENTS`` from a
list of :class:`Ev`, so these tests do not depend on ingest. The operator time zone is UTC here,
so local time = UTC. No tests live in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

from aggregation.bounding import BoundingKey
from schemas.indicators import ContributionBounds, ZoneSet
from schemas.staged import STAGED_EVENTS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from schemas.geography import AdminLevel

KEY = BoundingKey(b"test-secret-0123456789abcdef")
OTHER_KEY = BoundingKey(b"another-secret-0123456789abcdef")
DAY0 = date(2026, 3, 2)

# admin3 zone -> (lat, lon); admin2 = first 6 chars, admin1 = first 4 chars.
ADMIN3: dict[str, tuple[float, float]] = {
    "NL010101": (52.00, 4.00),
    "NL010102": (52.00, 4.10),
    "NL010201": (52.10, 4.00),
    "NL020101": (52.50, 5.00),
    "NL020102": (52.50, 5.20),
}


def parent(zone: str, level: AdminLevel) -> str:
    """The zone of ``level`` containing admin3 ``zone`` (codes nest by prefix)."""
    return zone[: {"admin1": 4, "admin2": 6, "admin3": 8}[level]]


def zone_set(level: AdminLevel = "admin3") -> ZoneSet:
    """Every test zone of ``level``, with centroids (mean of its admin3 centroids)."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for z, c in ADMIN3.items():
        groups.setdefault(parent(z, level), []).append(c)
    ids = tuple(sorted(groups))
    cents = tuple(
        (
            sum(c[0] for c in groups[i]) / len(groups[i]),
            sum(c[1] for c in groups[i]) / len(groups[i]),
        )
        for i in ids
    )
    return ZoneSet(level, ids, cents)


@dataclass(frozen=True)
class Ev:
    """One staged event: subscriber, day offset from :data:`DAY0`, time of day, admin3 zone."""

    who: str
    day: int
    hour: int
    minute: int
    zone: str
    second: int = 0
    event_type: str = "call"

    @property
    def time(self) -> datetime:
        base = datetime(DAY0.year, DAY0.month, DAY0.day, tzinfo=UTC)
        return base + timedelta(
            days=self.day, hours=self.hour, minutes=self.minute, seconds=self.second
        )


def table(events: Iterable[Ev]) -> pa.Table:
    """The events as a table conforming to ``STAGED_EVENTS``."""
    evs = list(events)
    cols = {
        "pseudonym": [e.who for e in evs],
        "event_time": [e.time for e in evs],
        "local_date": [e.time.date() for e in evs],
        "local_hour": [e.time.hour for e in evs],
        "source": ["cdr" for _ in evs],
        "event_type": [e.event_type for e in evs],
        "cell_id": [f"c-{e.zone}" for e in evs],
        "admin1": [parent(e.zone, "admin1") for e in evs],
        "admin2": [parent(e.zone, "admin2") for e in evs],
        "admin3": [e.zone for e in evs],
    }
    t = pa.Table.from_pydict(cols, schema=STAGED_EVENTS.schema)
    STAGED_EVENTS.validate(t)
    return t


def by_subscriber(who: str) -> int:
    """Shard of a test pseudonym ``s<N>``: N (each subscriber in its own shard)."""
    return int(who.lstrip("s") or 0)


def write_staged(
    root: Path,
    events: Iterable[Ev],
    shard_of: Callable[[str], int] = by_subscriber,
    drop: str = "drop1",
) -> dict[tuple[str, date], list[str]]:
    """Write ``events`` under ``root/date=…/shard=…/<drop>.parquet``.

    Returns the files of each (pseudonym, local date): with one subscriber per shard (the default),
    each subscriber-day (one privacy unit) is exactly one file.
    """
    groups: dict[tuple[date, int], list[Ev]] = {}
    for e in events:
        groups.setdefault((e.time.date(), shard_of(e.who)), []).append(e)
    units: dict[tuple[str, date], list[str]] = {}
    for (day, shard), evs in sorted(groups.items()):
        d = root / f"date={day.isoformat()}" / f"shard={shard:03d}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{drop}.parquet"
        pq.write_table(table(evs), path)
        for who in {e.who for e in evs}:
            units.setdefault((who, day), []).append(str(path))
    return units


SMALL_BOUNDS = st.builds(
    ContributionBounds,
    max_events_per_zone_hour=st.integers(1, 3),
    max_events_per_day=st.integers(1, 6),
    max_zones_per_day=st.integers(2, 3),
    max_trips_per_day=st.integers(1, 3),
    max_distance_km=st.integers(1, 60),
)
"""Contribution bounds small enough that property tests' tiny datasets meet every cap."""


def unit_datasets(
    *, hours: list[int], subscribers: int, days: int, max_events: int, max_units: int
) -> st.SearchStrategy[dict[tuple[str, int], list[tuple[int, int, str]]]]:
    """Tiny datasets for property tests: per unit (subscriber ``s0``…, day offset), its events as
    (hour of ``hours``, minute, admin3 zone of :data:`ADMIN3`)."""
    return st.dictionaries(
        keys=st.tuples(
            st.sampled_from([f"s{i}" for i in range(subscribers)]), st.integers(0, days - 1)
        ),
        values=st.lists(
            st.tuples(st.sampled_from(hours), st.integers(0, 59), st.sampled_from(sorted(ADMIN3))),
            min_size=1,
            max_size=max_events,
        ),
        min_size=1,
        max_size=max_units,
    )
