"""The Frictionless Data Package descriptor written beside every export (``datapackage.json``).

It describes the data file (path, format, size, SHA-256, a Table Schema of its columns) and
carries, under the ``mobility`` property, what an analyst needs to use the numbers honestly: the
privacy unit, ε/δ, the mechanism and its scale, the 95 % half-width of each cell, the k-threshold,
how many cells were suppressed, and the ledger entry that paid for every release used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from aggregation.release.publish import sha256_file
from schemas.indicators import spec

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.export.assemble import Assembled
    from aggregation.export.catalog import ReleaseRecord
    from aggregation.export.request import ExportFormat

DESCRIPTOR = "datapackage.json"

MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "geojson": "application/geo+json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

COLUMN_DOCS: dict[str, str] = {
    "date": "Local calendar day (ISO 8601).",
    "hour": "Local hour of the day, 0-23.",
    "period_start": "First day of the period the release counts.",
    "period_end": "Last day of the period the release counts.",
    "measure": "Which value column of the indicator this row holds.",
    "value": (
        "Released value: the exact bounded aggregate plus differential-privacy noise; cells "
        "whose noisy value was below k are not published (absent)."
    ),
    "ci95": (
        "Half-width of the 95 % interval of the noise added to the cell (the noise lies within "
        "± ci95 with 95 % probability). A noise interval, not a confidence interval for a "
        "published cell: cells are published only when their noisy value reaches k, so near k "
        "the bounded value lies in value ± ci95 less often (about 78 % for a true 0 published "
        "at k = 10, noise scale 6)."
    ),
    "baseline": "Mean released value of the same cell over the baseline period.",
    "baseline_n": "Number of baseline days (or periods) in which this cell was released.",
    "pct_change": "100 · (value - baseline) / baseline; empty without a positive baseline.",
    "release_id": "The release (and privacy-ledger entry) the row was taken from.",
}

NOTES = (
    (
        "Every number was published by a differentially private release and paid for in the "
        "privacy ledger; this export re-packages released files only and spent no privacy budget."
    ),
    (
        "Cells whose noisy value was below the threshold k are suppressed: they are absent, not "
        "zero. Totals over released cells are therefore biased low for sparse areas."
    ),
    (
        "value ± ci95 covers the noise only; contribution bounding (caps per subscriber-day) can "
        "make the bounded value smaller than the raw count."
    ),
    (
        "pct_change compares released values with the mean released value over the baseline "
        "(post-processing); cells released in few baseline days (baseline_n) are less reliable."
    ),
)


def _field_type(dtype: pl.DataType) -> str:
    if dtype == pl.Date:
        return "date"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "number"
    return "string"


def table_schema(assembled: Assembled) -> dict[str, Any]:
    """The Frictionless Table Schema of the export's columns."""
    fields = []
    for name, dtype in assembled.data.schema.items():
        doc = COLUMN_DOCS.get(name)
        if doc is None and name.endswith("_name"):
            doc = f"Name of zone {name.removesuffix('_name')}."
        if doc is None:
            doc = f"Zone code ({name.replace('_', ' ')})."
        fields.append({"name": name, "type": _field_type(dtype), "description": doc})
    return {"fields": fields, "primaryKey": list(assembled.key_columns), "missingValues": [""]}


