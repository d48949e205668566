"""Exports, charts and maps of *released* data: never staged data, never fresh noise, never budget.

Modules:
    catalog         -- :class:`ReleaseCatalog`: the published releases of a workspace, checked
                       against the ledger and their recorded hashes.
    request         -- :class:`ExportRequest`: indicator, period, level, zones, baseline.
    assemble        -- :func:`assemble`: released cells for a request, or
                       :class:`NotReleasedError` naming the ``mobility release`` command.
    formats         -- :func:`write_export`: CSV, Parquet, GeoJSON, xlsx + ``datapackage.json``.
    datapackage     -- the Frictionless descriptor with the privacy metadata of every release.
    series          -- daily totals with error bars, OD flows summed over a period.
    charts          -- PNG charts (OD map, time series) and :func:`make_demo_charts`.
    html_map        -- the self-contained HTML OD map.
    ledger_summary  -- a read-only summary of the ledger, for auditors.
    zones           -- zone names, nesting, polygons and centroids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.export.assemble import Assembled, NotReleasedError, assemble
from aggregation.export.catalog import ReleaseCatalog, ReleaseRecord
from aggregation.export.formats import ExportFiles, write_export
from aggregation.export.request import FORMATS, ExportFormat, ExportRequest

if TYPE_CHECKING:
    from pathlib import Path


def export(
    workspace_root: Path | str, request: ExportRequest, fmt: ExportFormat, out_dir: Path
) -> ExportFiles:
    """Assemble ``request`` from the workspace's releases and write it as ``fmt`` into
    ``out_dir`` with its ``datapackage.json``. Spends no budget; draws no noise."""
    catalog = ReleaseCatalog.open(workspace_root)
    return write_export(assemble(catalog, request), fmt, out_dir, catalog.geography)


__all__ = [
    "FORMATS",
    "Assembled",
    "ExportFiles",
    "ExportFormat",
    "ExportRequest",
    "NotReleasedError",
    "ReleaseCatalog",
    "ReleaseRecord",
    "assemble",
    "export",
    "write_export",
]
