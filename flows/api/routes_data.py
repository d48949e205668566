"""Released data: indicators, releases, release files, exports and charts (GET only)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response

from aggregation.export import (
    ExportRequest,
    ReleaseCatalog,
    ReleaseRecord,
    assemble,
    write_export,
)
from aggregation.export.datapackage import MEDIA_TYPES
from aggregation.export.series import DEFAULT_TOP, daily_series, default_baseline, flow_map
from flows.api.bodies import IndicatorSummary, ReleaseMetadata, ReleaseSummary
from flows.api.params import ChartQuery, Day, LevelQuery, chart_query, export_request
from flows.api.responses import errors, files
from flows.api.security import require, workspace_root
from schemas.indicators import Indicator
from schemas.indicators import spec as indicator_spec

router = APIRouter(prefix="/v1")

READER = [Depends(require("read_releases"))]
EXPORTER = [Depends(require("export"))]
ExportFormatQuery = Annotated[
    Literal["csv", "parquet", "geojson", "xlsx"], Query(description="File format of the data.")
]
RELEASE_MEDIA_TYPES = {fmt: MEDIA_TYPES[fmt] for fmt in ("csv", "parquet")}
SeriesIndicator = Literal["presence", "od_trips", "od_connections", "home_away", "event_counts"]


def _catalog(request: Request) -> ReleaseCatalog:
    """The releases the caller may see: those made under its agreements (issue 20)."""
    catalog = ReleaseCatalog.open(workspace_root(request))
    scope: tuple[str, ...] | None = getattr(request.state, "agreement_scope", None)
    return catalog if scope is None else catalog.under_agreements(scope)


def _file(content: bytes, name: str, media_type: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/indicators",
    summary="Indicators and what was released of each",
    dependencies=READER,
    responses=errors(),
    response_model=list[IndicatorSummary],
)
def indicators(request: Request) -> list[dict[str, Any]]:
    """Every indicator, its keys and value columns, and the days/levels released."""
    catalog = _catalog(request)
    found = []
    for ind in Indicator:
        s, records = indicator_spec(ind), catalog.of(ind)
        found.append({
            "indicator": ind.value, "description": s.description,
            "key_columns": list(s.key_columns), "value_columns": list(s.value_columns),
            "daily": s.daily, "releases": len(records),
            "levels": sorted({r.level for r in records}),
            "first_day": str(min(r.period.start for r in records)) if records else None,
            "last_day": str(max(r.period.end for r in records)) if records else None,
        })  # fmt: skip
    return found


@router.get(
    "/releases",
    summary="List releases",
    dependencies=READER,
    responses=errors(422),
    response_model=list[ReleaseSummary],
)
def releases(
    request: Request,
    indicator: Annotated[Indicator | None, Query(description="Only this indicator.")] = None,
    level: Annotated[LevelQuery | None, Query(description="Only this level.")] = None,
    start: Annotated[Day | None, Query(alias="from", description="Ending on or after.")] = None,
    end: Annotated[Day | None, Query(alias="to", description="Starting on or before.")] = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Published releases, oldest first, optionally filtered."""
    return [
        r.summary()
        for r in _catalog(request).records
        if (indicator is None or r.indicator == indicator)
        and (level is None or r.level == level)
        and (start is None or r.period.end >= start)
        and (end is None or r.period.start <= end)
    ]


def _release(request: Request, indicator: Indicator, release_id: str) -> ReleaseRecord:
    record = _catalog(request).get(indicator, release_id)
    if record is None:
        msg = (
            f"No release {release_id!r} of {indicator.value}; list them with "
            f"GET /v1/releases?indicator={indicator.value}."
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=msg)
    return record


@router.get(
    "/releases/{indicator}/{release_id}",
    summary="One release's metadata",
    dependencies=READER,
    responses=errors(404, 422, 500),
    response_model=ReleaseMetadata,
)
def release_metadata(request: Request, indicator: Indicator, release_id: str) -> dict[str, Any]:
    """The release's ``metadata.json`` and its ledger status."""
    record = _release(request, indicator, release_id)
    return {"ledger_status": record.ledger_status, "metadata": record.metadata.to_dict()}


@router.get(
    "/releases/{indicator}/{release_id}/data",
    summary="One release's data file",
    dependencies=READER,
    response_class=Response,
    responses={
        **files(
            {**RELEASE_MEDIA_TYPES, "json": "application/json"},
            "The data as CSV (default), Parquet, or JSON rows (`format=json`).",
        ),
        **errors(404, 422, 500),
    },
)
def release_data(
    request: Request,
    indicator: Indicator,
    release_id: str,
    fmt: Annotated[Literal["parquet", "csv", "json"], Query(alias="format")] = "csv",
) -> Response:
    """The release's own ``data.parquet`` or ``data.csv`` (hash-checked), or its rows as JSON."""
    record = _release(request, indicator, release_id)
    if fmt == "json":
        rows = record.data().with_columns(pl.col(pl.Date).cast(pl.String)).to_dicts()
        return Response(json.dumps(rows), media_type="application/json")
    path = record.path(f"data.{fmt}")
    name = f"{indicator.value}_{release_id}.{fmt}"
    return _file(path.read_bytes(), name, RELEASE_MEDIA_TYPES[fmt])