def release_entry(record: ReleaseRecord, role: str, days: list[str] | None) -> dict[str, Any]:
    """What the descriptor says about one release used."""
    m = record.metadata
    stated = m.to_dict()  # the objects below as metadata.json states them
    return {
        "role": role,
        "release_id": record.release_id,
        "ledger_entry_id": m.ledger_entry_id,
        "ledger_status": record.ledger_status,
        "value_column": record.value_column,
        "level": record.level,
        "period": stated["period"],
        "used": days,
        "privacy_unit": str(m.privacy_unit),
        "mechanism": m.mechanism,
        "epsilon": m.epsilon,
        "delta": m.delta,
        "rho": m.rho,
        "sensitivity": stated["sensitivity"],
        "scale": m.scale,
        "confidence": m.confidence,
        "ci95_half_width": m.ci95_half_width,
        "k": m.k,
        "cells_total": m.cells_total,
        "cells_released": m.cells_released,
        "cells_suppressed": m.cells_suppressed,
        "contribution_bounds": stated["contribution_bounds"],
        "windows_charged": [str(d) for d in m.scope.windows_charged],
        "code_version": m.code_version,
        "created_at": m.created_at,
        "files": stated["files"],
        "source": record.source,
    }


def mobility_block(assembled: Assembled) -> dict[str, Any]:
    """The ``mobility`` property: the privacy story of every number in the export."""
    r = assembled.request
    releases = [
        release_entry(x, "data", assembled.days_used.get(x.release_id)) for x in assembled.releases
    ]
    releases += [release_entry(x, "baseline", None) for x in assembled.baseline_releases]
    return {
        "indicator": str(r.indicator),
        "description": spec(r.indicator).description,
        "level": r.level,
        "period": {"start": str(r.start), "end": str(r.end)},
        "zones": list(r.zones) or None,
        "measures": list(r.measures),
        "baseline": (
            {"start": str(r.baseline.start), "end": str(r.baseline.end)} if r.baseline else None
        ),
        "privacy_units": sorted({x["privacy_unit"] for x in releases}),
        "epsilon": sorted({x["epsilon"] for x in releases}),
        "k": sorted({x["k"] for x in releases}),
        "cells_suppressed": sum(x["cells_suppressed"] for x in releases if x["role"] == "data"),
        "ledger_entry_ids": [x["ledger_entry_id"] for x in releases],
        "budget_spent_by_export": 0.0,
        "releases": releases,
        "notes": list(NOTES),
        "source": r.source,
    }


UNMEASURED_FORMATS = frozenset({"parquet"})
"""Formats whose bytes ``frictionless validate`` does not read as a stream (it opens Parquet with
pyarrow), so ``bytes`` and ``hash`` given in the resource fail as "actual is None"."""
INTEGRITY = "mobility:integrity"
"""Where size and hash of a file in :data:`UNMEASURED_FORMATS` are kept instead (a custom
property: checked by this project's tests and any ``sha256sum``, ignored by frictionless)."""


def descriptor(assembled: Assembled, data_file: Path, fmt: ExportFormat) -> dict[str, Any]:
    """The ``datapackage.json`` of an export whose data were written to ``data_file``."""
    r = assembled.request
    name = data_file.stem.lower().replace("_", "-")
    tabular = fmt == "csv"
    resource: dict[str, Any] = {
        "name": name,
        "path": data_file.name,
        "profile": "tabular-data-resource" if tabular else "data-resource",
        "format": fmt,
        "mediatype": MEDIA_TYPES[fmt],
        "schema": table_schema(assembled),
    }
    integrity = {"bytes": data_file.stat().st_size, "hash": f"sha256:{sha256_file(data_file)}"}
    if fmt in UNMEASURED_FORMATS:
        resource[INTEGRITY] = integrity
    else:
        resource.update(integrity)
    if fmt in ("csv", "geojson"):
        resource["encoding"] = "utf-8"
    return {
        "profile": "tabular-data-package" if tabular else "data-package",
        "name": name,
        "title": f"{r.indicator} at {r.level}, {r.period} (differentially private release)",
        "description": spec(r.indicator).description,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "keywords": ["mobility", "differential privacy", str(r.indicator)],
        "sources": [
            {"title": f"release {x.release_id}", "path": f"releases/{x.indicator}/{x.release_id}"}
            for x in dict.fromkeys((*assembled.releases, *assembled.baseline_releases))
        ],
        "resources": [resource],
        "mobility": mobility_block(assembled),
    }
