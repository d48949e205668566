"""Write a synthetic operator export and its ground truth, day by day, chunk by chunk.

Layout of the output directory::

    manifest.json                      the config, row counts and SHA-256 of every file
    reference/zones.parquet            zones of every admin level (contract ``zones``)
    reference/zones_admin{1,2,3}.geojson
    reference/cells.csv                the operator's cell table (contract ``cells``)
    raw/cdr_YYYY-MM-DD.{csv,parquet}   one CDR export per local day (contract ``raw_cdr``)
    raw/gps_YYYY-MM-DD.{csv,parquet}   one app-fix export per local day (contract ``raw_gps``)
    truth/subscribers.parquet          who lives and works where (``true_subscribers``)
    truth/stays_YYYY-MM-DD.parquet     each subscriber-day's itinerary (``true_stays``)
    truth/subscriber_days_YYYY-MM-DD.parquet
    truth/injected_errors.parquet      every injected fault (``injected_errors``)

Memory holds one chunk of subscribers for one day at a time, whatever the size of the country or
the length of the period.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import shapely

from sample_data.synth.corruption import Injected, break_lines, corrupt
from sample_data.synth.country import Country, build_country, to_lonlat
from sample_data.synth.events import cdr_events, gps_fixes
from sample_data.synth.itinerary import ANCHOR_NAMES, plan_day, stays
from sample_data.synth.population import NO_RELOCATION, build_chunk, evacuated_zone
from schemas.errors import ConfigurationError
from schemas.raw import RAW_CDR, RAW_GPS
from schemas.truth import INJECTED_ERRORS, TRUE_STAYS, TRUE_SUBSCRIBER_DAYS, TRUE_SUBSCRIBERS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from numpy.typing import NDArray

    from sample_data.synth.config import SynthConfig
    from sample_data.synth.population import Subscribers
    from schemas.contract import Contract

GENERATOR_VERSION = "1"


@dataclass
class Summary:
    """What a generation run wrote."""

    out_dir: str
    config: dict[str, Any]
    zones: dict[str, int]
    cells: int
    cdr_events: int = 0
    gps_fixes: int = 0
    injected_errors: int = 0
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    scenario: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_minute(self) -> float:
        """Raw rows (CDR and GPS) written per minute of wall-clock time."""
        return 60.0 * (self.cdr_events + self.gps_fixes) / max(self.seconds, 1e-9)


class _Sink(Protocol):
    def write(
        self, table: pa.Table, malformed: NDArray[np.int64], rng: np.random.Generator
    ) -> None: ...

    def close(self) -> None: ...


def _csv_options(*, include_header: bool = True) -> pacsv.WriteOptions:
    """Plain CSV as exports write it: no quotes (no value holds a comma, quote or newline)."""
    return pacsv.WriteOptions(
        include_header=include_header,
        quoting_style="none",
        quoting_header="none",
        batch_size=1 << 16,
    )


class _CsvSink:
    def __init__(self, path: Path) -> None:
        self._fh = path.open("wb")
        self._header = True

    def write(
        self, table: pa.Table, malformed: NDArray[np.int64], rng: np.random.Generator
    ) -> None:
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, _csv_options(include_header=self._header))
        self._fh.write(break_lines(buf.getvalue(), malformed, rng, header=self._header))
        self._header = False

    def close(self) -> None:
        self._fh.close()


class _ParquetSink:
    def __init__(self, path: Path, contract: Contract) -> None:
        # Exports declare every column nullable: injected faults include nulls in required ones.
        schema = contract.schema
        self._schema = pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")

    def write(
        self, table: pa.Table, malformed: NDArray[np.int64], rng: np.random.Generator
    ) -> None:
        del malformed, rng  # Parquet carries no lines to malform
        self._writer.write_table(table.cast(self._schema))

    def close(self) -> None:
        self._writer.close()


class _TableSink:
    """Parquet truth table, written chunk by chunk; validated against its contract."""

    def __init__(self, path: Path, contract: Contract) -> None:
        self._contract = contract
        self._writer = pq.ParquetWriter(path, contract.schema, compression="zstd")

    def write(self, table: pa.Table) -> None:
        table = table.cast(self._contract.schema)
        self._contract.validate(table, source=str(self._writer.where))
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        msg = (
            f"Output directory {out_dir} is not empty. Choose an empty or new directory, or pass "
            "--overwrite to replace a previous synthetic export there."
        )
        raise ConfigurationError(msg)
    for sub in ("reference", "raw", "truth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
        for old in (out_dir / sub).iterdir():
            if old.is_file():
                old.unlink()


def write_reference(country: Country, out_dir: Path) -> None:
    """Zones (Parquet and one GeoJSON per level) and the cell table (CSV)."""
    pq.write_table(country.zones, out_dir / "reference" / "zones.parquet", compression="zstd")
    for level in ("admin1", "admin2", "admin3"):
        zones = country.zones.filter(pc.equal(country.zones["level"], level)).to_pylist()
        features = [
            {
                "type": "Feature",
                "id": z["zone_id"],
                "properties": {k: v for k, v in z.items() if k != "geometry_wkb"},
                "geometry": json.loads(shapely.to_geojson(shapely.from_wkb(z["geometry_wkb"]))),
            }
            for z in zones
        ]
        doc = {"type": "FeatureCollection", "name": f"nulland_{level}", "features": features}
        (out_dir / "reference" / f"zones_{level}.geojson").write_text(json.dumps(doc))
    pacsv.write_csv(country.cells, out_dir / "reference" / "cells.csv", _csv_options())


def _subscriber_truth(subs: Subscribers, country: Country, config: SynthConfig) -> pa.Table:
    admin3 = country.cell_admin3
    moved = subs.relocation_day != NO_RELOCATION
    reloc = [
        config.start + dt.timedelta(days=int(d)) if m else None
        for d, m in zip(subs.relocation_day, moved, strict=True)
    ]
    return pa.table(
        {
            "msisdn": subs.msisdn,
            "device_id": subs.device_id,
            "home_admin3": admin3[subs.home_cell],
            "work_admin3": pa.array(admin3[subs.work_cell], mask=~subs.commuter),
            "activity_rate": subs.rate,
            "relocation_date": pa.array(reloc, pa.date32()),
            "new_home_admin3": pa.array(admin3[subs.new_home_cell], mask=~moved),
        }
    )


def _stay_truth(
    subs: Subscribers, country: Country, date: dt.date, day_stays: Any, midnight: int
) -> pa.Table:
    lon, lat = to_lonlat(day_stays.xy[:, 0], day_stays.xy[:, 1])
    return pa.table(
        {
            "date": pa.array([date] * day_stays.sub.size, pa.date32()),
            "msisdn": subs.msisdn.take(pa.array(day_stays.sub)),
            "seq": day_stays.seq.astype(np.int8),
            "start": pa.array((midnight + day_stays.start) * 1000, pa.timestamp("ms")),
            "end": pa.array((midnight + day_stays.end) * 1000, pa.timestamp("ms")),
            "anchor": pa.array(np.array(ANCHOR_NAMES)[day_stays.anchor]),
            "cell_id": country.cells.column("cell_id").take(pa.array(day_stays.cell)),
            "admin3": country.cell_admin3[day_stays.cell],
            "lat": pa.array(np.round(lat, 6)),
            "lon": pa.array(np.round(lon, 6)),
        }
    )


def _trips_per_subscriber(n: int, day_stays: Any, country: Country) -> NDArray[np.int64]:
    zone = country.cell_admin3[day_stays.cell]
    change = np.zeros(day_stays.sub.size, dtype=bool)
    change[1:] = (day_stays.sub[1:] == day_stays.sub[:-1]) & (zone[1:] != zone[:-1])
    return np.bincount(day_stays.sub[change], minlength=n)


def generate(
    config: SynthConfig,
    out_dir: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Write the synthetic export for ``config`` into ``out_dir``; return what was written."""
    started = time.perf_counter()
    _check_out_dir(out_dir, overwrite)
    country = build_country(config)
    write_reference(country, out_dir)
    levels = pc.value_counts(country.zones["level"]).to_pylist()
    summary = Summary(
        out_dir=str(out_dir),
        config={k: str(v) if isinstance(v, dt.date) else v for k, v in asdict(config).items()},
        zones={str(v["values"]): int(v["counts"]) for v in levels},
        cells=country.cells.num_rows,
        scenario={"kind": config.scenario, "start": str(config.effective_scenario_start)},
    )
    if config.scenario == "evacuation":
        summary.scenario["evacuated_admin3"] = evacuated_zone(country)
    people = _TableSink(out_dir / "truth" / "subscribers.parquet", TRUE_SUBSCRIBERS)
    errors = _TableSink(out_dir / "truth" / "injected_errors.parquet", INJECTED_ERRORS)
    export = _Export(config, country, out_dir, people, errors, summary)
    try:
        for day, date in enumerate(config.dates):
            export.write_day(day, date)
            if progress is not None:
                progress(f"{date}: {summary.cdr_events:,} CDR events, {summary.gps_fixes:,} fixes")
    finally:
        people.close()
        errors.close()
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != "manifest.json"):
        rel = path.relative_to(out_dir).as_posix()
        summary.files[rel] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    summary.seconds = round(time.perf_counter() - started, 3)
    manifest = {"generator_version": GENERATOR_VERSION, **asdict(summary)}
    for volatile in ("seconds", "out_dir"):  # the manifest is deterministic
        manifest.pop(volatile)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return summary


