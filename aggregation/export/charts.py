"""Charts of released data (PNG, matplotlib's Agg canvas; no display and no pyplot state).

- :func:`od_map_png`: an OD flow map of a day or a period (zone outlines drawn from the zones'
  polygons; curved arrows from origin to destination, width and colour by trips).
- :func:`timeseries_png`: presence and trips over time with 95 % bands against a baseline.
- :func:`make_demo_charts`: both, plus the HTML map, from whatever a workspace has released.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

import matplotlib as mpl
from matplotlib.collections import PatchCollection
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.patches import Polygon as PolygonPatch

from aggregation.export.catalog import ReleaseCatalog
from aggregation.export.drawing import (
    Projection,
    busiest_region,
    legend_values,
    rings,
    zone_traffic,
)
from aggregation.export.estimates import mean_distance_series
from aggregation.export.html_map import od_map_html
from aggregation.export.series import (
    DEFAULT_TOP,
    daily_series,
    default_baseline,
    flow_map,
)
from schemas.indicators import Indicator, Period

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.axes import Axes

    from aggregation.export.catalog import ReleaseRecord
    from aggregation.export.series import FlowMap, Series
    from aggregation.export.zones import Zone
    from schemas.geography import AdminLevel

DPI = 150
_LABELLED = 6
_COLORMAP = "viridis"


def privacy_caption(releases: tuple[ReleaseRecord, ...]) -> str:
    """One line stating ε, k, privacy unit and suppression of the releases drawn."""
    if not releases:
        return "No releases."
    eps = sorted({r.metadata.epsilon for r in releases})
    ks = sorted({r.metadata.k for r in releases})
    bars = sorted({r.metadata.reliability for r in releases})
    units = sorted({str(r.metadata.privacy_unit) for r in releases})
    suppressed = sum(r.metadata.cells_suppressed for r in releases)
    return (
        f"Differentially private releases ({len(releases)}): ε = {', '.join(f'{e:g}' for e in eps)}"
        f" per {', '.join(units)}; cells with noisy value < k = {', '.join(map(str, ks))}"
        + (f" or < {', '.join(f'{b:g}' for b in bars)} × ci95" if any(bars) else "")
        + f" suppressed ({suppressed:,} cells), not drawn."
    )


def _draw_zones(ax: Axes, fmap: FlowMap) -> None:
    selected = set(fmap.selected) if fmap.selected else set()
    patches, colours = [], []
    for zone in fmap.zones:
        for ring in rings(zone.geometry):
            patches.append(PolygonPatch(ring, closed=True))
            colours.append("#dbe7f0" if zone.zone_id in selected else "#f2efe9")
    ax.add_collection(
        PatchCollection(patches, facecolor=colours, edgecolor="#8c8c8c", linewidth=0.4)
    )


def _flow_width(total: float, top: float) -> float:
    return 0.4 + 5.0 * total / top


def _draw_flows(ax: Axes, fmap: FlowMap, norm: Normalize, cmap: Colormap, top: float) -> None:
    centroids = {z.zone_id: z.centroid for z in fmap.zones}
    flows = fmap.flows.sort("total")  # largest drawn last, on top
    for origin, destination, total in flows.select("origin", "destination", "total").rows():
        if origin not in centroids or destination not in centroids:
            continue
        ax.add_patch(
            FancyArrowPatch(
                centroids[origin], centroids[destination], connectionstyle="arc3,rad=0.18",
                arrowstyle="-|>", mutation_scale=6 + 6 * total / top,
                linewidth=_flow_width(total, top), color=cmap(norm(total)), alpha=0.85,
                shrinkA=2, shrinkB=2,
            )
        )  # fmt: skip


def _frame(ax: Axes, box: Projection) -> None:
    ax.set_xlim(box.min_lon, box.max_lon)
    ax.set_ylim(box.min_lat, box.max_lat)
    ax.set_aspect(box.aspect)
    ax.set_xticks([])
    ax.set_yticks([])


def _width_legend(ax: Axes, norm: Normalize, cmap: Colormap, top: float) -> None:
    handles = [
        Line2D([], [], linewidth=_flow_width(v, top), color=cmap(norm(v)), label=f"{v:,.6g}")
        for v in legend_values(top)
    ]
    ax.legend(handles=handles, title="trips (width, colour)", loc="best", fontsize=7,
              title_fontsize=7, framealpha=0.9)  # fmt: skip


def od_map_png(fmap: FlowMap, path: Path, *, title: str | None = None) -> Path:
    """Draw ``fmap`` as a PNG at ``path``: the map with a legend of widths and colours, and, when
    the busiest flows crowd a small region, a zoom on it beside the map with its zones named."""
    flows = fmap.flows.select("origin", "destination", "total").rows()
    region = busiest_region(fmap.zones, flows)
    fig = Figure(figsize=(15, 8.5) if region else (9, 8.5), layout="constrained")
    zoom: Axes | None = None
    if region:
        ax, zoom = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    else:
        ax = fig.add_subplot()
    top = float(max(fmap.flows["total"].to_list(), default=1) or 1)
    norm, cmap = Normalize(vmin=0, vmax=top), mpl.colormaps[_COLORMAP]
    for target, box in ((ax, Projection.around(fmap.zones)), (zoom, region)):
        if target is None or box is None:
            continue
        _draw_zones(target, fmap)
        _draw_flows(target, fmap, norm, cmap, top)
        _frame(target, box)
    for spine in ax.spines.values():
        spine.set_visible(False)
    _label_busiest(ax, fmap, outside=region)
    _width_legend(ax, norm, cmap, top)
    if zoom is not None and region is not None:
        ax.add_patch(
            Rectangle((region.min_lon, region.min_lat), region.max_lon - region.min_lon,
                      region.max_lat - region.min_lat, fill=False, linestyle="--",
                      linewidth=1.0, edgecolor="#d62728")
        )  # fmt: skip
        _label_inside(zoom, fmap, region)
        zoom.set_title("Zoom on the busiest region (dashed box)", fontsize=10)
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap),
                 ax=[a for a in (ax, zoom) if a is not None], shrink=0.6,
                 label="trips (sum of released daily values)")  # fmt: skip
    fig.suptitle(
        title
        or f"Trips between {fmap.level} zones, {fmap.period} — {fmap.flows.height} largest flows"
    )
    caption = privacy_caption(fmap.releases)
    fig.supxlabel(textwrap.fill(caption, 210 if region else 125), fontsize=7, color="#444444")
    fig.savefig(path, dpi=DPI)
    return path


def _traffic(fmap: FlowMap) -> dict[str, float]:
    return zone_traffic(fmap.flows.select("origin", "destination", "total").rows())


def _label_busiest(ax: Axes, fmap: FlowMap, *, outside: Projection | None) -> None:
    """Name the busiest zones on the map (those in the zoomed region are named in the zoom)."""
    zones = {z.zone_id: z for z in fmap.zones}
    shown = 0
    for zone_id, _ in sorted(_traffic(fmap).items(), key=lambda kv: -kv[1]):
        zone = zones.get(zone_id)
        if zone is None or (outside is not None and outside.contains(*zone.centroid)):
            continue
        _name(ax, zone)
        shown += 1
        if shown == _LABELLED:
            break


def _label_inside(ax: Axes, fmap: FlowMap, region: Projection) -> None:
    """Name every zone of the zoom that a drawn flow starts or ends in."""
    traffic = _traffic(fmap)
    for zone in fmap.zones:
        if zone.zone_id in traffic and region.contains(*zone.centroid):
            _name(ax, zone)


def _name(ax: Axes, zone: Zone) -> None:
    x, y = zone.centroid
    ax.plot([x], [y], "o", color="#333333", markersize=3)
    box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7}
    ax.annotate(zone.name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8,
                bbox=box)  # fmt: skip


def _series_panel(ax: Axes, series: Series) -> None:
    d = series.daily
    days = d["date"].to_list()
    first = days[0] if days else None
    x = [float((day - first).days) for day in days] if first else []
    total = [float(t) for t in d["total"].to_list()]
    ci = [float(c) for c in d["ci95"].to_list()]
    low = [t - c for t, c in zip(total, ci, strict=True)]
    high = [t + c for t, c in zip(total, ci, strict=True)]
    ax.fill_between(x, low, high, alpha=0.25, color="#1f77b4", label="95 % interval (noise)")
    ax.plot(x, total, "o-", color="#1f77b4", label=f"released total ({series.totals_from})")
    b = series.baseline
    if b is not None and first is not None:
        ax.axhline(b.mean, color="#d62728", linestyle="--", linewidth=1,
                   label=f"baseline mean {b.period}")  # fmt: skip
        ax.axhspan(b.mean - b.ci95, b.mean + b.ci95, color="#d62728", alpha=0.08)
        ax.axvspan((b.period.start - first).days - 0.5, (b.period.end - first).days + 0.5,
                   color="#999999", alpha=0.12)  # fmt: skip
        if total and b.mean > 0:
            change = 100 * (total[-1] - b.mean) / b.mean
            spread = d["pct_change_ci95"].to_list()[-1] if "pct_change_ci95" in d.columns else None
            within = f" ± {spread:.1f}" if spread is not None else ""
            ax.annotate(f"{change:+.1f}{within} % vs baseline", (x[-1], total[-1]),
                        xytext=(-10, 10), textcoords="offset points", ha="right",
                        fontsize=8)  # fmt: skip
    where = ", ".join(series.zones) if series.zones else f"all {series.level} zones"
    labels = {
        "presence": "present subscribers",
        "od_trips": "trips",
        "mobility_distance": "mean km per subscriber-day",
    }
    label = labels.get(str(series.indicator), str(series.indicator))
    ax.set_title(f"{series.indicator}: {label} per day ({where})", fontsize=10)
    ax.set_ylabel(label)
    step = max(1, math.ceil(len(days) / 10))
    ax.set_xticks(x[::step], [str(day) for day in days[::step]], rotation=30)
    ax.set_xlim(-0.5, (x[-1] if x else 0) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def timeseries_png(series: list[Series], path: Path) -> Path:
    """One panel per series (daily totals with 95 % bands and the baseline), as a PNG."""
    fig = Figure(figsize=(9, 3.2 * max(len(series), 1) + 0.6), layout="constrained")
    axes = fig.subplots(max(len(series), 1), 1, squeeze=False)[:, 0]
    for ax, s in zip(axes, series, strict=False):
        _series_panel(ax, s)
    releases = tuple(r for s in series for r in s.releases)
    sources = {s.totals_from for s in series}
    if sources == {"margins"}:
        note = (
            " Totals are the releases' margins: every noisy cell summed, suppressed ones "
            "included (unbiased, no budget)."
        )
    else:
        note = " Totals sum published cells only (biased low where cells are suppressed)."
    caption = privacy_caption(releases) + note
    fig.supxlabel(textwrap.fill(caption, 125), fontsize=7, color="#444444")
    fig.savefig(path, dpi=DPI)
    return path


def _released_days(catalog: ReleaseCatalog, indicator: Indicator, level: str) -> list[Period]:
    """Runs of consecutive days released for ``indicator`` at ``level`` (from CDR, which the
    charts draw)."""
    released = [r for r in catalog.of(indicator) if r.level == level and r.source == "cdr"]
    days = sorted({d for r in released for d in r.period.days()})
    runs: list[Period] = []
    for day in days:
        if runs and (day - runs[-1].end).days == 1:
            runs[-1] = Period(runs[-1].start, day)
        else:
            runs.append(Period.day(day))
    return runs


def make_demo_charts(
    workspace_root: Path | str, out_dir: Path, *, level: AdminLevel = "admin2"
) -> list[Path]:
    """Draw the OD map (PNG and HTML) and the time series from what the workspace released.

    Uses the longest run of consecutive days released for each indicator at ``level``; draws
    nothing for an indicator never released. Reads release files only; spends no budget.
    """
    catalog = ReleaseCatalog.open(workspace_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    od_runs = _released_days(catalog, Indicator.OD_TRIPS, level)
    if od_runs:
        period = max(od_runs, key=lambda p: (p.n_days, p.end))
        fmap = flow_map(catalog, period, level=level, top=DEFAULT_TOP)
        made.append(od_map_png(fmap, out_dir / "od_map.png"))
        made.append(od_map_html(fmap, out_dir / "od_map.html"))
    series = []
    for indicator in (Indicator.PRESENCE, Indicator.OD_TRIPS):
        runs = _released_days(catalog, indicator, level)
        if runs:
            period = max(runs, key=lambda p: (p.n_days, p.end))
            series.append(
                daily_series(catalog, indicator, period, level=level,
                             baseline=default_baseline(period))
            )  # fmt: skip
    distance_runs = _released_days(catalog, Indicator.MOBILITY_DISTANCE, level)
    if distance_runs:
        period = max(distance_runs, key=lambda p: (p.n_days, p.end))
        found = mean_distance_series(catalog, period, level=level,
                                     baseline=default_baseline(period))  # fmt: skip
        if found.daily.height:
            series.append(found)
    if series:
        made.append(timeseries_png(series, out_dir / "timeseries.png"))
    return made
