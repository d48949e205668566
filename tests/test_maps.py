"""Maps and workbooks analysts can read: legends, zone names, a zoom on the dense region, a
frozen and filtered header. The HTML map is rendered in a real headless browser when one is
installed (Debian's ``chromium``; ``.ci/run`` installs it), else parsed."""

from __future__ import annotations

import datetime as dt
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import polars as pl
import pytest
import shapely
from openpyxl import load_workbook  # type: ignore[import-untyped]

from aggregation.export import ExportRequest, export
from aggregation.export.charts import od_map_png
from aggregation.export.drawing import busiest_region, legend_values
from aggregation.export.html_map import od_map_html
from aggregation.export.series import FlowMap
from aggregation.export.zones import Zone
from schemas.indicators import Indicator, Period
from tests.conftest import START
from tests.test_export import released  # noqa: F401 - fixture reused

if TYPE_CHECKING:
    from pathlib import Path

GRID = 10
"""A country of 10 × 10 one-degree square zones; the city is the four zones at its corner."""
CITY = ["Z00", "Z01", "Z10", "Z11"]


def _zone(i: int, j: int) -> Zone:
    name = "Metropolis Centre" if (i, j) == (0, 0) else f"Rural district {i}-{j}"
    return Zone(
        zone_id=f"Z{i}{j}", name=name, level="admin2", parent_id=None,
        centroid=(i + 0.5, j + 0.5), geometry=shapely.box(i, j, i + 1, j + 1),
    )  # fmt: skip


ZONES = tuple(_zone(i, j) for i in range(GRID) for j in range(GRID))
NAMES = {z.zone_id: z.name for z in ZONES}


