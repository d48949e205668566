"""Ingest throughput and peak memory on a large Parquet CDR drop (a script, not a timed test).

    uv run python benchmarks/bench_ingest.py                      # 5 M events
    uv run python benchmarks/bench_ingest.py --events 50000000    # the issue's target size
    uv run python benchmarks/bench_ingest.py --gps --repeat 3     # GPS fixes beside CDR

With ``--gps`` a GPS drop of as many fixes (one device per 40 fixes, points around the cell sites
of the country, with a position error and a reported accuracy) is ingested too, alternating with
the CDR drop in the same run, so the two are measured side by side on the same machine state:
GPS ingest locates every fix by point-in-polygon and also writes the fixes with their coordinates
(``staged/_fixes``).

The reference geography comes from a small synthetic country (``sample_data.synth``); the drop is
one export day of CDR written as Parquet in row groups of one million rows, with realistic
cardinalities (``--subscribers``, default one per 40 events) and 0.1 % exact duplicates. Data are
generated once under ``benchmarks/data/`` and reused. Ingest runs in a child process, so the peak
resident memory reported is that of ingest alone. ``--repeat N`` ingests the drop N times (each
into a fresh workspace) and reports the median wall and CPU time and the largest peak memory: on a
shared machine single runs are noisy, and CPU time is the steadier figure (the load average before
and after is recorded beside them). The first run after a checkout or an edit of a compiled module
also compiles the numba kernels (about 9 CPU-s). Results are printed as a table and written as
JSON under ``benchmarks/results/`` (both directories are git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from bench_release import peak_rss_mb

from aggregation.ingest import ingest_files
from sample_data.synth import SynthConfig, generate
from schemas.raw import RAW_CDR, RAW_GPS
from schemas.workspace import init_workspace

ROOT = Path(__file__).resolve().parent
DAY = dt.date(2026, 3, 2)
ROW_GROUP = 1_000_000
SECRET = "benchmark-secret-not-for-production-use"


def _reference(data: Path) -> Path:
    """A small synthetic country: zones and cell table."""
    out = data / "reference_country"
    if not (out / "reference" / "cells.csv").exists():
        shutil.rmtree(out, ignore_errors=True)
        generate(SynthConfig(subscribers=500, days=1, start=DAY, fmt="parquet"), out)
    return out / "reference"


def _drop(data: Path, reference: Path, events: int, subscribers: int, seed: int) -> Path:
    """One CDR export day of ``events`` rows (written once, then reused)."""
    path = data / f"cdr_{events}" / f"cdr_{DAY}.parquet"
    if path.exists() and pq.read_metadata(path).num_rows == events:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cells_table = pacsv.read_csv(reference / "cells.csv")
    cells = cells_table.filter(pc.is_null(cells_table["valid_to"]))["cell_id"].combine_chunks()
    rng = np.random.default_rng(seed)
    numbers = rng.choice(10**9, size=subscribers, replace=False) + 234 * 10**10
    msisdns = pc.cast(pa.array(numbers), pa.string())
    midnight = (DAY - dt.date(1970, 1, 1)).days * 86_400
    written = 0
    with pq.ParquetWriter(path, RAW_CDR.schema, compression="zstd") as writer:
        while written < events:
            n = min(ROW_GROUP, events - written)
            table = _events(rng, n, written, msisdns, cells, midnight)
            dupes = rng.random(n) < 0.001  # 0.1 % exact duplicates
            take = np.repeat(np.arange(n), np.where(dupes, 2, 1))[:n]
            writer.write_table(table.take(pa.array(take)).cast(RAW_CDR.schema))
            written += n
    return path


def _gps_drop(data: Path, reference: Path, fixes: int, devices: int, seed: int) -> Path:
    """One GPS export day of ``fixes`` rows around the country's cell sites (written once)."""
    path = data / f"gps_{fixes}" / f"gps_{DAY}.parquet"
    if path.exists() and pq.read_metadata(path).num_rows == fixes:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    sites = pacsv.read_csv(reference / "cells.csv")
    lat, lon = sites["lat"].to_numpy(), sites["lon"].to_numpy()
    rng = np.random.default_rng(seed + 1)
    ids = pc.cast(pa.array(rng.choice(10**12, size=devices, replace=False)), pa.string())
    midnight_ms = (DAY - dt.date(1970, 1, 1)).days * 86_400_000
    written = 0
    with pq.ParquetWriter(path, RAW_GPS.schema, compression="zstd") as writer:
        while written < fixes:
            n = min(ROW_GROUP, fixes - written)
            at = rng.integers(0, len(lat), n)
            table = pa.table(
                {
                    "device_id": ids.take(pa.array(rng.integers(0, devices, n))),
                    "timestamp": pa.array(
                        np.sort(midnight_ms + rng.integers(0, 86_400_000, n)),
                        pa.timestamp("ms", tz="UTC"),
                    ),
                    "lat": lat[at] + rng.normal(0, 0.002, n),
                    "lon": lon[at] + rng.normal(0, 0.002, n),
                    "accuracy_m": rng.lognormal(np.log(12.0), 0.6, n).astype(np.float32),
                }
            )
            writer.write_table(table.cast(RAW_GPS.schema))
            written += n
    return path


