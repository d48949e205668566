"""App GPS fixes as a source: staged coordinates, GPS indicators, and one budget for both sources.

A GPS drop stages its fixes with their coordinates in a sidecar table beside its staged events;
``presence``, ``od_trips`` and ``mobility_distance`` have GPS definitions over device-days; GPS
releases are charged to the same accounting windows and caps as CDR releases.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from aggregation.extract import StagedFiles
from aggregation.gps_stays import stays_and_paths
from aggregation.indicators import AggregateRequest, exact_aggregate
from aggregation.ingest import ingest_files
from aggregation.ingest.staging import contract_problems
from aggregation.release import open_context, release
from flows.cli import cli
from schemas.errors import BudgetExceededError, ConfigurationError
from schemas.gps import StayRule
from schemas.indicators import Indicator, Period, Scope
from schemas.release import METADATA_JSON_SCHEMA, ReleaseSpec
from schemas.staged import FIXES_DIR, STAGED_FIXES
from tests.conftest import KEY_ENVIRON, START, fresh_copy, workspace_with_policy
from tests.indicators_helpers import ADMIN3, DAY0, KEY, parent, zone_set

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

PRIVACY = """[privacy]
epsilon_per_window = 2.0
epsilon_rolling = 60.0
totals_share = 0.2

[privacy.epsilon]
presence = 0.5
od_trips = 1.0
mobility_distance = 0.4
"""


@pytest.fixture(scope="module")
def gps_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2-day synthetic export (20 % of subscribers with the app) ingested under ε ≤ 2 a day."""
    from sample_data.synth import SynthConfig, generate  # noqa: PLC0415

    base = tmp_path_factory.mktemp("gps")
    export = base / "export"
    generate(
        SynthConfig(subscribers=1500, days=2, start=START, seed=7, gps_share=0.4, fmt="parquet"),
        export,
    )
    ws = workspace_with_policy(base / "template", export, PRIVACY)
    assert ingest_files([export / "raw"], ws, environ=KEY_ENVIRON).ok
    return ws


