"""Every export format is a data package that the real ``frictionless validate`` accepts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from frictionless import validate

from aggregation.export import FORMATS, ExportRequest, export
from aggregation.export.datapackage import INTEGRITY, UNMEASURED_FORMATS
from aggregation.release.publish import sha256_file
from schemas.indicators import Indicator
from tests.conftest import START

if TYPE_CHECKING:
    from pathlib import Path

    from tests.live_api import LiveServer


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("indicator", [Indicator.OD_TRIPS, Indicator.PRESENCE])
def test_frictionless_validates_every_format(
    live_api: LiveServer, tmp_path: Path, fmt: str, indicator: Indicator
) -> None:
    files = export(live_api.workspace, ExportRequest(indicator, START, START), fmt, tmp_path)
    assert files.assembled.data.height > 0
    report = validate(str(files.descriptor))
    assert report.valid, report.flatten(["type", "message"])
    assert report.stats["tasks"] == 1
    (task,) = report.tasks
    if fmt != "geojson":  # frictionless reads tables row by row; GeoJSON is checked as JSON
        assert task.stats["rows"] == files.assembled.data.height
    (resource,) = json.loads(files.descriptor.read_text(encoding="utf-8"))["resources"]
    integrity = resource[INTEGRITY] if fmt in UNMEASURED_FORMATS else resource
    assert integrity["hash"] == f"sha256:{sha256_file(files.data)}"


def test_frictionless_notices_a_tampered_csv(live_api: LiveServer, tmp_path: Path) -> None:
    files = export(live_api.workspace, ExportRequest(Indicator.OD_TRIPS, START, START), "csv",
                   tmp_path)  # fmt: skip
    files.data.write_text(files.data.read_text(encoding="utf-8") + "x\n", encoding="utf-8")
    assert not validate(str(files.descriptor)).valid
