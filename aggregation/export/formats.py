"""Writers of the export formats analysts use: CSV, Parquet, GeoJSON (QGIS) and xlsx (Excel).

Every writer writes beside the target and renames into place, so a reader never sees half a file.
CSV is UTF-8 with ISO dates; GeoJSON features are zone polygons (zone indicators) or straight
lines from origin to destination centroid (OD indicators), with every column as a property; the
xlsx workbook has the data, the releases used and notes on separate sheets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import shapely

from aggregation.export.datapackage import DESCRIPTOR, NOTES, descriptor, mobility_block
from aggregation.export.request import EXTENSIONS
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from aggregation.export.assemble import Assembled
    from aggregation.export.request import ExportFormat
    from aggregation.export.zones import Geography

_COORDINATE_GRID = 1e-6
"""Coordinates are rounded to 1e-6 degrees (about 0.1 m) in GeoJSON."""


@dataclass(frozen=True)
class ExportFiles:
    """What an export wrote: the data file and its ``datapackage.json``."""

    data: Path
    descriptor: Path
    assembled: Assembled


def _atomic(target: Path, write: Callable[[Path], object]) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        write(tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def write_csv(assembled: Assembled, path: Path, geography: Geography) -> None:
    """UTF-8 CSV with a header row, ISO dates, empty fields for missing values."""
    del geography
    assembled.data.write_csv(path)


def write_parquet(assembled: Assembled, path: Path, geography: Geography) -> None:
    """Parquet (zstd); the schema metadata carries the ``mobility`` block of the descriptor."""
    del geography
    table = assembled.data.to_arrow()
    block = json.dumps(mobility_block(assembled), sort_keys=True).encode()
    table = table.replace_schema_metadata({b"mobility": block})
    pq.write_table(table, path, compression="zstd")


def _geometry(geography: Geography, zone_id: str) -> Any:
    zone = geography.zones.get(zone_id)
    return None if zone is None else zone.geometry


def _feature_geometries(assembled: Assembled, geography: Geography) -> list[dict[str, Any] | None]:
    """One GeoJSON geometry per row: the zone's polygon, or a line between OD centroids."""
    cache: dict[tuple[str, ...], dict[str, Any] | None] = {}
    columns = assembled.zone_columns
    found: list[dict[str, Any] | None] = []
    for key in assembled.data.select(columns).iter_rows():
        if key not in cache:
            cache[key] = _shape(key, geography)
        found.append(cache[key])
    return found


def _shape(key: tuple[str, ...], geography: Geography) -> dict[str, Any] | None:
    if len(key) == 1:
        geom = _geometry(geography, key[0])
    else:
        ends = [geography.zones.get(z) for z in key]
        if any(z is None for z in ends):
            return None
        geom = shapely.LineString([z.centroid for z in ends if z is not None])
    if geom is None:
        return None
    geom = shapely.set_precision(geom, _COORDINATE_GRID)
    document: dict[str, Any] = json.loads(shapely.to_geojson(geom))
    return document


def write_geojson(assembled: Assembled, path: Path, geography: Geography) -> None:
    """A FeatureCollection (RFC 7946, WGS84), one feature per row."""
    geometries = _feature_geometries(assembled, geography)
    features = [
        {
            "type": "Feature",
            "geometry": geometry,
            "properties": {k: _json_value(v) for k, v in row.items()},
        }
        for row, geometry in zip(assembled.data.iter_rows(named=True), geometries, strict=True)
    ]
    r = assembled.request
    document = {
        "type": "FeatureCollection",
        "name": f"{r.indicator}_{r.level}_{r.start}_{r.end}",
        "features": features,
        "mobility": {
            "indicator": str(r.indicator),
            "release_ids": [x.release_id for x in assembled.releases],
            "see": DESCRIPTOR,
        },
    }
    path.write_text(json.dumps(document, ensure_ascii=False) + "\n", encoding="utf-8")


def _sheet_header(sheet: Any, columns: list[str], rows: int) -> None:
    """Freeze the header row and put a filter on every column of a sheet of ``rows`` rows."""
    sheet.freeze_panes = "A2"
    from openpyxl.utils import get_column_letter  # type: ignore[import-untyped] # noqa: PLC0415

    sheet.auto_filter.ref = f"A1:{get_column_letter(max(1, len(columns)))}{rows + 1}"
    sheet.append(columns)


def notes_for(assembled: Assembled) -> list[str]:
    """The notes that apply to this export (the scaled variant's only with a baseline)."""
    scaled = assembled.request.baseline is not None
    return [note for note in NOTES if scaled or "pct_change" not in note]


def write_xlsx(assembled: Assembled, path: Path, geography: Geography) -> None:
    """A workbook with the sheets ``data``, ``releases`` and ``notes``; the header row of the
    first two is frozen and filtered."""
    del geography
    from openpyxl import Workbook  # type: ignore[import-untyped] # noqa: PLC0415 - xlsx only

    book = Workbook(write_only=True)
    data = book.create_sheet("data")
    _sheet_header(data, assembled.data.columns, assembled.data.height)
    for row in assembled.data.iter_rows():
        data.append(list(row))
    releases = mobility_block(assembled)["releases"]
    sheet = book.create_sheet("releases")
    columns = [
        "role", "release_id", "ledger_entry_id", "ledger_status", "value_column", "level",
        "privacy_unit", "mechanism", "epsilon", "delta", "scale", "ci95_half_width", "k",
        "cells_total", "cells_released", "cells_suppressed", "created_at",
    ]  # fmt: skip
    _sheet_header(sheet, [*columns, "period", "used"], len(releases))
    for x in releases:
        period = f"{x['period']['start']}..{x['period']['end']}"
        sheet.append([x[c] for c in columns] + [period, ", ".join(x["used"] or [])])
    notes = book.create_sheet("notes")
    for note in notes_for(assembled):
        notes.append([note])
    book.save(path)


WRITERS: dict[str, Callable[[Assembled, Path, Geography], None]] = {
    "csv": write_csv,
    "parquet": write_parquet,
    "geojson": write_geojson,
    "xlsx": write_xlsx,
}


def write_export(
    assembled: Assembled, fmt: ExportFormat, out_dir: Path, geography: Geography
) -> ExportFiles:
    """Write ``assembled`` as ``fmt`` into ``out_dir`` (created), with ``datapackage.json``.

    The data file is named after the request (``od_trips_admin2_2026-03-02_2026-03-04.csv``).
    Files of the same names are replaced; nothing else in ``out_dir`` is touched.
    """
    if fmt not in WRITERS:
        msg = f"Unknown export format {fmt!r}; choose one of {list(WRITERS)}."
        raise ConfigurationError(msg)
    if out_dir.exists() and not out_dir.is_dir():
        msg = f"--out {out_dir} is a file; give a directory (it holds the data and {DESCRIPTOR})."
        raise ConfigurationError(msg)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{assembled.request.stem()}.{EXTENSIONS[fmt]}"
    _atomic(target, lambda p: WRITERS[fmt](assembled, p, geography))
    document = descriptor(assembled, target, fmt)
    meta = out_dir / DESCRIPTOR
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    _atomic(meta, lambda p: p.write_text(text, encoding="utf-8"))
    return ExportFiles(target, meta, assembled)
