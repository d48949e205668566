"""The fictional country of Nulland: its shape, cities, zones (admin1 ⊃ admin2 ⊃ admin3) and cells.

Geometry is built in a local plane measured in kilometres and published in WGS84 through a fixed
equirectangular mapping centred off the coast of West Africa, over open sea, so no real place is
described. Population density is a mixture of Gaussian cities (Zipf-sized) over a thin rural
baseline; zones are Voronoi cells of seeds drawn from that density (small in cities, large in the
countryside), grouped by k-means into admin2 and admin1 so the levels nest exactly. Cell sites are
placed by density too, with three sectors each; a cell's zones come from point-in-polygon on its
coordinates, as an operator would derive them.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import shapely
from scipy.spatial import cKDTree

from schemas.errors import ConfigurationError
from schemas.geography import CELLS, ZONES

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sample_data.synth.config import SynthConfig

COUNTRY_CODE = "NL"
LAT0, LON0 = 1.0, 1.5
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON = 111.320 * math.cos(math.radians(LAT0 + 1.4))
RADIUS_KM = 160.0
CENTRE_KM = (180.0, 160.0)
CENSUS_POPULATION = 6_000_000
RURAL_SHARE = 0.3
N_CITIES = 9
MIN_CITY_SPACING_KM = 45.0
BORDER_MARGIN_KM = 1.0
SECTORS = 3
_SYLLABLES = (
    "ka", "lo", "mi", "na", "ra", "te", "bu", "sa", "do", "ve", "li", "mo", "zan", "tor", "bel",
    "ari", "eno", "umi", "dal", "ken", "ros", "tai", "vin", "yol", "gor", "pem", "sul", "wen",
)  # fmt: skip


def to_lonlat(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """Plane kilometres to WGS84 (lon, lat)."""
    return LON0 + x / KM_PER_DEG_LON, LAT0 + y / KM_PER_DEG_LAT


def _lonlat_geometry(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(
        geom, lambda c: np.column_stack(to_lonlat(c[:, 0], c[:, 1])), include_z=False
    )


@dataclass(frozen=True)
class Cities:
    """City centres (km), sizes and spreads."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    weight: NDArray[np.float64]
    sigma_km: NDArray[np.float64]


@dataclass(frozen=True)
class Country:
    """The geography of one synthetic country; everything derives from the config's seed."""

    boundary: shapely.Polygon
    inner: shapely.Polygon
    cities: Cities
    zones: pa.Table
    cells: pa.Table
    active_cell_site: NDArray[np.int64]
    """For each active site (rows of ``site_xy``), the row in ``cells`` of its first sector."""
    site_xy: NDArray[np.float64]
    site_tree: cKDTree
    cell_admin3: NDArray[np.str_]

    def sample_points(
        self, rng: np.random.Generator, n: int, rural_share: float = RURAL_SHARE
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Draw ``n`` points (km) from the population density, inside the country."""
        x = np.empty(n)
        y = np.empty(n)
        todo = np.arange(n)
        while todo.size:
            k = todo.size
            rural = rng.random(k) < rural_share
            city = rng.choice(self.cities.weight.size, size=k, p=self.cities.weight)
            px = self.cities.x[city] + rng.normal(0.0, 1.0, k) * self.cities.sigma_km[city]
            py = self.cities.y[city] + rng.normal(0.0, 1.0, k) * self.cities.sigma_km[city]
            minx, miny, maxx, maxy = self.boundary.bounds
            px = np.where(rural, rng.uniform(minx, maxx, k), px)
            py = np.where(rural, rng.uniform(miny, maxy, k), py)
            inside = self.contains(px, py)
            x[todo[inside]] = px[inside]
            y[todo[inside]] = py[inside]
            todo = todo[~inside]
        return x, y

    def contains(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Whether points (km) lie inside the country, at least a margin from its border."""
        return np.asarray(shapely.contains_xy(self.inner, x, y), dtype=bool)

    def serving_cell(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int64]:
        """Row in ``cells`` of the cell serving each point: nearest site, sector by bearing."""
        _, site = self.site_tree.query(np.column_stack([x, y]))
        dx = x - self.site_xy[site, 0]
        dy = y - self.site_xy[site, 1]
        bearing = np.mod(np.arctan2(dy, dx), 2 * np.pi)
        sector = np.minimum((bearing / (2 * np.pi / SECTORS)).astype(np.int64), SECTORS - 1)
        return np.asarray(self.active_cell_site[site] + sector, dtype=np.int64)


def _boundary(rng: np.random.Generator) -> shapely.Polygon:
    theta = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    phase = rng.uniform(0, 2 * np.pi, 3)
    r = RADIUS_KM * (
        1
        + 0.14 * np.sin(3 * theta + phase[0])
        + 0.07 * np.sin(5 * theta + phase[1])
        + 0.03 * np.sin(11 * theta + phase[2])
    )
    return shapely.Polygon(
        np.column_stack([CENTRE_KM[0] + r * np.cos(theta), CENTRE_KM[1] + r * np.sin(theta)])
    )


def _cities(rng: np.random.Generator, inner: shapely.Polygon) -> Cities:
    minx, miny, maxx, maxy = inner.bounds
    xs: list[float] = []
    ys: list[float] = []
    while len(xs) < N_CITIES:
        px, py = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        far_from_border = inner.buffer(-25.0).contains(shapely.Point(px, py))
        far_from_cities = all(
            math.hypot(px - a, py - b) > MIN_CITY_SPACING_KM for a, b in zip(xs, ys, strict=True)
        )
        if far_from_border and far_from_cities:
            xs.append(px)
            ys.append(py)
    size = 1.0 / np.arange(1, N_CITIES + 1) ** 1.1
    weight = size / size.sum()
    return Cities(x=np.array(xs), y=np.array(ys), weight=weight, sigma_km=3.0 + 9.0 * np.sqrt(size))


def _kmeans(points: NDArray[np.float64], k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Cluster labels of Lloyd's k-means; no cluster is left empty (each becomes a zone)."""
    centres = points[rng.choice(len(points), size=k, replace=False)].copy()
    for _ in range(25 + k):
        dist, labels = cKDTree(centres).query(points)
        sizes = np.bincount(labels, minlength=k)
        empty = np.flatnonzero(sizes == 0)
        if empty.size:  # move an empty cluster onto the point farthest from its centre
            centres[empty[0]] = points[int(np.argmax(dist))]
            continue
        for j in range(k):
            centres[j] = points[labels == j].mean(axis=0)
    _, labels = cKDTree(centres).query(points)
    if np.bincount(labels, minlength=k).min() == 0:
        msg = f"Cannot split {len(points)} zones into {k} non-empty groups; use fewer groups."
        raise ConfigurationError(msg)
    return np.asarray(labels, dtype=np.int64)


def _name(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        n = int(rng.integers(2, 4))
        name = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), n)).title()
        if name not in used:
            used.add(name)
            return name