def _events(
    rng: np.random.Generator,
    n: int,
    offset: int,
    msisdns: pa.Array,
    cells: pa.Array,
    midnight: int,
) -> pa.Table:
    kind = rng.choice(3, size=n, p=(0.28, 0.17, 0.55))
    outgoing = rng.random(n) < 0.5
    direction = pa.array(["in", "out"]).take(pa.array(outgoing.astype(np.int8)))
    return pa.table(
        {
            "record_id": pc.cast(pa.array(np.arange(offset, offset + n)), pa.string()),
            "msisdn": msisdns.take(pa.array(rng.integers(0, len(msisdns), n))),
            "event_time": pa.array(
                np.sort(midnight + rng.integers(0, 86_400, n)), pa.timestamp("s")
            ),
            "cell_id": cells.take(pa.array(rng.integers(0, len(cells), n))),
            "event_type": pa.array(["call", "sms", "data"]).take(pa.array(kind)),
            "direction": pc.if_else(pa.array(kind == 2), pa.scalar(None, pa.string()), direction),
            "duration_s": pa.array(rng.integers(1, 3600, n).astype(np.int32), mask=kind == 1),
            "volume_bytes": pa.array(rng.integers(1, 10**8, n), mask=kind != 2),
        }
    )


def _child(drop: Path, workspace: Path) -> None:
    """Ingest ``drop`` into ``workspace``; print the timing as JSON."""
    started = time.perf_counter()
    cpu = time.process_time()
    report = ingest_files([drop], workspace, environ={"MOBILITY_SECRET": SECRET})
    seconds = time.perf_counter() - started
    outcome = report.files[0]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu,
                "peak_rss_mb": peak_rss_mb(),
                "status": outcome.status,
                "error": outcome.error,
                "rows_in": outcome.rows_in,
                "rows_staged": outcome.rows_staged,
                "rows_quarantined": outcome.rows_quarantined,
                "duplicates_dropped": outcome.duplicates_dropped,
                "partitions": outcome.partitions,
            }
        )
    )


def _workspace(data: Path, reference: Path) -> Path:
    ws = data / "workspace"
    shutil.rmtree(ws, ignore_errors=True)
    init_workspace(ws)
    (ws / "reference").mkdir()
    for name in ("zones.parquet", "cells.csv"):
        shutil.copy(reference / name, ws / "reference" / name)
    return ws


def _run(drop: Path, ws: Path) -> dict[str, Any] | None:
    """Ingest ``drop`` into ``ws`` in a child process; its measurements, or ``None`` on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(drop), str(ws)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        return None
    run: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if run["status"] != "staged":
        print(f"ingest failed: {run['error']}", file=sys.stderr)
        return None
    return run


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="rows in the drop")
    parser.add_argument("--subscribers", type=int, default=None, help="default: events / 40")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs; medians are reported")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--gps", action="store_true", help="a GPS drop too, side by side")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    data: Path = args.data_dir
    data.mkdir(parents=True, exist_ok=True)
    reference = _reference(data)
    subscribers = args.subscribers or max(1, args.events // 40)
    t0 = time.perf_counter()
    drop = _drop(data, reference, args.events, subscribers, args.seed)
    prepared = time.perf_counter() - t0
    gps = _gps_drop(data, reference, args.events, subscribers, args.seed) if args.gps else None
    load_before = os.getloadavg()[0]
    runs, gps_runs = [], []
    for _ in range(max(1, args.repeat)):
        run = _run(drop, _workspace(data, reference))
        if run is None:
            return 1
        runs.append(run)
        if gps is not None:  # alternating, so both see the same machine state
            gps_run = _run(gps, _workspace(data, reference))
            if gps_run is None:
                return 1
            gps_runs.append(gps_run)
    seconds = statistics.median(r["seconds"] for r in runs)
    cpu_seconds = statistics.median(r["cpu_seconds"] for r in runs)
    run = runs[-1]
    result = {
        "benchmark": "ingest",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "events": args.events,
        "subscribers": subscribers,
        "input_bytes": drop.stat().st_size,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "data_prepare_seconds": round(prepared, 1),
        "runs": len(runs),
        "ingest_seconds": round(seconds, 2),
        "events_per_second": round(args.events / seconds),
        "cpu_seconds": round(cpu_seconds, 2),
        "events_per_cpu_second": round(args.events / cpu_seconds),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs)),
        "ingest_seconds_each": [round(r["seconds"], 2) for r in runs],
        "cpu_seconds_each": [round(r["cpu_seconds"], 2) for r in runs],
        **{k: run[k] for k in ("rows_staged", "rows_quarantined", "duplicates_dropped")},
        "partitions": run["partitions"],
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }
    if gps_runs:
        gps_seconds = statistics.median(r["seconds"] for r in gps_runs)
        gps_cpu = statistics.median(r["cpu_seconds"] for r in gps_runs)
        result |= {
            "gps_ingest_seconds": round(gps_seconds, 2),
            "gps_events_per_second": round(args.events / gps_seconds),
            "gps_events_per_cpu_second": round(args.events / gps_cpu),
            "gps_peak_rss_mb": round(max(r["peak_rss_mb"] for r in gps_runs)),
            "gps_rows_staged": gps_runs[-1]["rows_staged"],
            "gps_rows_quarantined": gps_runs[-1]["rows_quarantined"],
            "gps_over_cdr_seconds": round(gps_seconds / seconds, 2),
        }
    results = ROOT / "results"
    results.mkdir(exist_ok=True)
    out = results / f"ingest_{args.events}_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:,}" if isinstance(value, int) else value
        print(f"{key:<{width}}  {shown}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
