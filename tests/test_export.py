"""Exports and charts: released data only, every format round-trips, no budget ever spent."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook  # type: ignore[import-untyped]

from aggregation.export import (
    FORMATS,
    ExportRequest,
    NotReleasedError,
    ReleaseCatalog,
    assemble,
    export,
)
from aggregation.export.charts import make_demo_charts
from aggregation.export.datapackage import INTEGRITY, UNMEASURED_FORMATS
from aggregation.export.series import daily_series, flow_map, noise_variance, totals
from aggregation.release import open_context
from aggregation.release.publish import sha256_file
from flows.cli import cli
from schemas.errors import ConfigurationError, MobilityError
from schemas.indicators import Indicator, Period
from tests.conftest import START

if TYPE_CHECKING:
    from pathlib import Path

DAY2 = START + dt.timedelta(days=1)
DAY3 = START + dt.timedelta(days=2)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def released(released_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy of :func:`tests.conftest.released_master`: an ingested workspace with
    releases (od_trips and presence each day, presence of day 1 twice, at ε 0.5 and 2,
    mobility_distance of day 1, residents of the three days), built once per test worker."""
    ws = tmp_path_factory.mktemp("export") / "ws"
    shutil.copytree(released_master, ws)
    return ws


def ledger_state(ws: Path) -> tuple[Any, ...]:
    """Everything an export must leave unchanged: entries, spend, refusals, release folders."""
    ledger = open_context(ws, need_secret=False).ledger
    return (
        [(e.entry_id, e.entry_hash, e.status) for e in ledger.entries()],
        ledger.window_budgets(),
        len(ledger.refusals()),
        sorted(p.relative_to(ws).as_posix() for p in (ws / "releases").rglob("*")),
    )


def _od(**changes: Any) -> ExportRequest:
    return ExportRequest(**{"indicator": Indicator.OD_TRIPS, "start": START, "end": DAY3,
                            **changes})  # fmt: skip


def _read_back(path: Path, fmt: str, expected: pl.DataFrame) -> pl.DataFrame:
    """The rows of an exported file, typed like ``expected``."""
    if fmt == "parquet":
        return pl.read_parquet(path)
    if fmt == "csv":
        return pl.read_csv(path, schema=expected.schema)
    if fmt == "geojson":
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc["type"] == "FeatureCollection"
        rows = [f["properties"] for f in doc["features"]]
        return pl.DataFrame(rows, schema={k: pl.String if v == pl.Date else v
                                          for k, v in expected.schema.items()}).with_columns(
            pl.col(c).str.to_date() for c, t in expected.schema.items() if t == pl.Date
        )  # fmt: skip
    book = load_workbook(path, read_only=True)
    try:
        header, *rows = list(book["data"].iter_rows(values_only=True))
    finally:
        book.close()  # a read-only workbook keeps its file open until closed
    assert list(header) == expected.columns
    cells = [[v.date() if isinstance(v, dt.datetime) else v for v in row] for row in rows]
    return pl.DataFrame(cells, schema=expected.schema, orient="row")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("indicator", [Indicator.OD_TRIPS, Indicator.PRESENCE])