def _order(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int64]:
    """North to south, then west to east, in 20 km bands: a reading order for codes."""
    return np.asarray(np.lexsort((x, -np.floor(y / 20.0))), dtype=np.int64)


def build_country(config: SynthConfig) -> Country:
    """Build the geography for ``config`` (depends only on its seed and zone and site counts)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xC0FFEE]))
    boundary = _boundary(rng)
    inner = boundary.buffer(-BORDER_MARGIN_KM)
    shapely.prepare(inner)
    cities = _cities(rng, inner)
    skeleton = Country(
        boundary, inner, cities, ZONES.empty(), CELLS.empty(), np.zeros(0, np.int64),
        np.zeros((1, 2)), cKDTree(np.zeros((1, 2))), np.zeros(0, np.str_),
    )  # fmt: skip

    # admin3: Voronoi cells of seeds drawn with a milder urban concentration than people.
    sx, sy = skeleton.sample_points(rng, config.admin3, rural_share=0.45)
    seeds = np.column_stack([sx, sy])
    cells3 = shapely.voronoi_polygons(
        shapely.MultiPoint(seeds), extend_to=boundary, ordered=True
    ).geoms
    poly3 = [shapely.intersection(c, boundary) for c in cells3]
    lab2 = _kmeans(seeds, config.admin2, rng)
    cent2 = np.array([seeds[lab2 == j].mean(axis=0) for j in range(config.admin2)])
    lab1_of2 = _kmeans(cent2, config.admin1, rng)

    # Population: Monte Carlo over the density; a point's admin3 is its nearest seed (Voronoi).
    px, py = skeleton.sample_points(rng, 200_000)
    _, nearest = cKDTree(seeds).query(np.column_stack([px, py]))
    pop3 = np.bincount(nearest, minlength=config.admin3) * (CENSUS_POPULATION / 200_000)

    names: set[str] = set()
    rows: list[dict[str, object]] = []

    def add(
        zone_id: str, level: str, parent: str | None, pop: float, geom: shapely.Geometry
    ) -> None:
        rows.append(_zone_row(zone_id, _name(rng, names), level, parent, pop, geom))

    code3 = np.empty(config.admin3, dtype=object)
    order1 = _order(*[cent2[:, i] for i in (0, 1)])
    a1_rank = {int(j): r for r, j in enumerate(dict.fromkeys(lab1_of2[order1].tolist()))}
    for a1 in sorted(a1_rank, key=a1_rank.__getitem__):
        c1 = f"{COUNTRY_CODE}{a1_rank[a1] + 1:02d}"
        members2 = np.flatnonzero(lab1_of2 == a1)
        members2 = members2[_order(cent2[members2, 0], cent2[members2, 1])]
        geoms2 = []
        for i2, a2 in enumerate(members2):
            c2 = f"{c1}{i2 + 1:02d}"
            members3 = np.flatnonzero(lab2 == a2)
            members3 = members3[_order(seeds[members3, 0], seeds[members3, 1])]
            for i3, a3 in enumerate(members3):
                code3[a3] = f"{c2}{i3 + 1:02d}"
                add(code3[a3], "admin3", c2, pop3[a3], poly3[a3])
            g2 = shapely.union_all([poly3[a] for a in members3])
            geoms2.append(g2)
            add(c2, "admin2", c1, pop3[members3].sum(), g2)
        pop1 = sum(pop3[lab2 == a2].sum() for a2 in members2)
        add(c1, "admin1", None, pop1, shapely.union_all(geoms2))
    level_rank = {"admin1": 0, "admin2": 1, "admin3": 2}
    rows.sort(key=lambda r: (level_rank[str(r["level"])], str(r["zone_id"])))
    zones = pa.Table.from_pylist(rows, schema=ZONES.schema)

    cells, site_xy, first_cell = _cells(config, skeleton, rng, zones)
    return Country(
        boundary=boundary,
        inner=inner,
        cities=cities,
        zones=zones,
        cells=cells,
        active_cell_site=first_cell,
        site_xy=site_xy,
        site_tree=cKDTree(site_xy),
        cell_admin3=np.asarray(cells["admin3"].to_numpy(zero_copy_only=False), dtype=np.str_),
    )


def _zone_row(
    zone_id: str, name: str, level: str, parent: str | None, pop: float, geom_km: shapely.Geometry
) -> dict[str, object]:
    centroid = geom_km.centroid
    lon, lat = to_lonlat(np.array([centroid.x]), np.array([centroid.y]))
    return {
        "zone_id": zone_id,
        "name": name,
        "level": level,
        "parent_id": parent,
        "population": round(float(pop)),
        "area_km2": round(float(geom_km.area), 3),
        "centroid_lat": round(float(lat[0]), 6),
        "centroid_lon": round(float(lon[0]), 6),
        "geometry_wkb": shapely.to_wkb(_lonlat_geometry(geom_km)),
    }


def _cells(
    config: SynthConfig, country: Country, rng: np.random.Generator, zones: pa.Table
) -> tuple[pa.Table, NDArray[np.float64], NDArray[np.int64]]:
    """Cell sites by density (and for coverage), three sectors each, zones by point-in-polygon."""
    x, y = country.sample_points(rng, config.sites, rural_share=0.4)
    lon, lat = to_lonlat(x, y)
    admin3 = zones.filter(pa.compute.equal(zones["level"], "admin3"))
    polys = shapely.from_wkb(admin3["geometry_wkb"].to_numpy(zero_copy_only=False))
    tree = shapely.STRtree(polys)
    pts = shapely.points(lon, lat)
    site_idx, poly_idx = tree.query(pts, predicate="intersects")
    zone_of_site = np.full(config.sites, -1, dtype=np.int64)
    zone_of_site[site_idx[::-1]] = poly_idx[::-1]  # first match wins on shared edges
    missing = zone_of_site < 0
    if missing.any():
        zone_of_site[missing] = tree.nearest(pts[missing])
    code3 = np.asarray(admin3["zone_id"].to_numpy(zero_copy_only=False))[zone_of_site]
    commissioned = [
        config.start - dt.timedelta(days=int(d)) for d in rng.integers(30, 4000, config.sites)
    ]
    decommissioned = rng.random(config.sites) < 0.03  # noqa: PLR2004 - share of retired sites
    retired_on = [
        config.start - dt.timedelta(days=int(d)) for d in rng.integers(1, 29, config.sites)
    ]
    rows: list[dict[str, object]] = []
    first_cell = []
    site_xy = []
    for s in range(config.sites):
        if not decommissioned[s]:
            first_cell.append(len(rows))
            site_xy.append((x[s], y[s]))
        rows.extend(
            {
                "cell_id": f"ST{s + 1:05d}-{sector + 1}",
                "site_id": f"ST{s + 1:05d}",
                "lat": round(float(lat[s]), 6),
                "lon": round(float(lon[s]), 6),
                "admin1": code3[s][:4],
                "admin2": code3[s][:6],
                "admin3": code3[s],
                "valid_from": commissioned[s],
                "valid_to": retired_on[s] if decommissioned[s] else None,
            }
            for sector in range(SECTORS)
        )
    cells = pa.Table.from_pylist(rows, schema=CELLS.schema)
    return cells, np.array(site_xy, dtype=np.float64), np.array(first_cell, dtype=np.int64)
