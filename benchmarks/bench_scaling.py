"""Scaling: exact aggregates on 1, 2, … Dask workers, and the daily run's cost against events.

    uv run python benchmarks/bench_scaling.py                                  # both parts
    uv run python benchmarks/bench_scaling.py --part workers --events 10000000 --workers 1 2
    uv run python benchmarks/bench_scaling.py --part events --sizes 1000000 10000000 50000000

**workers** -- on one staged day (the data of ``bench_release.py``, 16 shards), the exact
``od_trips`` and ``presence`` aggregates computed in one process (DuckDB on every core; as one
query, then one query per shard summed, as ``mobility`` does), then by
:func:`flows.dask_executor.dask_aggregate` on a local cluster of 1, 2, … worker processes (one
DuckDB thread each; one Prefect task per shard, inside a flow on a ``DaskTaskRunner``). Reported:
the median of ``--repeats`` runs, the cluster's start-up, and each worker's peak RSS.

**events** -- the daily run's work at several sizes, each part in a fresh process: ingest of the
raw CDR drop into an empty workspace, then every daily indicator of the default schedule released
(``flows.daily.specs_for_day``: event_counts, presence, od_trips, od_connections, home_away,
mobility_distance × 2) on the local executor. Reported: seconds and peak RSS per part, a least
squares line ``seconds = a + b · events`` through the measured points, and what the line says for
100 M and 1 B events (the line's values: a size not in ``--sizes`` is extrapolated, not measured;
``--sizes ... 1000000000`` measures a billion, about 20 minutes here plus 25 to generate the data
once, 10 GB). The single day here gives home-based indicators one night; a real daily run reads
seven days for them (see the README).

Results: tables, and JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_release import (
    DAY,
    SECRET,
    StagedCountry,
    machine,
    peak_rss_mb,
    prepare,
    reset_releases,
    run_child,
    write_results,
)

ENVIRON = {"MOBILITY_SECRET": SECRET}
TARGET_SECONDS_1B = 20 * 60
TARGET_RSS_MB = 12 * 1024
SCALING_INDICATORS = ("od_trips", "presence")


# --- children --------------------------------------------------------------------------------


def _requests(country: StagedCountry) -> dict[str, Any]:
    from aggregation.release import open_context, plan_release  # noqa: PLC0415
    from schemas.release import ReleaseSpec  # noqa: PLC0415

    ctx = open_context(country.workspace, environ=ENVIRON)
    return {
        "key": ctx.require_bounding_key(),
        **{i: plan_release(ctx, ReleaseSpec(i, DAY, DAY)).aggregate for i in SCALING_INDICATORS},  # type: ignore[arg-type]
    }


def _local_child(country: StagedCountry, repeats: int, by_shard: int) -> dict[str, Any]:
    from aggregation.indicators import exact_aggregate  # noqa: PLC0415
    from aggregation.indicators.shards import sharded_aggregate  # noqa: PLC0415

    aggregate = sharded_aggregate if by_shard else exact_aggregate
    times = _timed(aggregate, _requests(country), repeats)
    return {"times": times, "peak_rss_mb": peak_rss_mb()}


def _timed(aggregate: Any, req: dict[str, Any], repeats: int) -> dict[str, list[float]]:
    """Seconds of ``repeats`` runs of ``aggregate`` for each scaling indicator."""
    times: dict[str, list[float]] = {}
    for indicator in SCALING_INDICATORS:
        for _ in range(repeats):
            t = time.perf_counter()
            aggregate(req[indicator], req["key"])
            times.setdefault(indicator, []).append(time.perf_counter() - t)
    return times


def _worker_peak_rss_mb() -> float:
    return peak_rss_mb()


def _dask_child(country: StagedCountry, workers: int, repeats: int) -> dict[str, Any]:
    from distributed import Client  # noqa: PLC0415
    from prefect import flow  # noqa: PLC0415

    from flows.dask_executor import dask_aggregate, dask_execution, dask_task_runner  # noqa: PLC0415

    req = _requests(country)
    started = time.perf_counter()
    with dask_execution(workers=workers) as address:
        start_up = time.perf_counter() - started

        @flow(name="bench-scaling", task_runner=dask_task_runner(address))
        def measure() -> dict[str, list[float]]:
            return _timed(dask_aggregate, req, repeats)

        times = measure()
        with Client(address) as client:
            rss = client.run(_worker_peak_rss_mb)
    return {
        "times": times,
        "start_up_seconds": start_up,
        "worker_peak_rss_mb": sorted(rss.values()),
        "peak_rss_mb": peak_rss_mb(),
    }


def _ingest_child(country: StagedCountry) -> dict[str, Any]:
    from aggregation.ingest import ingest_files  # noqa: PLC0415
    from schemas.workspace import init_workspace  # noqa: PLC0415

    scratch = country.directory / "ingest_scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    ws = init_workspace(scratch).root
    shutil.copy(country.workspace / "mobility.toml", ws / "mobility.toml")
    shutil.copytree(country.workspace / "reference", ws / "reference")
    raw = country.export / "raw" / f"cdr_{DAY}.parquet"
    t = time.perf_counter()
    report = ingest_files([raw], ws, environ=ENVIRON)
    seconds = time.perf_counter() - t
    ok = report.ok
    shutil.rmtree(scratch, ignore_errors=True)
    return {"seconds": seconds, "ok": ok, "peak_rss_mb": peak_rss_mb()}


def _releases_child(country: StagedCountry) -> dict[str, Any]:
    from aggregation.release import open_context, release  # noqa: PLC0415
    from flows.daily import specs_for_day  # noqa: PLC0415
    from schemas.workspace import Workspace  # noqa: PLC0415

    reset_releases(country.workspace)
    specs = specs_for_day(Workspace.open(country.workspace), DAY)
    per: dict[str, float] = {}
    t0 = time.perf_counter()
    for spec in specs:
        t = time.perf_counter()
        release(open_context(country.workspace, environ=ENVIRON), spec)
        per[f"{spec.indicator}:{spec.value_column}"] = time.perf_counter() - t
    return {"seconds": time.perf_counter() - t0, "per_release": per, "peak_rss_mb": peak_rss_mb()}


_CHILDREN = {"local": _local_child, "dask": _dask_child, "ingest": _ingest_child,
             "releases": _releases_child}  # fmt: skip


def _run_child(kind: str, country: StagedCountry, *extra: int) -> dict[str, Any]:
    args = [kind, str(country.directory), *(str(x) for x in extra)]
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return run_child(__file__, *args, env=env, label=f"{kind} child")


def _child(kind: str, directory: str, *extra: str) -> None:
    country = StagedCountry(
        Path(directory), **json.loads(Path(directory, "prepared.json").read_text())
    )
    print(json.dumps(_CHILDREN[kind](country, *(int(x) for x in extra))))


# --- parts -----------------------------------------------------------------------------------


def workers_part(events: int, workers: list[int], repeats: int) -> dict[str, Any]:
    """Exact aggregates in one process, then on Dask with each number of workers."""
    country = prepare(events)
    rows = []
    for by_shard, name in ((0, "one query"), (1, "one query per shard, summed (the default)")):
        local = _run_child("local", country, repeats, by_shard)
        rows.append({"executor": f"local, 1 process, DuckDB on every core: {name}",
                     "workers": 0, **{i: statistics.median(t) for i, t in local["times"].items()},
                     "peak_rss_mb": [round(local["peak_rss_mb"])]})  # fmt: skip
    for n in workers:
        got = _run_child("dask", country, n, repeats)
        rows.append({
            "executor": f"dask, {n} worker(s) × 1 thread", "workers": n,
            **{i: statistics.median(t) for i, t in got["times"].items()},
            "start_up_s": got["start_up_seconds"],
            "peak_rss_mb": [round(x) for x in got["worker_peak_rss_mb"]],
        })  # fmt: skip
    return {"events": country.events, "repeats": repeats, "rows": rows}


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares ``y = a + b x`` (``b`` alone through the origin for a single point)."""
    if len(xs) == 1:
        return 0.0, ys[0] / xs[0]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - b * mx, b