def test_every_format_round_trips_with_its_datapackage(
    released: Path, tmp_path: Path, fmt: Any, indicator: Indicator
) -> None:
    request = ExportRequest(indicator, START, DAY3)
    files = export(released, request, fmt, tmp_path / "out")
    expected = files.assembled.data
    assert expected.height > 0
    assert _read_back(files.data, fmt, expected).equals(expected)

    package = json.loads((tmp_path / "out" / "datapackage.json").read_text(encoding="utf-8"))
    (resource,) = package["resources"]
    assert resource["path"] == files.data.name
    integrity = resource[INTEGRITY] if fmt in UNMEASURED_FORMATS else resource
    assert integrity["hash"] == f"sha256:{sha256_file(files.data)}"
    assert integrity["bytes"] == files.data.stat().st_size
    assert [f["name"] for f in resource["schema"]["fields"]] == expected.columns
    block = package["mobility"]
    assert block["budget_spent_by_export"] == 0.0
    assert block["privacy_units"] == ["subscriber-day"]
    entries = {e.entry_id: e for e in open_context(released, need_secret=False).ledger.entries()}
    for r in block["releases"]:
        entry = entries[r["ledger_entry_id"]]
        assert r["epsilon"] == pytest.approx(entry.epsilon)
        assert r["k"] == entry.k_threshold == 10
        assert r["ci95_half_width"] > 0
        assert r["cells_released"] + r["cells_suppressed"] == r["cells_total"]
    assert block["cells_suppressed"] == sum(r["cells_suppressed"] for r in block["releases"])
    assert set(expected["release_id"]) <= {r["release_id"] for r in block["releases"]}
    if fmt == "geojson":
        doc = json.loads(files.data.read_text(encoding="utf-8"))
        kinds = {f["geometry"]["type"] for f in doc["features"]}
        if indicator == Indicator.OD_TRIPS:
            assert kinds == {"LineString"}  # origin centroid → destination centroid
        else:
            assert kinds
            assert kinds <= {"Polygon", "MultiPolygon"}


def test_exported_values_are_the_released_values(released: Path) -> None:
    catalog = ReleaseCatalog.open(released)
    data = assemble(catalog, _od()).data
    for (release_id,), rows in data.group_by(["release_id"]):
        record = next(r for r in catalog.records if r.release_id == release_id)
        original = record.data().join(
            rows.select("date", "origin", "destination", "value", "ci95"),
            on=["date", "origin", "destination"], how="inner", suffix="_export",
        )  # fmt: skip
        assert original.height == rows.height
        assert (original["value"] == original["value_export"]).all()
        assert (original["ci95"] == original["ci95_export"]).all()
    assert set(data["date"]) == {START, DAY2, DAY3}
    assert data["origin_name"].null_count() == 0


