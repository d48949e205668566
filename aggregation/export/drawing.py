"""Geometry helpers shared by the PNG and HTML maps: a flat projection and zone outlines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import shapely

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.export.zones import Zone


@dataclass(frozen=True)
class Projection:
    """Equirectangular projection centred on the zones: x = lon·cos(lat₀), y = lat (degrees)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def around(cls, zones: Sequence[Zone]) -> Projection:
        """The projection of the bounding box of ``zones``."""
        geometries = [z.geometry for z in zones if z.geometry is not None]
        if geometries:
            x0, y0, x1, y1 = shapely.total_bounds(geometries)
        else:
            lons = [z.centroid[0] for z in zones] or [0.0]
            lats = [z.centroid[1] for z in zones] or [0.0]
            x0, y0, x1, y1 = min(lons), min(lats), max(lons), max(lats)
        return cls(float(x0), float(y0), float(x1), float(y1))

    @property
    def aspect(self) -> float:
        """Stretch of y against x that keeps shapes true at the centre latitude."""
        return 1.0 / math.cos(math.radians((self.min_lat + self.max_lat) / 2))

    @property
    def width(self) -> float:
        """Projected width (x units)."""
        return max(self.max_lon - self.min_lon, 1e-9) / self.aspect

    @property
    def height(self) -> float:
        """Projected height (y units)."""
        return max(self.max_lat - self.min_lat, 1e-9)

    def to_svg(self, lon: float, lat: float, size: float) -> tuple[float, float]:
        """SVG coordinates in a box ``size`` units wide (y grows downwards)."""
        k = size / self.width
        return ((lon - self.min_lon) / self.aspect * k, (self.max_lat - lat) * k)


def rings(geometry: Any, tolerance: float = 0.0) -> list[list[tuple[float, float]]]:
    """Exterior rings of a (Multi)Polygon as lists of (lon, lat), optionally simplified."""
    if geometry is None:
        return []
    if tolerance > 0:
        geometry = shapely.simplify(geometry, tolerance, preserve_topology=True)
    parts = getattr(geometry, "geoms", [geometry])
    return [[(float(x), float(y)) for x, y in part.exterior.coords] for part in parts]


def curve_control(
    start: tuple[float, float], end: tuple[float, float], bend: float = 0.18
) -> tuple[float, float]:
    """Control point of a quadratic curve bending to the right of start → end."""
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    return ((x0 + x1) / 2 - bend * dy, (y0 + y1) / 2 + bend * dx)
