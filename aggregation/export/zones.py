"""The public geography an export needs: zone names, nesting, polygons and centroids.

Zones are public (docs/design.md): every export may carry their names and shapes. A selection of
zones may name zones of the export's level or of any coarser level (``NL01`` selects every admin2
zone inside admin1 ``NL01``), following ``parent_id`` up the hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import shapely

from schemas.errors import ConfigurationError
from schemas.geography import ADMIN_LEVELS

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pyarrow as pa

    from schemas.geography import AdminLevel

_SHOWN = 8
"""How many valid zone codes an error message lists."""


@dataclass(frozen=True)
class Zone:
    """One zone of the public geography."""

    zone_id: str
    name: str
    level: AdminLevel
    parent_id: str | None
    centroid: tuple[float, float]
    """(lon, lat), WGS84."""
    geometry: Any = None
    """The shapely (Multi)Polygon, WGS84."""


class Geography:
    """Every zone of a workspace's zones table, indexed for lookups."""

    def __init__(self, table: pa.Table) -> None:
        rows = table.to_pylist()
        geometries = shapely.from_wkb([r["geometry_wkb"] for r in rows])
        self.zones: dict[str, Zone] = {
            r["zone_id"]: Zone(
                zone_id=r["zone_id"],
                name=r["name"],
                level=r["level"],
                parent_id=r["parent_id"],
                centroid=(float(r["centroid_lon"]), float(r["centroid_lat"])),
                geometry=geom,
            )
            for r, geom in zip(rows, geometries, strict=True)
        }

    def at(self, level: AdminLevel) -> list[Zone]:
        """The zones of ``level``, sorted by code."""
        return sorted((z for z in self.zones.values() if z.level == level), key=lambda z: z.zone_id)

    def name(self, zone_id: str) -> str | None:
        """The name of ``zone_id`` (None if the code is not in the geography)."""
        zone = self.zones.get(zone_id)
        return zone.name if zone is not None else None

    def ancestors(self, zone_id: str) -> list[str]:
        """``zone_id`` and every zone that contains it, finest first."""
        chain: list[str] = []
        current: str | None = zone_id
        while current is not None and current not in chain:
            chain.append(current)
            zone = self.zones.get(current)
            current = zone.parent_id if zone is not None else None
        return chain

    def select(self, level: AdminLevel, wanted: Iterable[str]) -> frozenset[str]:
        """The zones of ``level`` that are, or lie inside, one of the ``wanted`` zones.

        Raises :class:`ConfigurationError` for an unknown code or a zone finer than ``level``.
        """
        wanted = [w.strip() for w in wanted if w.strip()]
        problems: list[str] = []
        depth = ADMIN_LEVELS.index(level)
        for code in wanted:
            zone = self.zones.get(code)
            if zone is None:
                known = [z.zone_id for z in self.at(level)][:_SHOWN]
                problems.append(
                    f"unknown zone {code!r} (zones of {level} are e.g. {', '.join(known)})"
                )
            elif ADMIN_LEVELS.index(zone.level) > depth:
                problems.append(
                    f"zone {code!r} is {zone.level}, finer than the level {level}: name its "
                    f"{level} zone {self._parent_at(code, level)!r} or ask for level {zone.level}"
                )
        if problems:
            raise ConfigurationError("Bad --zones: " + "; ".join(problems) + ".")
        chosen = set(wanted)
        return frozenset(
            z.zone_id for z in self.at(level) if chosen.intersection(self.ancestors(z.zone_id))
        )

    def _parent_at(self, zone_id: str, level: AdminLevel) -> str | None:
        for code in self.ancestors(zone_id):
            zone = self.zones.get(code)
            if zone is not None and zone.level == level:
                return code
        return None