@pytest.fixture
def workspace(gps_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fresh_copy(gps_template, tmp_path, monkeypatch)


# --- staging ------------------------------------------------------------------------------------


def test_a_gps_drop_stages_its_fixes_with_coordinates_beside_its_events(gps_template: Path) -> None:
    staged = gps_template / "staged"
    events = sorted(staged.glob("date=*/shard=*/gps_*.parquet"))
    assert events
    for path in events:
        rel = path.relative_to(staged).as_posix()
        sidecar = staged / FIXES_DIR / rel
        assert contract_problems(sidecar, STAGED_FIXES) == []
        ev, fx = pl.read_parquet(path), pl.read_parquet(sidecar)
        assert fx.select("pseudonym", "event_time", "local_date", "admin3").equals(
            ev.select("pseudonym", "event_time", "local_date", "admin3")
        )
        assert fx["lat"].null_count() == 0
        assert fx["lat"].is_between(-90, 90).all()
    assert not list(staged.glob(f"{FIXES_DIR}/date=*/shard=*/cdr_*.parquet"))
    manifest = json.loads((staged / "_drops" / f"gps_{START}.json").read_text())
    assert sum(manifest["fixes"].values()) == manifest["rows_staged"]


# --- stays, trips and paths from fixes ----------------------------------------------------------


def _fix(who: str, day: int, minute: int, zone: str, jitter: float = 0.0) -> dict[str, object]:
    lat, lon = ADMIN3[zone]
    t = datetime(DAY0.year, DAY0.month, DAY0.day, tzinfo=UTC) + timedelta(days=day, minutes=minute)
    return {
        "pseudonym": who, "event_time": t, "local_date": t.date(), "local_hour": t.hour,
        "lat": lat + jitter, "lon": lon - jitter, "accuracy_m": 10.0,
        "admin1": parent(zone, "admin1"), "admin2": parent(zone, "admin2"), "admin3": zone,
    }  # fmt: skip


def _write_fixes(root: Path, rows: Iterable[dict[str, object]]) -> dict[tuple[str, object], str]:
    """One sidecar file per device-day (one privacy unit per file)."""
    by_unit: dict[tuple[str, object], list[dict[str, object]]] = {}
    for r in rows:
        by_unit.setdefault((str(r["pseudonym"]), r["local_date"]), []).append(r)
    files = {}
    for n, (unit, unit_rows) in enumerate(sorted(by_unit.items(), key=str)):
        path = root / f"date={unit[1]}" / f"shard={n:03d}" / "gps.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pl.DataFrame(unit_rows).to_arrow().select(STAGED_FIXES.names)
        pq.write_table(table.cast(STAGED_FIXES.schema), path)
        files[unit] = str(path)
    return files


HOME, WORK = "NL010101", "NL020101"


def _commuter(who: str, day: int = 0) -> list[dict[str, object]]:
    """An hour at home (jittering), an hour at work, an hour at home again."""
    rows = [_fix(who, day, 6 * 60 + m, HOME, jitter=0.0005 * (m % 2)) for m in range(0, 61, 10)]
    rows += [_fix(who, day, 9 * 60 + m, WORK) for m in range(0, 61, 15)]
    rows += [_fix(who, day, 18 * 60 + m, HOME) for m in range(0, 61, 30)]
    return rows


def test_stays_trips_and_path_length_follow_the_device_and_ignore_jitter_at_rest() -> None:
    fixes = pl.DataFrame(_commuter("d1")).select(
        pl.col("pseudonym").alias("device"), pl.col("local_date").alias("day"),
        pl.col("event_time").dt.epoch("ms").alias("time_ms"), "lat", "lon", "accuracy_m",
        pl.col("admin3").alias("zone"),
    )  # fmt: skip
    stays, paths = stays_and_paths(fixes, StayRule())
    assert stays["zone"].to_list() == [HOME, WORK, HOME]
    (lat1, lon1), (lat2, lon2) = ADMIN3[HOME], ADMIN3[WORK]
    # two legs home↔work, whatever the home fixes' jitter (about 50 m each way, 6 times)
    import math  # noqa: PLC0415

    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    leg = 2 * 6_371_008.8 * math.asin(math.sqrt(h))
    assert paths["distance_m"].to_list() == [pytest.approx(2 * leg, abs=5)]


def test_gps_indicators_count_devices_stays_and_paths(tmp_path: Path) -> None:
    files = _write_fixes(tmp_path, _commuter("d1") + _commuter("d2") + [_fix("d3", 0, 600, WORK)])
    source = StagedFiles(tuple(files.values()))
    day = Period.day(DAY0)

    def exact(indicator: Indicator, scope: Scope) -> pl.DataFrame:
        request = AggregateRequest(indicator, source, zone_set("admin3"), scope, feed="gps")
        return exact_aggregate(request, KEY, keys="observed")

    trips = exact(Indicator.OD_TRIPS, Scope(days=day))
    assert sorted(trips.select("origin", "destination", "count").rows()) == [
        (HOME, WORK, 2), (WORK, HOME, 2),
    ]  # fmt: skip
    presence = exact(Indicator.PRESENCE, Scope(days=day))
    assert dict(presence.select("zone", "count").rows()) == {HOME: 2, WORK: 3}
    with pytest.raises(ConfigurationError, match="no definition from 'gps'"):
        AggregateRequest(Indicator.OD_CONNECTIONS, source, zone_set(), Scope(days=day), feed="gps")


# --- one budget for both sources ---------------------------------------------------------------


def test_cdr_and_gps_releases_of_a_day_share_its_window_and_a_third_is_refused(
    workspace: Path,
) -> None:
    ctx = open_context(workspace)
    cdr = release(ctx, ReleaseSpec(Indicator.OD_TRIPS, START, START))
    gps = release(ctx, ReleaseSpec(Indicator.OD_TRIPS, START, START, source="gps"))
    assert cdr.metadata.release_id != gps.metadata.release_id
    assert str(cdr.metadata.privacy_unit) == "subscriber-day"
    assert str(gps.metadata.privacy_unit) == "device-day"
    assert (cdr.metadata.source, gps.metadata.source) == ("cdr", "gps")
    assert "same accounting windows and caps" in gps.metadata.accounting
    import jsonschema  # noqa: PLC0415

    jsonschema.validate(gps.metadata.to_dict(), METADATA_JSON_SCHEMA)
    for outcome in (cdr, gps):
        assert [str(d) for d in outcome.metadata.scope.windows_charged] == [str(START)]
    (budget,) = ctx.ledger.window_budgets([START])
    assert budget.epsilon_spent == pytest.approx(2.0)
    assert budget.epsilon_left == pytest.approx(0.0)
    # asking the GPS question again reuses it: no second charge
    assert release(ctx, ReleaseSpec(Indicator.OD_TRIPS, START, START, source="gps")).reused
    third = ReleaseSpec(Indicator.PRESENCE, START, START, source="gps")
    with pytest.raises(BudgetExceededError):
        release(ctx, third)
    assert not (workspace / "releases" / "presence").exists()
    (budget,) = ctx.ledger.window_budgets([START])
    assert budget.epsilon_spent == pytest.approx(2.0)
    # the next day's window is untouched
    (other,) = ctx.ledger.window_budgets([START + timedelta(days=1)])
    assert other.epsilon_spent == 0


def test_a_cdr_question_keeps_its_key_and_a_gps_one_names_its_source() -> None:
    cdr = ReleaseSpec(Indicator.OD_TRIPS, START, START).parameters()
    gps = ReleaseSpec(Indicator.OD_TRIPS, START, START, source="gps").parameters()
    assert "source" not in cdr
    assert "stay_rule" not in cdr
    assert gps["source"] == "gps"
    assert gps["stay_rule"]["radius_m"] == StayRule().radius_m
    with pytest.raises(ConfigurationError, match="no GPS definition"):
        ReleaseSpec(Indicator.EVENT_COUNTS, START, START, source="gps")


def test_gps_releases_through_the_command_line_export_and_audit(workspace: Path) -> None:
    runner = CliRunner()
    ws = str(workspace)
    day = str(START)
    args = ["release", "od_trips", "--source", "gps", "--date", day, "--workspace", ws]
    first = runner.invoke(cli, [*args, "--json"])
    assert first.exit_code == 0, first.output
    made = json.loads(first.output)["releases"][0]
    assert (made["source"], made["privacy_unit"], made["reused"]) == ("gps", "device-day", False)
    again = runner.invoke(cli, [*args, "--json"])
    assert json.loads(again.output)["releases"][0]["reused"] is True
    out = workspace / "exports"
    exported = runner.invoke(
        cli,
        ["export", "od_trips", "--source", "gps", "--from", day, "--out", str(out),
         "--workspace", ws, "--json"],
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    package = json.loads((out / "datapackage.json").read_text())
    assert package["mobility"]["source"] == "gps"
    assert package["mobility"]["privacy_units"] == ["device-day"]
    cdr_export = runner.invoke(
        cli, ["export", "od_trips", "--from", day, "--out", str(out / "cdr"), "--workspace", ws]
    )
    assert cdr_export.exit_code != 0  # never released from CDR: GPS releases are not mixed in
    assert "mobility release od_trips" in cdr_export.output
    verify = runner.invoke(cli, ["audit", "verify", "--workspace", ws])
    assert verify.exit_code == 0, verify.output
    # α = 1e-6: an honest release fails the default α = 1e-3 once a thousand runs, as it should;
    # here the question is only that the auditor rebuilds a GPS release (power: test_audit_noise).
    noise = runner.invoke(
        cli, ["audit", "noise", made["release_id"], "--workspace", ws, "--alpha", "1e-6"]
    )
    assert noise.exit_code == 0, noise.output
    assert "FAIL" not in noise.output


def test_gps_releases_through_the_api_name_their_source(workspace: Path) -> None:
    import httpx  # noqa: PLC0415

    from tests.live_api import served  # noqa: PLC0415

    body = {"indicator": "presence", "from": str(START), "source": "gps", "epsilon": 0.5}
    with served(workspace) as server:

        def client(role: str) -> httpx.Client:
            headers = {"Authorization": f"Bearer {server.tokens[role]}"}
            return httpx.Client(base_url=server.url, headers=headers, timeout=60)

        with client("operator") as http:
            created = http.post("/v1/releases", json=body)
            again = http.post("/v1/releases", json=body)
            wrong = http.post("/v1/releases", json={**body, "indicator": "event_counts"})
        with client("analyst") as http:
            listed = http.get("/v1/releases").json()
            gps = http.get("/v1/exports/presence", params={"from": str(START), "source": "gps"})
            cdr = http.get("/v1/exports/presence", params={"from": str(START)})
    assert created.status_code == 201, created.text
    made = created.json()["releases"][0]["metadata"]
    assert (made["source"], made["privacy_unit"]) == ("gps", "device-day")
    assert again.status_code == 200
    assert wrong.status_code == 422
    assert [(r["source"], r["privacy_unit"]) for r in listed] == [("gps", "device-day")]
    assert gps.status_code == 200, gps.text
    assert cdr.status_code == 404  # never released from CDR: the GPS release is not mixed in


def test_the_workspace_stay_rule_and_gps_schedule_are_read_and_checked(workspace: Path) -> None:
    from aggregation.release import explain  # noqa: PLC0415
    from flows.daily import specs_for_day  # noqa: PLC0415
    from schemas.schedule import ScheduleSettings  # noqa: PLC0415
    from schemas.workspace import Workspace  # noqa: PLC0415

    config = workspace / "mobility.toml"
    text = config.read_text()
    text = text.replace("radius_m = 200.0", "radius_m = 100.0", 1)
    text = text.replace("daily_gps = []", 'daily_gps = ["od_trips"]', 1)
    config.write_text(text)
    explained = explain(open_context(workspace), ReleaseSpec(Indicator.OD_TRIPS, START, START,
                                                             source="gps"))  # fmt: skip
    assert explained.as_dict()["parameters"]["stay_rule"]["radius_m"] == 100.0
    assert explained.as_dict()["privacy_unit"] == "device-day"
    specs = specs_for_day(Workspace.open(workspace), START)
    assert [(str(s.indicator), s.source) for s in specs if s.source == "gps"] == [
        ("od_trips", "gps")
    ]
    with pytest.raises(ConfigurationError, match="daily_gps: od_connections has no daily GPS"):
        ScheduleSettings.from_mapping({"daily_gps": ["od_connections"]}, "mobility.toml")
    config.write_text(text.replace("radius_m = 100.0", "radius_m = 1.0", 1))
    with pytest.raises(ConfigurationError, match=r"\[gps\] radius_m must be metres"):
        explain(open_context(workspace), ReleaseSpec(Indicator.OD_TRIPS, START, START,
                                                     source="gps"))  # fmt: skip
    # a CDR release does not read [gps]: a bad stay rule does not stop it
    explain(open_context(workspace), ReleaseSpec(Indicator.OD_TRIPS, START, START))


def test_a_gps_release_of_a_day_without_fixes_is_refused_before_any_charge(
    workspace: Path,
) -> None:
    from schemas.errors import MobilityError  # noqa: PLC0415

    ctx = open_context(workspace)
    day = START + timedelta(days=1)
    shutil.rmtree(workspace / "staged" / FIXES_DIR / f"date={day}")
    with pytest.raises(MobilityError, match=r"No staged GPS fixes .* for 2026-03-03"):
        release(ctx, ReleaseSpec(Indicator.PRESENCE, day, day, source="gps"))
    assert ctx.ledger.entries() == []
    release(ctx, ReleaseSpec(Indicator.PRESENCE, day, day))  # CDR of that day is still there


def test_gps_aggregates_summed_over_shards_equal_one_query(gps_template: Path) -> None:
    from aggregation.indicators.shards import sharded_aggregate  # noqa: PLC0415

    ctx = open_context(gps_template, environ=KEY_ENVIRON)
    key = ctx.require_bounding_key()
    for indicator in (Indicator.PRESENCE, Indicator.OD_TRIPS, Indicator.MOBILITY_DISTANCE):
        plan_spec = ReleaseSpec(
            indicator, START, START, source="gps",
            value="subscribers" if indicator is Indicator.MOBILITY_DISTANCE else None,
        )  # fmt: skip
        from aggregation.release.plan import plan_release  # noqa: PLC0415

        request = plan_release(ctx, plan_spec, fingerprint=False).aggregate
        whole = exact_aggregate(request, key)
        if indicator is not Indicator.MOBILITY_DISTANCE:  # homes need 3 nights; 2 days here
            assert whole[request.spec.value_columns[-1]].sum() > 0
        assert sharded_aggregate(request, key, batch_bytes=1).equals(whole)  # a batch a shard


def test_re_ingesting_a_gps_drop_replaces_its_fixes_too(tiny_workspace: Path) -> None:
    drop = tiny_workspace / "gps_2026-03-02.csv"
    header = "device_id,timestamp,lat,lon,accuracy_m\n"
    both = "dev1,2026-03-01T10:00:00.000Z,0.5,0.5,10\ndev1,2026-03-02T10:00:00.000Z,1.5,1.5,\n"
    drop.write_text(header + both)
    assert ingest_files([drop], tiny_workspace, environ=KEY_ENVIRON).ok
    fixes = tiny_workspace / "staged" / FIXES_DIR
    assert sorted(p.parent.parent.name for p in fixes.glob("date=*/shard=*/*.parquet")) == [
        "date=2026-03-01", "date=2026-03-02",
    ]  # fmt: skip
    staged = pl.read_parquet(fixes / "date=2026-03-02" / "*" / "*.parquet")
    assert staged.select("lat", "lon", "admin3").row(0) == (1.5, 1.5, "A20102")
    assert staged["accuracy_m"].to_list() == [None]  # not reported: null, not 0
    drop.write_text(header + both.splitlines(keepends=True)[1])
    assert ingest_files([drop], tiny_workspace, environ=KEY_ENVIRON).ok
    assert [p.parent.parent.name for p in fixes.glob("date=*/shard=*/*.parquet")] == [
        "date=2026-03-02"
    ]