@dataclass
class _Export:
    """The open outputs of one run; writes one local day at a time."""

    config: SynthConfig
    country: Country
    out_dir: Path
    people: _TableSink
    errors: _TableSink
    summary: Summary

    def write_day(self, day: int, date: dt.date) -> None:
        """Generate and write every chunk of subscribers for one day."""
        config, country, out_dir = self.config, self.country, self.out_dir
        ext = config.fmt
        paths = {feed: out_dir / "raw" / f"{feed}_{date}.{ext}" for feed in ("cdr", "gps")}
        sinks: dict[str, _Sink] = (
            {feed: _CsvSink(path) for feed, path in paths.items()}
            if ext == "csv"
            else {
                "cdr": _ParquetSink(paths["cdr"], RAW_CDR),
                "gps": _ParquetSink(paths["gps"], RAW_GPS),
            }
        )
        rows_written = {"cdr": 0, "gps": 0}
        stay_sink = _TableSink(out_dir / "truth" / f"stays_{date}.parquet", TRUE_STAYS)
        day_sink = _TableSink(
            out_dir / "truth" / f"subscriber_days_{date}.parquet", TRUE_SUBSCRIBER_DAYS
        )
        midnight = (date - dt.date(1970, 1, 1)).days * 86_400
        try:
            for chunk in range(config.chunks):
                subs = build_chunk(config, country, chunk)
                if day == 0:
                    self.people.write(_subscriber_truth(subs, country, config))
                rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2, day, chunk]))
                plan = plan_day(config, subs, day, date, rng)
                day_stays = stays(plan)
                stay_sink.write(_stay_truth(subs, country, date, day_stays, midnight))
                cdr, counts = cdr_events(
                    subs, plan, country=country, date=date, chunk=chunk, rng=rng
                )
                gps = gps_fixes(subs, plan, date, config.timezone, rng)
                day_sink.write(
                    pa.table(
                        {
                            "date": pa.array([date] * subs.size, pa.date32()),
                            "msisdn": subs.msisdn,
                            "home_admin3": country.cell_admin3[plan.home_cell],
                            "n_events": counts,
                            "n_trips": _trips_per_subscriber(subs.size, day_stays, country),
                        }
                    )
                )
                self.summary.cdr_events += cdr.num_rows
                self.summary.gps_fixes += gps.num_rows
                for feed, table in (("cdr", cdr), ("gps", gps)):
                    bad = corrupt(table, feed, config.fmt, config.error_rate, rng)
                    sinks[feed].write(bad.table, bad.malformed, rng)
                    rel = paths[feed].relative_to(out_dir).as_posix()
                    self.errors.write(_error_rows(bad.injected, rel, rows_written[feed], ext))
                    self.summary.injected_errors += len(bad.injected.position)
                    rows_written[feed] += bad.table.num_rows
        finally:
            for sink in sinks.values():
                sink.close()
            stay_sink.close()
            day_sink.close()


def _error_rows(injected: Injected, rel_path: str, offset: int, ext: str) -> pa.Table:
    position = np.asarray(injected.position, dtype=np.int64)
    order = np.argsort(position, kind="stable")
    row_number = offset + position[order] + 1
    dup = [injected.duplicate_of[i] for i in order]
    return pa.table(
        {
            "file": [rel_path] * position.size,
            "row_number": row_number,
            "line": pa.array(row_number + 1, mask=np.full(position.size, ext != "csv")),
            "kind": [injected.kind[i] for i in order],
            "column": pa.array([injected.column[i] for i in order], pa.string()),
            "duplicate_of": pa.array(
                [None if d is None else offset + d + 1 for d in dup], pa.int64()
            ),
        }
    )
