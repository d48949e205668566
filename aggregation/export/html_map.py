"""A self-contained HTML OD flow map: inline SVG, inline CSS, a few lines of inline script.

Nothing is fetched from the network (no tiles, no CDN): zone outlines are drawn from the zones'
own polygons. Each flow is a curved arrow with a tooltip; a slider hides flows below a value; a
table lists the largest flows; the privacy parameters of every release drawn are stated.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import matplotlib as mpl
from matplotlib.colors import Normalize, to_hex

from aggregation.export.drawing import (
    Projection,
    busiest_region,
    curve_control,
    legend_values,
    rings,
)

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.export.series import FlowMap

SIZE = 900.0
"""Width of the SVG drawing, in SVG units."""
_TABLE_ROWS = 25
_NAME_CHAR = 6.5
"""Width of a character of a zone name on the map, in SVG units (11-unit font)."""
_SIMPLIFY_UNITS = 0.6
"""Zone outlines are simplified to this many SVG units (less than a pixel)."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 1000px; }
svg { background: #f6f9fb; border: 1px solid #ccd; width: 100%; height: auto; }
.zone { fill: #f2efe9; stroke: #8c8c8c; stroke-width: 0.6; }
.zone.selected { fill: #dbe7f0; }
.zone:hover { fill: #e6e0d4; }
.flow { fill: none; stroke-linecap: round; opacity: 0.85; }
.flow:hover { opacity: 1; stroke: #d62728; }
table { border-collapse: collapse; font-size: 0.85rem; margin-top: 1rem; }
td, th { border-bottom: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: right; }
td:nth-child(-n+2), th:nth-child(-n+2) { text-align: left; }
.note { font-size: 0.8rem; color: #555; }
.name { font-size: 11px; fill: #333; text-anchor: middle; pointer-events: none;
        paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-opacity: 0.7; }
.zoom-box { fill: none; stroke: #d62728; stroke-width: 1.5; stroke-dasharray: 6 4; }
.legend { margin: 0.5rem 0; max-width: 560px; }
.legend svg { background: none; border: none; }
.legend text { font-size: 11px; fill: #333; }
.legend figcaption { font-size: 0.8rem; color: #555; }
"""

_SCRIPT = """
const slider = document.getElementById('min');
const shown = document.getElementById('min-value');
function update() {
  const min = Number(slider.value);
  shown.textContent = min.toLocaleString();
  for (const path of document.querySelectorAll('path.flow')) {
    path.style.display = Number(path.dataset.value) >= min ? '' : 'none';
  }
}
slider.addEventListener('input', update);
update();
"""


def _path(points: list[tuple[float, float]]) -> str:
    head, *rest = points
    return f"M{head[0]:.1f},{head[1]:.1f}" + "".join(f"L{x:.1f},{y:.1f}" for x, y in rest) + "Z"


def _flow_width(total: float, top: float) -> float:
    return 0.8 + 7.0 * total / top


def _svg(fmap: FlowMap, proj: Projection, top: float, *, label: str) -> str:
    """The zones and flows seen through ``proj`` (the whole map, or a zoom), zones named where
    their name fits."""
    height = SIZE * proj.height / proj.width
    scale = SIZE / proj.width  # SVG units per projected degree
    selected = set(fmap.selected)
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE:.0f} {height:.0f}" '
            f'role="img" aria-label="{html.escape(label)}">'
        ),
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="4" '
            'markerHeight="4" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
            'fill="context-stroke"/></marker></defs>'
        ),
    ]
    names = []
    for zone in fmap.zones:
        cls = "zone selected" if zone.zone_id in selected else "zone"
        for ring in rings(zone.geometry, _SIMPLIFY_UNITS * proj.width / SIZE):
            d = _path([proj.to_svg(x, y, SIZE) for x, y in ring])
            parts.append(
                f'<path class="{cls}" d="{d}"><title>{html.escape(zone.name)} '
                f"({html.escape(zone.zone_id)})</title></path>"
            )
        if zone.geometry is not None:
            x0, _, x1, _ = zone.geometry.bounds
            if (x1 - x0) / proj.aspect * scale >= _NAME_CHAR * (len(zone.name) + 1):
                x, y = proj.to_svg(*zone.centroid, SIZE)
                names.append(
                    f'<text class="name" x="{x:.1f}" y="{y:.1f}">{html.escape(zone.name)}</text>'
                )
    centroids = {z.zone_id: proj.to_svg(*z.centroid, SIZE) for z in fmap.zones}
    norm, cmap = Normalize(vmin=0, vmax=top), mpl.colormaps["viridis"]
    for row in fmap.flows.sort("total").iter_rows(named=True):
        a, b = centroids.get(row["origin"]), centroids.get(row["destination"])
        if a is None or b is None:
            continue
        cx, cy = curve_control(a, b)
        tip = (
            f"{row['origin_name']} → {row['destination_name']}: {row['total']:,} trips "
            f"(±{row['ci95']:.0f}, {row['cells']} day(s) released)"
        )
        parts.append(
            f'<path class="flow" data-value="{row["total"]}" '
            f'd="M{a[0]:.1f},{a[1]:.1f}Q{cx:.1f},{cy:.1f} {b[0]:.1f},{b[1]:.1f}" '
            f'stroke="{to_hex(cmap(norm(row["total"])))}" '
            f'stroke-width="{_flow_width(row["total"], top):.2f}" marker-end="url(#arrow)">'
            f"<title>{html.escape(tip)}</title></path>"
        )
    parts += [*names, "</svg>"]
    return "\n".join(parts)


def _box(proj: Projection, region: Projection) -> str:
    """The zoomed region, as a dashed box on the whole map."""
    x0, y0 = proj.to_svg(region.min_lon, region.max_lat, SIZE)
    x1, y1 = proj.to_svg(region.max_lon, region.min_lat, SIZE)
    return (
        f'<rect class="zoom-box" x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" '
        f'height="{y1 - y0:.1f}"/>'
    )


def _legend(top: float) -> str:
    """The colour scale and the widths of flows, in trips."""
    cmap = mpl.colormaps["viridis"]
    stops = "".join(
        f'<stop offset="{i / 10:.1f}" stop-color="{to_hex(cmap(i / 10))}"/>' for i in range(11)
    )
    parts = [
        (
            '<figure class="legend" id="legend"><svg xmlns="http://www.w3.org/2000/svg" '
            'viewBox="0 0 520 64" role="img" aria-label="Legend: colour and width of a flow">'
        ),
        f'<defs><linearGradient id="scale">{stops}</linearGradient></defs>',
        '<text x="0" y="12">colour: trips</text>',
        '<rect x="0" y="18" width="220" height="12" fill="url(#scale)"/>',
    ]
    for value in (0.0, *legend_values(top)[-2:]):  # 0, about half, and the largest (rounded)
        x = 220 * value / top if top else 0.0
        anchor = "start" if value == 0 else "end" if x > 200 else "middle"  # noqa: PLR2004
        parts.append(f'<text x="{x:.0f}" y="46" text-anchor="{anchor}">{value:,.6g}</text>')
    parts.append('<text x="260" y="12">width: trips</text>')
    x = 260.0
    for value in legend_values(top):
        colour = to_hex(cmap(value / top if top else 0))
        parts.append(
            f'<line x1="{x:.0f}" y1="26" x2="{x + 44:.0f}" y2="26" stroke="{colour}" '
            f'stroke-width="{_flow_width(value, top):.2f}" stroke-linecap="round"/>'
            f'<text x="{x + 22:.0f}" y="46" text-anchor="middle">{value:,.6g}</text>'
        )
        x += 86
    parts.append(
        "</svg><figcaption>Each arrow is the released trips from one zone to another, summed "
        "over the period: its colour and width grow with the trips.</figcaption></figure>"
    )
    return "".join(parts)


def _table(fmap: FlowMap) -> str:
    rows = [
        "<tr><th>origin</th><th>destination</th><th>trips</th><th>± 95 %</th><th>days</th></tr>"
    ]
    rows += [
        f"<tr><td>{html.escape(str(r['origin_name']))} ({html.escape(r['origin'])})</td>"
        f"<td>{html.escape(str(r['destination_name']))} ({html.escape(r['destination'])})"
        f"</td><td>{r['total']:,}</td><td>{r['ci95']:.0f}</td><td>{r['cells']}</td></tr>"
        for r in fmap.flows.head(_TABLE_ROWS).iter_rows(named=True)
    ]
    return "<table>" + "".join(rows) + "</table>"


def _releases(fmap: FlowMap) -> str:
    items = []
    for r in fmap.releases:
        m = r.metadata
        items.append(
            f"<li><code>{html.escape(r.release_id)}</code> {html.escape(str(m.period.start))}"
            f"..{html.escape(str(m.period.end))}: ε = {m.epsilon:g} per "
            f"{html.escape(str(m.privacy_unit))}, {html.escape(m.mechanism)} noise, "
            f"±{m.ci95_half_width} per cell (95 %), k = {m.k}, "
            f"{m.cells_suppressed:,} of {m.cells_total:,} cells suppressed</li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def od_map_html(fmap: FlowMap, path: Path) -> Path:
    """Write ``fmap`` as one self-contained HTML file at ``path``."""
    proj = Projection.around(fmap.zones)
    top = float(max(fmap.flows["total"].to_list(), default=1) or 1)
    region = busiest_region(fmap.zones, fmap.flows.select("origin", "destination", "total").rows())
    whole = _svg(fmap, proj, top, label="OD flow map")
    zoom = ""
    if region is not None:
        whole = whole.replace("</svg>", _box(proj, region) + "</svg>")
        zoom = (
            "<h2>Zoom on the busiest region</h2><p>The dashed box on the map above, enlarged: "
            "its short flows crowd each other at the scale of the whole country.</p>"
            + _svg(fmap, region, top, label="OD flow map, zoom on the busiest region")
        )
    title = f"Trips between {fmap.level} zones, {fmap.period}"
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Released <code>od_trips</code> values summed over the days of the period; the
{fmap.flows.height} largest flows are drawn. Hover a flow or a zone for details.</p>
<p><label>Hide flows below <input id="min" type="range" min="0" max="{top:.0f}" value="0">
<span id="min-value">0</span> trips</label></p>
{_legend(top)}
{whole}
{zoom}
{_table(fmap)}
<h2>Privacy</h2>
<p class="note">Every number comes from a differentially private release, paid for in the privacy
ledger; this map spent no budget. Cells whose noisy value was below k were suppressed and are not
drawn, so small flows are missing and sums over days are biased low. ± is the 95 % interval of the
noise in the sum.</p>
{_releases(fmap)}
<script>{_SCRIPT}</script>
</body></html>
"""
    path.write_text(document, encoding="utf-8")
    return path
