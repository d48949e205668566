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

    def contains(self, lon: float, lat: float) -> bool:
        """Whether (lon, lat) lies in the box."""
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat

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


ZOOM_MAX_SHARE = 0.4
"""A zoom is drawn only when the busiest region covers at most this share of the map's width and
of its height (beyond, a zoom would enlarge it less than 2.5 times)."""
CLUSTER_REACH = 0.12
"""The busiest cluster: endpoints within this share of the map's diagonal of the busiest zone."""


def zone_traffic(flows: Sequence[tuple[str, str, float]]) -> dict[str, float]:
    """Trips in and out of each zone that ``flows`` (origin, destination, total) touch."""
    traffic: dict[str, float] = {}
    for origin, destination, total in flows:
        for zone in (origin, destination):
            traffic[zone] = traffic.get(zone, 0.0) + total
    return traffic


def busiest_region(
    zones: Sequence[Zone], flows: Sequence[tuple[str, str, float]]
) -> Projection | None:
    """The box around the busiest cluster of flows, if it is small on the map; else ``None``.

    The hub is the zone with the most traffic (trips in and out); the cluster is every endpoint
    of a drawn flow within :data:`CLUSTER_REACH` of the map's diagonal of the hub. Its box (with
    a margin) is where a zoom makes dense, short flows readable.
    """
    full = Projection.around(zones)
    centroids = {z.zone_id: z.centroid for z in zones}
    traffic = {z: t for z, t in zone_traffic(flows).items() if z in centroids}
    if not traffic:
        return None
    hub = centroids[max(traffic, key=lambda z: (traffic[z], z))]
    reach = CLUSTER_REACH * math.hypot(full.max_lon - full.min_lon, full.max_lat - full.min_lat)
    near = [centroids[z] for z in traffic if math.dist(centroids[z], hub) <= reach]
    if len(near) < 3:  # noqa: PLR2004 - a cluster needs a few zones
        return None
    lons, lats = [p[0] for p in near], [p[1] for p in near]
    span = max(max(lons) - min(lons), max(lats) - min(lats), 1e-6)
    margin = 0.15 * span
    box = Projection(min(lons) - margin, min(lats) - margin, max(lons) + margin, max(lats) + margin)
    too_big = (box.max_lon - box.min_lon) > ZOOM_MAX_SHARE * (full.max_lon - full.min_lon) or (
        box.max_lat - box.min_lat
    ) > ZOOM_MAX_SHARE * (full.max_lat - full.min_lat)
    return None if too_big else box


def legend_values(top: float) -> list[float]:
    """Values for a legend of widths: about ¼, ½ and all of ``top``, to two significant digits
    (never above ``top``)."""
    out: list[float] = []
    for share in (0.25, 0.5, 1.0):
        value = float(f"{top * share:.2g}")
        if value > top:
            value = float(f"{top * share * 0.95:.2g}")
        if value > 0 and value not in out:
            out.append(value)
    return out or [0.0]