def test_exports_and_charts_never_change_the_ledger(released: Path, tmp_path: Path) -> None:
    before = ledger_state(released)
    for fmt in FORMATS:
        export(released, _od(baseline=Period(START, START)), fmt, tmp_path / fmt)
    make_demo_charts(released, tmp_path / "charts")
    with pytest.raises(NotReleasedError):
        export(released, _od(end=START + dt.timedelta(days=9)), "csv", tmp_path / "none")
    result = CliRunner().invoke(cli, [
        "export", "presence", "--from", str(START), "--to", str(DAY3), "--format", "xlsx",
        "--out", str(tmp_path / "cli"), "--workspace", str(released),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ledger_state(released) == before


def test_a_request_never_released_names_the_release_command(released: Path, tmp_path: Path) -> None:
    late = START + dt.timedelta(days=5)
    with pytest.raises(NotReleasedError) as caught:
        assemble(ReleaseCatalog.open(released), _od(end=late))
    expected = (
        f"mobility release od_trips --date {START + dt.timedelta(days=3)} --to {late} "
        f"--level admin2 --workspace {released}"
    )
    assert caught.value.commands == [expected]
    assert "never released" in str(caught.value)
    assert not (tmp_path / "out").exists()

    result = CliRunner().invoke(cli, [
        "export", "od_trips", "--from", str(START), "--level", "admin3", "--out",
        str(tmp_path / "out"), "--workspace", str(released),
    ])  # fmt: skip
    assert result.exit_code == 1
    assert f"mobility release od_trips --date {START} --level admin3" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_value_column_released_alone_gets_its_own_command(released: Path) -> None:
    with pytest.raises(NotReleasedError) as caught:
        assemble(ReleaseCatalog.open(released),
                 ExportRequest(Indicator.MOBILITY_DISTANCE, START, DAY2))  # fmt: skip
    assert caught.value.commands == [
        f"mobility release mobility_distance --date {DAY2} --level admin2 --workspace {released}"
    ]
    both = assemble(ReleaseCatalog.open(released),
                    ExportRequest(Indicator.MOBILITY_DISTANCE, START, START))  # fmt: skip
    assert set(both.data["measure"]) == {"distance_m", "subscribers"}


def test_the_most_precise_release_of_a_day_is_used(released: Path) -> None:
    catalog = ReleaseCatalog.open(released)
    data = assemble(catalog, ExportRequest(Indicator.PRESENCE, START, START)).data
    (release_id,) = set(data["release_id"])
    record = next(r for r in catalog.records if r.release_id == release_id)
    assert record.metadata.epsilon == pytest.approx(2.0)
    others = [r for r in catalog.of(Indicator.PRESENCE) if r.period.start == START]
    assert record.ci95 == min(r.ci95 for r in others) < max(r.ci95 for r in others)


def test_zones_select_by_code_or_by_a_coarser_zone(released: Path) -> None:
    catalog = ReleaseCatalog.open(released)
    data = assemble(catalog, _od(zones=("NL01",))).data
    assert data.height > 0
    inside = data["origin"].str.starts_with("NL01") | data["destination"].str.starts_with("NL01")
    assert inside.all()  # flows into, out of or within NL01
    one = assemble(catalog, ExportRequest(Indicator.PRESENCE, START, DAY3, zones=("NL0103",)))
    assert set(one.data["zone"]) == {"NL0103"}
    with pytest.raises(ConfigurationError, match=r"unknown zone 'XX'.*NL0101"):
        assemble(catalog, _od(zones=("XX",)))
    with pytest.raises(ConfigurationError, match="finer than the level admin1"):
        assemble(catalog, _od(level="admin1", zones=("NL0101",)))
    result = CliRunner().invoke(cli, [
        "export", "od_trips", "--from", str(START), "--zones", "XX", "--out", "unused",
        "--workspace", str(released),
    ])  # fmt: skip
    assert result.exit_code == 2
    assert "unknown zone 'XX'" in result.output


def test_scaled_variant_is_the_change_against_the_released_baseline(released: Path) -> None:
    catalog = ReleaseCatalog.open(released)
    base = assemble(catalog, ExportRequest(Indicator.OD_TRIPS, START, START)).data
    scaled = assemble(catalog, _od(start=DAY2, baseline=Period(START, START))).data
    baseline = {(o, d): v for o, d, v in base.select("origin", "destination", "value").rows()}
    checked = 0
    for o, d, v, b, n, pct in scaled.select(
        "origin", "destination", "value", "baseline", "baseline_n", "pct_change"
    ).rows():
        if (o, d) in baseline:
            assert (b, n) == (baseline[(o, d)], 1)
            assert pct == pytest.approx(round(100 * (v - b) / b, 2))
            checked += 1
        else:
            assert (b, n, pct) == (None, 0, None)
    assert checked > 0
    with pytest.raises(NotReleasedError, match="baseline"):
        assemble(catalog, _od(baseline=Period(START - dt.timedelta(days=7), START)))


def test_period_indicators_export_each_released_period(released: Path) -> None:
    catalog = ReleaseCatalog.open(released)
    data = assemble(
        catalog, ExportRequest(Indicator.RESIDENTS, START - dt.timedelta(days=3), DAY3)
    ).data
    assert data.columns[:4] == ["period_start", "period_end", "home_zone", "home_zone_name"]
    assert set(data["period_start"]) == {START}
    assert set(data["period_end"]) == {DAY3}
    with pytest.raises(NotReleasedError) as caught:
        assemble(catalog, ExportRequest(Indicator.RESIDENTS, START, DAY2))
    assert caught.value.commands[0].startswith(
        f"mobility release residents --date {START} --to {DAY2} --level admin2"
    )


def test_a_changed_or_unpaid_release_file_is_never_exported(released: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(released, ws)
    catalog = ReleaseCatalog.open(ws)
    record = next(r for r in catalog.of(Indicator.OD_TRIPS) if r.period.start == START)
    forged = ws / "releases" / "od_trips" / ("f" * 32)
    shutil.copytree(record.directory, forged)
    meta = json.loads((forged / "metadata.json").read_text())
    (forged / "metadata.json").write_text(json.dumps({**meta, "release_id": "f" * 32}))
    outside = tmp_path / "elsewhere"
    shutil.copytree(record.directory, outside)
    (ws / "releases" / "od_trips" / record.release_id).rename(tmp_path / "moved")
    (ws / "releases" / "od_trips" / record.release_id).symlink_to(outside)
    catalog = ReleaseCatalog.open(ws)
    assert [i for i in catalog.ignored if "no matching entry in the privacy ledger" in i]
    assert [i for i in catalog.ignored if "leads outside" in i]
    assert catalog.get(Indicator.OD_TRIPS, "f" * 32) is None
    assert catalog.get(Indicator.OD_TRIPS, record.release_id) is None
    (ws / "releases" / "od_trips" / record.release_id).unlink()
    (tmp_path / "moved").rename(ws / "releases" / "od_trips" / record.release_id)
    catalog = ReleaseCatalog.open(ws)

    pl.read_parquet(record.directory / "data.parquet").with_columns(
        pl.col("value") * 2
    ).write_parquet(record.directory / "data.parquet")
    with pytest.raises(MobilityError, match="SHA-256"):
        assemble(catalog, _od())


def test_noise_variance_and_error_bars_of_totals(released: Path) -> None:
    # Discrete Laplace, scale 4: p = e^(-1/4), variance 2p / (1 - p)^2.
    p = math.exp(-0.25)
    assert noise_variance("discrete_laplace", 4.0) == pytest.approx(2 * p / (1 - p) ** 2)
    assert noise_variance("discrete_gaussian", 3.0) == 9.0
    with pytest.raises(ConfigurationError):
        noise_variance("laplace", 1.0)
    assembled = assemble(ReleaseCatalog.open(released), _od(end=START))
    (row,) = totals(assembled, ["date"]).rows(named=True)
    cells = assembled.data.height
    assert row["cells"] == cells
    assert row["total"] == assembled.data["value"].sum()
    # 1.96 · sqrt(n · Var): the normal approximation of the summed independent noise, at the
    # cells' scale 5 (L1 = 4 at ε = 1 less the default totals_share 0.2)
    p = math.exp(-1 / 5)
    assert row["ci95"] == pytest.approx(1.959964 * math.sqrt(cells * 2 * p / (1 - p) ** 2))


def test_charts_are_drawn_from_released_data(released: Path, tmp_path: Path) -> None:
    made = make_demo_charts(released, tmp_path / "charts")
    assert [p.name for p in made] == ["od_map.png", "od_map.html", "timeseries.png"]
    for path in made:
        assert path.stat().st_size > 1000
    assert made[0].read_bytes().startswith(PNG)
    assert made[2].read_bytes().startswith(PNG)
    page = made[1].read_text(encoding="utf-8")
    assert "<svg" in page
    assert "<script>" in page
    for external in ("src=", "href=", "@import", "url(http"):
        assert external not in page  # nothing is fetched: the page is self-contained
    assert "ε = 1 per subscriber-day" in page

    catalog = ReleaseCatalog.open(released)
    fmap = flow_map(catalog, Period(START, DAY3), top=5)
    assert fmap.flows.height == 5
    assert fmap.flows["total"].is_sorted(descending=True)
    series = daily_series(catalog, "presence", Period(START, DAY3),
                          baseline=Period(START, START))  # fmt: skip
    assert series.daily["date"].to_list() == [START, DAY2, DAY3]
    assert series.baseline is not None
    assert series.baseline.mean == series.daily["total"][0]
    with pytest.raises(ConfigurationError, match="daily count indicator"):
        daily_series(catalog, "residents", Period(START, DAY3))


def test_chart_commands(released: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ws = ["--workspace", str(released), "--out", str(tmp_path)]
    days = ["--from", str(START), "--to", str(DAY3)]
    result = runner.invoke(cli, ["chart", "od-map", *days, "--zones", "NL01", *ws])
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"od_map_admin2_{START}_{DAY3}.png").read_bytes().startswith(PNG)
    assert (tmp_path / f"od_map_admin2_{START}_{DAY3}.html").exists()
    result = runner.invoke(cli, ["chart", "timeseries", "presence", *days, *ws])
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"timeseries_admin2_{START}_{DAY3}.png").exists()
    result = runner.invoke(cli, ["chart", "od-map", "--from", str(DAY3), "--to", str(START), *ws])
    assert result.exit_code == 2
    assert "before --from" in result.output
