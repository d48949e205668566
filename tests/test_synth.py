"""The synthetic country generator: determinism, contracts, statistical shape, injected errors."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import shapely
from click.testing import CliRunner

from flows.cli import cli
from sample_data.synth import SynthConfig, generate
from schemas.errors import ConfigurationError
from schemas.geography import CELLS, ZONES
from schemas.quality import InjectedErrorKind as Kind
from schemas.raw import RAW_CDR, RAW_GPS
from schemas.truth import INJECTED_ERRORS, TRUE_STAYS, TRUE_SUBSCRIBER_DAYS, TRUE_SUBSCRIBERS

SMALL = SynthConfig(subscribers=3_000, days=3, seed=7, error_rate=0.02, admin3=120, sites=300)


@pytest.fixture(scope="module")
def clean_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean_csv")
    generate(SynthConfig(subscribers=3_000, days=2, seed=3, admin3=120, sites=300), out)
    return out


@pytest.fixture(scope="module")
def dirty_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dirty_csv")
    generate(SMALL, out)
    return out


@pytest.fixture(scope="module")
def dirty_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dirty_parquet")
    generate(SynthConfig(subscribers=2_000, days=2, seed=5, error_rate=0.03, fmt="parquet"), out)
    return out


def _read_cdr_csv(path: Path) -> pa.Table:
    types = {c.name: c.type for c in RAW_CDR}
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, timestamp_parsers=["%Y-%m-%d %H:%M:%S"]
        ),
    )


def _read_gps_csv(path: Path) -> pa.Table:
    frame = pl.read_csv(path, schema_overrides={"device_id": pl.String, "timestamp": pl.String})
    frame = frame.with_columns(
        pl.col("timestamp").str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="ms", time_zone="UTC"
        ),
        pl.col("accuracy_m").cast(pl.Float32),
    )
    return frame.to_arrow().cast(RAW_GPS.schema)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    config = SynthConfig(subscribers=800, days=2, seed=11, error_rate=0.05, admin3=60, sites=120)
    generate(config, tmp_path / "a")
    generate(config, tmp_path / "b")
    generate(_with(config, seed=12), tmp_path / "c")
    a, b, c = (json.loads((tmp_path / x / "manifest.json").read_text()) for x in "abc")
    assert a == b
    assert a["files"]["raw/cdr_2026-03-02.csv"] != c["files"]["raw/cdr_2026-03-02.csv"]
    for rel, meta in a["files"].items():
        assert (tmp_path / "a" / rel).stat().st_size == meta["bytes"]


def _with(config: SynthConfig, **changes: object) -> SynthConfig:
    fields = {name: getattr(config, name) for name in config.__dataclass_fields__}
    return SynthConfig(**{**fields, **changes})  # type: ignore[arg-type]


def test_clean_files_conform_to_their_contracts(clean_csv: Path) -> None:
    for day in ("2026-03-02", "2026-03-03"):
        RAW_CDR.validate(_read_cdr_csv(clean_csv / "raw" / f"cdr_{day}.csv"), source=day)
        gps = _read_gps_csv(clean_csv / "raw" / f"gps_{day}.csv")
        RAW_GPS.validate(gps, source=day)
        TRUE_STAYS.validate(pq.read_table(clean_csv / "truth" / f"stays_{day}.parquet"))
        days = pq.read_table(clean_csv / "truth" / f"subscriber_days_{day}.parquet")
        TRUE_SUBSCRIBER_DAYS.validate(days)
        assert days.num_rows == 3_000
    TRUE_SUBSCRIBERS.validate(pq.read_table(clean_csv / "truth" / "subscribers.parquet"))
    INJECTED_ERRORS.validate(pq.read_table(clean_csv / "truth" / "injected_errors.parquet"))
    assert pq.read_table(clean_csv / "truth" / "injected_errors.parquet").num_rows == 0
    ZONES.validate(pq.read_table(clean_csv / "reference" / "zones.parquet"))
    cells = pacsv.read_csv(
        clean_csv / "reference" / "cells.csv",
        convert_options=pacsv.ConvertOptions(column_types={c.name: c.type for c in CELLS}),
    )
    CELLS.validate(cells)


def test_parquet_export_conforms_and_carries_only_parquet_faults(dirty_parquet: Path) -> None:
    for day in ("2026-03-02", "2026-03-03"):
        cdr = pq.read_table(dirty_parquet / "raw" / f"cdr_{day}.parquet")
        assert RAW_CDR.problems(cdr.schema) == []
        gps = pq.read_table(dirty_parquet / "raw" / f"gps_{day}.parquet")
        assert RAW_GPS.problems(gps.schema) == []
    errors = pl.read_parquet(dirty_parquet / "truth" / "injected_errors.parquet")
    kinds = set(errors["kind"])
    assert Kind.MALFORMED_LINE not in kinds
    assert Kind.UNPARSEABLE_TIMESTAMP not in kinds
    assert errors["line"].null_count() == errors.height


def test_zones_nest_and_cells_lie_in_their_zones(clean_csv: Path) -> None:
    zones = pq.read_table(clean_csv / "reference" / "zones.parquet").to_pylist()
    by_id = {z["zone_id"]: z for z in zones}
    levels = Counter(z["level"] for z in zones)
    assert levels == {"admin1": 5, "admin2": 30, "admin3": 120}
    geoms = {z["zone_id"]: shapely.from_wkb(z["geometry_wkb"]) for z in zones}
    for z in zones:
        if z["parent_id"] is not None:
            assert z["zone_id"].startswith(z["parent_id"])
            parent = geoms[z["parent_id"]]
            assert geoms[z["zone_id"]].difference(parent).area < 1e-9
    for level, parent_level in (("admin3", "admin2"), ("admin2", "admin1")):
        totals: Counter[str] = Counter()
        for z in zones:
            if z["level"] == level:
                totals[z["parent_id"]] += z["population"]
        for parent_id, total in totals.items():
            assert by_id[parent_id]["level"] == parent_level
            assert abs(by_id[parent_id]["population"] - total) <= len(zones)
    areas = sorted(z["area_km2"] for z in zones if z["level"] == "admin3")
    assert areas[-1] / areas[len(areas) // 2] > 3  # big rural zones, small city zones
    cells = pacsv.read_csv(clean_csv / "reference" / "cells.csv").to_pylist()
    for cell in cells[::7]:
        assert geoms[cell["admin3"]].buffer(1e-9).contains(shapely.Point(cell["lon"], cell["lat"]))
        assert cell["admin2"] == cell["admin3"][:6]
    geojson = json.loads((clean_csv / "reference" / "zones_admin2.geojson").read_text())
    assert len(geojson["features"]) == 30
    assert {"zone_id", "name", "parent_id", "population"} <= set(
        geojson["features"][0]["properties"]
    )


def test_statistical_shape(clean_csv: Path) -> None:
    cdr = pl.from_arrow(_read_cdr_csv(clean_csv / "raw" / "cdr_2026-03-02.csv"))
    assert isinstance(cdr, pl.DataFrame)
    cells = pl.read_csv(clean_csv / "reference" / "cells.csv").select("cell_id", "admin3")
    homes = pl.read_parquet(clean_csv / "truth" / "subscriber_days_2026-03-02.parquet")
    events = cdr.join(cells, on="cell_id").join(homes.select("msisdn", "home_admin3"), on="msisdn")
    hour = events["event_time"].dt.hour()
    night = events.filter((hour < 5) | (hour >= 23))
    at_home = (night["admin3"] == night["home_admin3"]).mean()
    assert at_home is not None
    assert at_home > 0.9

    by_hour = np.bincount(hour.to_numpy(), minlength=24)
    assert int(np.argmax(by_hour)) in range(11, 22)
    assert by_hour.max() > 8 * by_hour[2:5].mean()

    per_sub = homes["n_events"].to_numpy()
    median = np.median(per_sub)
    assert per_sub.max() > 20 * median
    assert np.mean(per_sub <= 1) > 0.05
    assert np.sum(per_sub >= 100) > 10
    assert set(cdr["event_type"].unique()) == {"call", "sms", "data"}
    assert cdr.filter(pl.col("event_type") == "sms")["duration_s"].null_count() > 0


def test_weekday_commutes_and_lockdown_cut_trips(tmp_path: Path) -> None:
    config = SynthConfig(subscribers=4_000, days=4, start=dt.date(2026, 3, 2), seed=2,
                         scenario="lockdown", scenario_start=dt.date(2026, 3, 4),
                         admin3=120, sites=300, gps_share=0.0)  # fmt: skip
    generate(config, tmp_path)
    trips = [
        pl.read_parquet(tmp_path / "truth" / f"subscriber_days_{d}.parquet")["n_trips"].mean()
        for d in config.dates
    ]
    before, after = (trips[0] + trips[1]) / 2, (trips[2] + trips[3]) / 2  # type: ignore[operator]
    assert after < 0.6 * before


def test_evacuation_empties_a_zone(tmp_path: Path) -> None:
    config = SynthConfig(subscribers=4_000, days=3, seed=4, scenario="evacuation",
                         admin3=120, sites=300, gps_share=0.0)  # fmt: skip
    summary = generate(config, tmp_path)
    zone = summary.scenario["evacuated_admin3"]
    first = pl.read_parquet(tmp_path / "truth" / "subscriber_days_2026-03-02.parquet")
    last = pl.read_parquet(tmp_path / "truth" / "subscriber_days_2026-03-04.parquet")
    assert (first["home_admin3"] == zone).sum() > 5
    assert (last["home_admin3"] == zone).sum() == 0


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_injected_errors_are_exactly_what_the_files_hold(dirty_csv: Path) -> None:
    truth = pl.read_parquet(dirty_csv / "truth" / "injected_errors.parquet")
    cells = set(pl.read_csv(dirty_csv / "reference" / "cells.csv")["cell_id"])
    assert truth.height > 0
    for rel in sorted(set(truth["file"])):
        feed = Path(rel).name[:3]
        contract = RAW_CDR if feed == "cdr" else RAW_GPS
        rows = _csv_rows(dirty_csv / rel)
        assert rows[0] == contract.names
        found: dict[int, str] = {}
        day = dt.date.fromisoformat(Path(rel).stem[4:])
        for number, row in enumerate(rows[1:], start=1):
            kind = _classify(row, rows[number - 1] if number > 1 else None, feed, cells, day)
            if kind is not None:
                found[number] = kind
        expected = {
            r["row_number"]: r["kind"] for r in truth.filter(pl.col("file") == rel).to_dicts()
        }
        assert found == expected, rel
        lines = truth.filter(pl.col("file") == rel)
        assert (lines["line"] == lines["row_number"] + 1).all()


def _classify(  # noqa: PLR0911 - one return per rule, in the precedence ingest uses
    row: list[str], previous: list[str] | None, feed: str, cells: set[str], day: dt.date
) -> str | None:
    """An independent re-implementation of the fault rules, to check the generator's truth."""
    width = len(RAW_CDR.names) if feed == "cdr" else len(RAW_GPS.names)
    if len(row) != width:
        return Kind.MALFORMED_LINE
    if previous is not None and row == previous:
        return Kind.EXACT_DUPLICATE
    required = (1, 2, 3, 4) if feed == "cdr" else (0, 1, 2, 3)
    if any(row[i] == "" for i in required):
        return Kind.MISSING_VALUE
    time_text = row[2] if feed == "cdr" else row[1]
    try:
        fmt = "%Y-%m-%d %H:%M:%S" if feed == "cdr" else "%Y-%m-%dT%H:%M:%S.%fZ"
        when = dt.datetime.strptime(time_text, fmt).replace(tzinfo=dt.UTC).date()
    except ValueError:
        return Kind.UNPARSEABLE_TIMESTAMP
    if abs((when - day).days) > 1:
        return Kind.TIMESTAMP_OUT_OF_WINDOW
    if feed == "cdr":
        if row[4] not in {"call", "sms", "data"}:
            return Kind.INVALID_VALUE
        if row[3] not in cells:
            return Kind.UNKNOWN_CELL
    elif not (-90 <= float(row[2]) <= 90 and -180 <= float(row[3]) <= 180):
        return Kind.INVALID_VALUE
    return None


