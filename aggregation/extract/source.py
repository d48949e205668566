"""Where staged data are: the staged directory written by ingest, or an explicit list of files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from schemas.errors import InternalError
from schemas.geography import ADMIN_LEVELS, AdminLevel

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date
    from pathlib import Path

_SHARD_DIR = re.compile(r"^shard=(\d+)$")


class EventSource(Protocol):
    """Where the staged events (contract ``staged_events``) of given days are."""

    def files_for(self, days: Iterable[date]) -> list[str]:
        """The Parquet files that may hold events of ``days`` (sorted, possibly empty)."""
        ...


@dataclass(frozen=True, slots=True)
class StagedSource:
    """The staged directory ``root/date=YYYY-MM-DD/shard=NNN/*.parquet`` written by ingest.

    ``shards`` restricts reading to those shards (a distributed run computes each shard where it
    lies; every shard holds whole subscribers, so per-shard aggregates add up exactly).
    """

    root: Path
    shards: frozenset[int] | None = None

    def files_for(self, days: Iterable[date]) -> list[str]:
        """Every staged Parquet file of ``days`` in the selected shards."""
        return [f for _, _, files in self.partitions(days) for f in files]

    def partitions(self, days: Iterable[date]) -> list[tuple[date, int, list[str]]]:
        """Each day-shard of ``days`` in the selected shards that holds staged files: its day,
        its shard and its files (sorted), in order of day then shard."""
        found: list[tuple[date, int, list[str]]] = []
        for day in sorted(set(days)):
            day_dir = self.root / f"date={day.isoformat()}"
            for shard_dir in sorted(day_dir.glob("shard=*")):
                m = _SHARD_DIR.match(shard_dir.name)
                if m is None or (self.shards is not None and int(m.group(1)) not in self.shards):
                    continue
                files = [str(p) for p in sorted(shard_dir.glob("*.parquet"))]
                if files:
                    found.append((day, int(m.group(1)), files))
        return found

    def missing_days(self, days: Iterable[date]) -> list[date]:
        """Days of ``days`` with no staged file at all (e.g. not ingested yet)."""
        return [d for d in sorted(set(days)) if not self.files_for([d])]


@dataclass(frozen=True, slots=True)
class StagedFiles:
    """An explicit list of staged Parquet files; rows are still filtered by ``local_date``."""

    paths: tuple[str, ...]

    def files_for(self, days: Iterable[date]) -> list[str]:  # noqa: ARG002 - same for every day
        """All the files: which days they hold is decided by their ``local_date`` column."""
        return sorted(self.paths)


def level_column(level: AdminLevel) -> str:
    """The staged column holding zones of ``level`` (checked: it goes into SQL text)."""
    if level not in ADMIN_LEVELS:
        msg = f"Admin level {level!r} is not one of {list(ADMIN_LEVELS)}."
        raise InternalError(msg)
    return level