def _flows(pairs: list[tuple[str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "origin": [p[0] for p in pairs],
            "destination": [p[1] for p in pairs],
            "origin_name": [NAMES[p[0]] for p in pairs],
            "destination_name": [NAMES[p[1]] for p in pairs],
            "total": [p[2] for p in pairs],
            "ci95": [12.0] * len(pairs),
            "cells": [3] * len(pairs),
        }
    ).sort("total", descending=True)


CITY_FLOWS = [(a, b, 900 - 50 * n) for n, (a, b) in enumerate(
    (a, b) for a in CITY for b in CITY if a != b
)] + [("Z00", "Z99", 120), ("Z59", "Z95", 60)]  # fmt: skip
SPREAD_FLOWS = [("Z00", "Z99", 300), ("Z90", "Z09", 200), ("Z55", "Z00", 100)]


def _map(pairs: list[tuple[str, str, int]]) -> FlowMap:
    period = Period(dt.date(2026, 3, 2), dt.date(2026, 3, 4))
    return FlowMap(period, "admin2", ZONES, (), _flows(pairs), ())


def test_the_busiest_region_frames_a_dense_city_and_nothing_when_flows_are_spread() -> None:
    rows = _flows(CITY_FLOWS).select("origin", "destination", "total").rows()
    region = busiest_region(ZONES, rows)
    assert region is not None
    for zone in CITY:
        assert region.contains(*next(z.centroid for z in ZONES if z.zone_id == zone))
    assert not region.contains(9.5, 9.5)
    assert region.max_lon - region.min_lon < 0.2 * GRID
    spread = _flows(SPREAD_FLOWS).select("origin", "destination", "total").rows()
    assert busiest_region(ZONES, spread) is None
    assert busiest_region(ZONES, []) is None


def test_legend_values_are_round_and_never_above_the_largest_flow() -> None:
    assert legend_values(920) == [230, 460, 920]
    assert legend_values(123_456) == [31_000, 62_000, 120_000]
    assert all(v <= 17 for v in legend_values(17))
    assert legend_values(0) == [0]


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_the_png_map_puts_a_zoom_beside_a_dense_city(tmp_path: Path) -> None:
    dense = _png_size(od_map_png(_map(CITY_FLOWS), tmp_path / "dense.png"))
    spread = _png_size(od_map_png(_map(SPREAD_FLOWS), tmp_path / "spread.png"))
    assert dense[0] > 1.5 * spread[0]  # a second panel, the zoom
    assert dense[1] == spread[1]


class _Page(HTMLParser):
    """Collects what the map test looks for: the legend, zone names, maps and the zoom box."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.legend_texts: list[str] = []
        self.names: list[str] = []
        self.maps: list[str] = []
        self.zoom_boxes = 0
        self.width_samples = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.stack.append((tag, a))
        if tag == "svg" and a.get("aria-label", "").startswith("OD flow map"):
            self.maps.append(a["aria-label"])
        if tag == "rect" and "zoom-box" in a.get("class", ""):
            self.zoom_boxes += 1
        if tag == "line" and self._in_legend():
            self.width_samples += 1

    def handle_endtag(self, tag: str) -> None:
        if any(t == tag for t, _ in self.stack):
            while self.stack.pop()[0] != tag:
                pass

    def _in_legend(self) -> bool:
        return any(t == "figure" and a.get("id") == "legend" for t, a in self.stack)

    def handle_data(self, data: str) -> None:
        if not self.stack or self.stack[-1][0] != "text" or not data.strip():
            return
        if self._in_legend():
            self.legend_texts.append(data.strip())
        elif "name" in self.stack[-1][1].get("class", ""):
            self.names.append(data.strip())


def _rendered(page: Path, tmp_path: Path) -> str:
    """The page's DOM after a headless Chromium loaded it (or its source without a browser),
    and a screenshot beside it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return page.read_text(encoding="utf-8")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    subprocess.run(
        [*flags, f"--screenshot={tmp_path / 'shot.png'}", "--window-size=1100,1400",
         page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert (tmp_path / "shot.png").stat().st_size > 10_000
    out = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    return out.stdout


def test_the_html_map_has_a_legend_zone_names_and_a_zoom(tmp_path: Path) -> None:
    page = od_map_html(_map(CITY_FLOWS), tmp_path / "map.html")
    found = _Page()
    found.feed(_rendered(page, tmp_path))
    assert "colour: trips" in found.legend_texts
    assert "width: trips" in found.legend_texts
    assert {"0", "450", "900"} <= set(found.legend_texts)  # the colour scale's ticks, rounded
    assert found.width_samples == len(legend_values(900)) == 3
    assert {"220", "450", "900"} <= set(found.legend_texts)  # the widths shown
    assert found.maps == ["OD flow map", "OD flow map, zoom on the busiest region"]
    assert found.zoom_boxes == 1
    # Names are written where they fit: the short city name on the map, the long rural names
    # only in the zoom, where a one-degree zone is wide.
    assert "Metropolis Centre" in found.names
    assert "Rural district 0-1" in found.names

    spread = _Page()
    spread.feed(_rendered(od_map_html(_map(SPREAD_FLOWS), tmp_path / "spread.html"), tmp_path))
    assert spread.maps == ["OD flow map"]
    assert spread.zoom_boxes == 0
    assert "width: trips" in spread.legend_texts


@pytest.mark.parametrize("scaled", [False, True])
def test_the_workbook_has_a_frozen_filtered_header_and_only_the_notes_that_apply(
    released: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    scaled: bool,
) -> None:
    request = ExportRequest(
        Indicator.OD_TRIPS, START, START + dt.timedelta(days=1),
        baseline=Period(START, START) if scaled else None,
    )  # fmt: skip
    files = export(released, request, "xlsx", tmp_path)
    book = load_workbook(files.data)
    data, releases, notes = book["data"], book["releases"], book["notes"]
    rows = files.assembled.data.height
    assert data.freeze_panes == "A2"
    assert data.auto_filter.ref == f"A1:{data.cell(1, data.max_column).column_letter}{rows + 1}"
    assert data.max_row == rows + 1
    assert releases.freeze_panes == "A2"
    assert releases.auto_filter.ref.startswith("A1:")
    text = " ".join(str(row[0]) for row in notes.iter_rows(values_only=True))
    assert ("pct_change" in text) is scaled
    assert "spent no privacy budget" in text