@router.get(
    "/exports/{indicator}",
    summary="Export released data",
    dependencies=EXPORTER,
    response_class=Response,
    responses={
        **files(MEDIA_TYPES, "The data file in the format asked for (`format`)."),
        **errors(404, 422, 500),
    },
)
def export_file(
    request: Request,
    export: Annotated[ExportRequest, Depends(export_request)],
    fmt: Annotated[ExportFormatQuery, Query(alias="format")] = "csv",
) -> Response:
    """Released cells for a period, level and zones, in csv, parquet, geojson or xlsx.

    Spends no budget. Its datapackage.json is at ``/v1/exports/{indicator}/datapackage``.
    """
    catalog = _catalog(request)
    with tempfile.TemporaryDirectory(prefix="mobility-export-") as tmp:
        files = write_export(assemble(catalog, export), fmt, Path(tmp), catalog.geography)
        return _file(files.data.read_bytes(), files.data.name, MEDIA_TYPES[fmt])


@router.get(
    "/exports/{indicator}/datapackage",
    summary="The datapackage.json of an export",
    dependencies=EXPORTER,
    responses=errors(404, 422, 500),
)
def export_descriptor(
    request: Request,
    export: Annotated[ExportRequest, Depends(export_request)],
    fmt: Annotated[ExportFormatQuery, Query(alias="format")] = "csv",
) -> dict[str, Any]:
    """The Frictionless descriptor (ε, k, privacy unit, CI, suppressed cells, ledger ids)."""
    catalog = _catalog(request)
    with tempfile.TemporaryDirectory(prefix="mobility-export-") as tmp:
        files = write_export(assemble(catalog, export), fmt, Path(tmp), catalog.geography)
        document: dict[str, Any] = json.loads(files.descriptor.read_text(encoding="utf-8"))
    return document


Chart = Annotated[ChartQuery, Depends(chart_query)]


@router.get(
    "/charts/od-map",
    summary="OD flow map (PNG or self-contained HTML)",
    dependencies=EXPORTER,
    response_class=Response,
    responses={
        **files({"png": "image/png", "html": "text/html"}, "The map (`format=png` or `html`)."),
        **errors(404, 422, 500),
    },
)
def od_map(
    request: Request,
    chart: Chart,
    top: Annotated[int, Query(ge=1, le=2000, description="The largest N flows.")] = DEFAULT_TOP,
    fmt: Annotated[Literal["png", "html"], Query(alias="format")] = "png",
) -> Response:
    """Released od_trips of a day or a period, flows summed over its days."""
    from aggregation.export.charts import od_map_png  # noqa: PLC0415 - matplotlib is slow
    from aggregation.export.html_map import od_map_html  # noqa: PLC0415

    period, level = chart.period, chart.level
    fmap = flow_map(_catalog(request), period, level=level, zones=chart.zones, top=top)
    with tempfile.TemporaryDirectory(prefix="mobility-chart-") as tmp:
        path = Path(tmp) / f"od_map_{level}_{period.start}_{period.end}.{fmt}"
        if fmt == "png":
            od_map_png(fmap, path)
            return _file(path.read_bytes(), path.name, "image/png")
        od_map_html(fmap, path)
        return Response(path.read_bytes(), media_type="text/html")


@router.get(
    "/charts/timeseries",
    summary="Daily totals with 95 % bands against a baseline (PNG)",
    dependencies=EXPORTER,
    response_class=Response,
    responses={**files({"png": "image/png"}, "The chart."), **errors(404, 422, 500)},
)
def timeseries(
    request: Request,
    chart: Chart,
    indicator: Annotated[
        list[SeriesIndicator] | None,
        Query(description="Repeat for several panels [default: presence and od_trips]."),
    ] = None,
) -> Response:
    """Presence and trips (or other daily counts) over time; baseline: first third by default."""
    from aggregation.export.charts import timeseries_png  # noqa: PLC0415 - matplotlib is slow

    period = chart.period
    baseline = chart.baseline or default_baseline(period)
    catalog = _catalog(request)
    series = [
        daily_series(catalog, ind, period, level=chart.level, zones=chart.zones,
                     baseline=baseline)
        for ind in indicator or ["presence", "od_trips"]
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mobility-chart-") as tmp:
        path = timeseries_png(series, Path(tmp) / f"timeseries_{period.start}_{period.end}.png")
        return _file(path.read_bytes(), path.name, "image/png")
