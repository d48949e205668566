"""Reference geography: zones (admin1 ⊃ admin2 ⊃ admin3) and the operator's cell table.

Zones are published as GeoJSON FeatureCollections, one per admin level
(``zones_admin1.geojson`` …), each feature carrying the properties of :data:`ZONES` (without
``geometry_wkb``, which is the feature's geometry). Zone codes nest by prefix: admin3 ``NL010203``
lies in admin2 ``NL0102`` which lies in admin1 ``NL01``.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

from schemas.contract import Column, Contract

AdminLevel = Literal["admin1", "admin2", "admin3"]
ADMIN_LEVELS: tuple[AdminLevel, ...] = ("admin1", "admin2", "admin3")

ZONES = Contract(
    name="zones",
    description="One row per zone of one admin level, with its polygon. Zone sets are public.",
    columns=(
        Column("zone_id", pa.string(), "Zone code; unique across levels (prefix-nested)."),
        Column("name", pa.string(), "Human-readable zone name."),
        Column("level", pa.string(), "Admin level of the zone.", allowed=ADMIN_LEVELS),
        Column(
            "parent_id",
            pa.string(),
            "Code of the enclosing zone one level up; null for admin1.",
            nullable=True,
        ),
        Column(
            "population",
            pa.int64(),
            "Resident population of the zone (synthetic census).",
            unit="persons",
        ),
        Column("area_km2", pa.float64(), "Area of the polygon.", unit="km²"),
        Column("centroid_lat", pa.float64(), "Latitude of the centroid, WGS84.", unit="degrees"),
        Column("centroid_lon", pa.float64(), "Longitude of the centroid, WGS84.", unit="degrees"),
        Column("geometry_wkb", pa.binary(), "Polygon or MultiPolygon, WGS84, as WKB."),
    ),
    key=("zone_id",),
)

CELLS = Contract(
    name="cells",
    description=(
        "The operator's cell reference table: one row per cell, located by its antenna "
        "coordinates; the zone columns are derived from the coordinates by point-in-polygon."
    ),
    columns=(
        Column("cell_id", pa.string(), "Cell identifier, as it appears in raw CDR."),
        Column("site_id", pa.string(), "Identifier of the site (mast) that carries the cell."),
        Column("lat", pa.float64(), "Antenna latitude, WGS84.", unit="degrees"),
        Column("lon", pa.float64(), "Antenna longitude, WGS84.", unit="degrees"),
        Column("admin1", pa.string(), "admin1 zone containing the antenna."),
        Column("admin2", pa.string(), "admin2 zone containing the antenna."),
        Column("admin3", pa.string(), "admin3 zone containing the antenna."),
        Column("valid_from", pa.date32(), "First day the cell carried traffic (local date)."),
        Column(
            "valid_to",
            pa.date32(),
            "Last day the cell carried traffic (local date); null while in service.",
            nullable=True,
        ),
    ),
    key=("cell_id",),
)