def test_error_rate_is_respected(dirty_csv: Path) -> None:
    truth = pl.read_parquet(dirty_csv / "truth" / "injected_errors.parquet")
    manifest = json.loads((dirty_csv / "manifest.json").read_text())
    rows = sum(len(_csv_rows(dirty_csv / f)) - 1 for f in manifest["files"] if f.startswith("raw/"))
    dups = truth.filter(pl.col("kind") == Kind.EXACT_DUPLICATE).height
    rate = truth.height / (rows - dups)
    assert 0.017 < rate < 0.023
    counts = Counter(truth["kind"])
    assert set(counts) == {k.value for k in Kind}


def test_bad_parameters_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="error_rate must lie in"):
        SynthConfig(error_rate=0.9)
    with pytest.raises(ConfigurationError, match="scenario_start"):
        SynthConfig(days=3, scenario_start=dt.date(2030, 1, 1))
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(ConfigurationError, match="not empty"):
        generate(SynthConfig(subscribers=10, days=1), tmp_path)
    assert (tmp_path / "x").read_text() == "keep me"


def test_cli_writes_and_reports(tmp_path: Path) -> None:
    runner = CliRunner()
    out = str(tmp_path / "o")
    result = runner.invoke(
        cli, ["synth", "--out", out, "--subscribers", "300", "--days", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["cdr_events"] > 0
    assert (tmp_path / "o" / "manifest.json").exists()
    again = runner.invoke(cli, ["synth", "--out", str(tmp_path / "o"), "--subscribers", "300"])
    assert again.exit_code == 2
    assert "not empty" in again.output
    assert "Traceback" not in again.output
    for command in ([], ["synth"]):
        assert runner.invoke(cli, [*command, "--help"]).exit_code == 0


_PEAK_RSS = """
import resource, sys, pathlib, datetime as dt
from sample_data.synth import SynthConfig, generate
days = int(sys.argv[1])
config = SynthConfig(subscribers=30_000, days=days, seed=1, error_rate=0.01)
generate(config, pathlib.Path(sys.argv[2]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_memory_does_not_grow_with_the_number_of_days(tmp_path: Path) -> None:
    def peak_kib(days: int) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS, str(days), str(tmp_path / f"d{days}")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return int(out.stdout.strip().splitlines()[-1])

    one, twenty = peak_kib(1), peak_kib(20)
    assert twenty < one * 1.15, (one, twenty)