def events_part(sizes: list[int]) -> dict[str, Any]:
    """Ingest and every daily release at each size; a line through the points, extrapolated."""
    rows = []
    for size in sizes:
        country = prepare(size)
        ingest = _run_child("ingest", country)
        releases = _run_child("releases", country)
        rows.append({
            "events": country.events,
            "ingest_s": ingest["seconds"], "ingest_peak_rss_mb": round(ingest["peak_rss_mb"]),
            "releases_s": releases["seconds"],
            "releases_peak_rss_mb": round(releases["peak_rss_mb"]),
            "per_release_s": releases["per_release"],
            "total_s": ingest["seconds"] + releases["seconds"],
        })  # fmt: skip
        print(f"  {country.events:>12,} events: ingest {ingest['seconds']:.1f} s, "
              f"releases {releases['seconds']:.1f} s", flush=True)  # fmt: skip
    if len(rows) < 2:  # a line needs two points
        return {"rows": rows, "fits": None}
    xs = [float(r["events"]) for r in rows]
    fits: dict[str, dict[str, float]] = {}
    for part in ("ingest_s", "releases_s", "total_s"):
        a, b = _fit(xs, [r[part] for r in rows])
        fits[part] = {
            "intercept_s": a, "seconds_per_million": b * 1e6,
            "extrapolated_100M_s": a + b * 1e8, "extrapolated_1B_s": a + b * 1e9,
        }  # fmt: skip
    # Memory is not extrapolated: it is bounded by settings, not by events (ingest: chunks,
    # buffers and its DuckDB limit; releases: [aggregation] memory_limit_mb, spilling beyond).
    from schemas.workspace import AggregationSettings, IngestSettings  # noqa: PLC0415

    fits["peak_rss_mb"] = {
        "measured_max_mb": float(
            max(max(r["ingest_peak_rss_mb"], r["releases_peak_rss_mb"]) for r in rows)
        ),
        "aggregation_memory_limit_mb": float(AggregationSettings().memory_limit_mb),
        "ingest_memory_limit_mb": float(IngestSettings().memory_limit_mb),
    }
    return {"rows": rows, "fits": fits}


def print_workers(part: dict[str, Any]) -> None:
    """The workers table."""
    print(f"\nexact aggregates, {part['events']:,} events, medians of {part['repeats']} (seconds)")
    print(f"{'executor':<42} {'od_trips':>9} {'presence':>9} {'start-up':>9}  peak RSS MiB")
    for r in part["rows"]:
        start = f"{r['start_up_s']:9.1f}" if "start_up_s" in r else f"{'-':>9}"
        print(f"{r['executor']:<42} {r['od_trips']:>9.2f} {r['presence']:>9.2f} {start}  "
              f"{r['peak_rss_mb']}")  # fmt: skip


def print_events(part: dict[str, Any]) -> None:
    """The events table and the extrapolation."""
    print(f"\n{'events':>12} {'ingest s':>9} {'RSS MiB':>8} {'releases s':>11} {'RSS MiB':>8} "
          f"{'total s':>8} {'s / M events':>13}")  # fmt: skip
    for r in part["rows"]:
        print(f"{r['events']:>12,} {r['ingest_s']:>9.1f} {r['ingest_peak_rss_mb']:>8} "
              f"{r['releases_s']:>11.1f} {r['releases_peak_rss_mb']:>8} {r['total_s']:>8.1f} "
              f"{r['total_s'] / r['events'] * 1e6:>13.2f}")  # fmt: skip
    f = part["fits"]
    if f is None:
        print("  (one size only: give --sizes with two or more to fit a line)")
        return
    for name in ("ingest_s", "releases_s", "total_s"):
        print(f"  fit {name:<10} {f[name]['intercept_s']:7.1f} s + "
              f"{f[name]['seconds_per_million']:6.2f} s/M events → 100 M: "
              f"{f[name]['extrapolated_100M_s'] / 60:5.1f} min, 1 B: "
              f"{f[name]['extrapolated_1B_s'] / 60:6.1f} min (on the line)")  # fmt: skip
    m = f["peak_rss_mb"]
    print(f"  peak RSS measured: {m['measured_max_mb'] / 1024:.1f} GiB; not extrapolated: "
          f"releases' DuckDB is capped at {m['aggregation_memory_limit_mb'] / 1024:.0f} GiB "
          f"([aggregation] memory_limit_mb, spills beyond), ingest's at "
          f"{m['ingest_memory_limit_mb']:.0f} MiB (target < {TARGET_RSS_MB / 1024:.0f} GiB; "
          f"1 B target < {TARGET_SECONDS_1B / 60:.0f} min)")  # fmt: skip


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("workers", "events", "both"), default="both")
    parser.add_argument("--events", type=int, default=10_000_000, help="size of the workers part")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    result: dict[str, Any] = {
        "benchmark": "scaling",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **machine(),
    }
    if args.part in ("workers", "both"):
        result["workers"] = workers_part(args.events, args.workers, args.repeats)
        print_workers(result["workers"])
    if args.part in ("events", "both"):
        result["events"] = events_part(sorted(args.sizes))
        print_events(result["events"])
    out = write_results("scaling", result)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
