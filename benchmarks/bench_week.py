"""The daily run as it really runs: a week of history, one day after the other.

    uv run python benchmarks/bench_week.py --events 5000000              # 5 M events a day, 7 days
    uv run python benchmarks/bench_week.py --events 100000000            # the issue's size
    uv run python benchmarks/bench_week.py --events 5000000 --executor dask --workers 2
    uv run python benchmarks/bench_week.py --events 1000000000 --days 1 --min-nights 1
    uv run python benchmarks/bench_week.py --events 100000000 --only 2 --executor dask

A synthetic country of ``--days`` days (``sample_data.synth``, no scenario, CDR only, about
``--events`` CDR events a day) is generated once under ``benchmarks/data/week_<events>x<days>/``.
Each benchmark run starts from an empty workspace (16 shards, a generous privacy budget) and, for
each day in order, puts that day's raw files into the workspace's drops folder and runs that day's
daily run in a fresh process, through the functions ``flows.daily.daily_flow`` calls, without
Prefect's orchestration around them: ingest of the day's new drops (``new_drops``,
``ingest_files``), then every release of the day's schedule (``specs_for_day``, then
``aggregation.release.release`` with the executor's aggregator, one after the other).

So day 1's home-based releases (``home_away``, ``mobility_distance``) find one night of history
and day 7's find seven: what a daily run costs once a week of data is staged. Reported per day:
events staged, ingest seconds, seconds per release, CPU seconds of the day's process (all its
threads; not the Dask workers'), its peak RSS (after ingest and at the end of the day), then
day 7's cost against day 1's and the per-event cost of the last day carried to 1 B events a day
(a straight line through the origin: an extrapolation, not a measurement). With
``--executor dask`` the exact aggregates run shard by shard on a local Dask cluster of
``--workers`` single-threaded processes (one cluster per day's process, its start-up not counted
in the releases), and each worker's peak RSS is reported too.

``--min-nights N`` runs every home-based release with ``HomeRule(min_nights=N)`` instead of the
default 3 (the workspace cannot set it; the benchmark patches the rule into each release's
request). With ``--days 1 --min-nights 1`` a single day gives everyone seen at night a home, so
day 1's ``home_away`` and ``mobility_distance`` do their whole per-subscriber work (homes,
distances of everyone with a home) instead of joining nothing: the way to measure a billion-event
day's home-based releases without generating a week of a billion events a day. Only the reading of
six more days of summaries is then missing, which the 7-day runs measure.

Results: a table, and JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from bench_release import (
    DATA,
    DAY,
    EVENTS_PER_SUBSCRIBER,
    SECRET,
    bench_workspace,
    cpu_seconds,
    machine,
    peak_rss_mb,
    run_child,
    write_results,
)

from schemas.indicators import HomeRule

if TYPE_CHECKING:
    from pathlib import Path

ENVIRON = {"MOBILITY_SECRET": SECRET}
TARGET_RATIO = 1.2
"""Day 7's daily run at most this many times day 1's (issue 21)."""
BILLION = 1_000_000_000


# --- data ------------------------------------------------------------------------------------


def prepare_week(events: int, days: int, data_dir: Path = DATA, *, seed: int = 1) -> Path:
    """The synthetic export of ``days`` days of about ``events`` CDR events each (made once)."""
    from sample_data.synth import SynthConfig, generate  # noqa: PLC0415 - keep start-up light

    base = data_dir / f"week_{events}x{days}"
    marker = base / "prepared.json"
    if marker.exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    subscribers = max(100, round(events / EVENTS_PER_SUBSCRIBER))
    print(f"preparing {days} days of ~{events:,} events ({subscribers:,} subscribers) in {base}")
    config = SynthConfig(
        subscribers=subscribers, days=days, start=DAY, seed=seed, fmt="parquet",
        scenario="none", gps_share=0.0, error_rate=0.0,
    )  # fmt: skip
    summary = generate(config, base / "export")
    marker.write_text(json.dumps({"subscribers": subscribers, "cdr_events": summary.cdr_events}))
    return base


def fresh_workspace(base: Path) -> Path:
    """An empty workspace of the export's reference data and a generous budget."""

    root = base / "workspace"
    shutil.rmtree(root, ignore_errors=True)
    ws = bench_workspace(root, base / "export")
    (ws / "drops").mkdir()
    return ws


def drop_day(base: Path, workspace: Path, day: dt.date) -> list[str]:
    """Put the raw files of ``day`` into the drops folder, as the operator's export would."""
    dropped = []
    for raw in sorted((base / "export" / "raw").glob(f"*_{day.isoformat()}.*")):
        target = workspace / "drops" / raw.name
        if not target.exists():
            os.link(raw, target)
        dropped.append(raw.name)
    return dropped


# --- one day's run, in a child process ---------------------------------------------------------


def _day_child(
    workspace: str, day_text: str, executor: str, workers: int, min_nights: int
) -> dict[str, Any]:
    """One day's daily run: its new drops ingested, then every scheduled release."""
    day = dt.date.fromisoformat(day_text)
    if min_nights != HomeRule().min_nights:
        _home_rule(HomeRule(min_nights=min_nights))
    if executor == "dask":
        return _on_dask(workspace, day, workers)
    return _run_day(workspace, day, "local")


def _home_rule(rule: HomeRule) -> None:
    """Make every release of this process find homes by ``rule`` (``--min-nights``)."""
    import aggregation.release.plan as plan_module  # noqa: PLC0415
    from aggregation.indicators import AggregateRequest  # noqa: PLC0415

    plan_module.AggregateRequest = partial(AggregateRequest, home_rule=rule)  # type: ignore[misc]


def _run_day(workspace: str, day: dt.date, executor: str) -> dict[str, Any]:
    from aggregation.ingest import ingest_files  # noqa: PLC0415
    from aggregation.release import open_context, release  # noqa: PLC0415
    from flows.daily import new_drops, require_data, specs_for_day  # noqa: PLC0415
    from flows.dask_executor import aggregator_for  # noqa: PLC0415
    from schemas.workspace import Workspace  # noqa: PLC0415

    ws = Workspace.open(workspace)
    t, cpu = time.perf_counter(), cpu_seconds()
    report = ingest_files(new_drops(ws, day), ws)
    ingest_s, ingest_cpu = time.perf_counter() - t, cpu_seconds() - cpu
    if not report.ok:
        raise SystemExit(report.failure_message())
    rss_ingest = peak_rss_mb()
    require_data(ws, day)
    aggregator = aggregator_for(executor)  # type: ignore[arg-type]
    per: dict[str, float] = {}
    t0, cpu = time.perf_counter(), cpu_seconds()
    for spec in specs_for_day(ws, day):
        t = time.perf_counter()
        release(open_context(workspace), spec, aggregator=aggregator)
        per[f"{spec.indicator}:{spec.value_column}"] = time.perf_counter() - t
    return {
        "day": day.isoformat(),
        "events": sum(f.rows_staged for f in report.files),
        "ingest_s": ingest_s,
        "releases_s": time.perf_counter() - t0,
        "ingest_cpu_s": ingest_cpu,
        "releases_cpu_s": cpu_seconds() - cpu,
        "per_release_s": per,
        "peak_rss_ingest_mb": rss_ingest,
        "peak_rss_mb": peak_rss_mb(),
    }


def _worker_peak_rss_mb() -> float:
    return peak_rss_mb()


def _on_dask(workspace: str, day: dt.date, workers: int) -> dict[str, Any]:
    from distributed import Client  # noqa: PLC0415
    from prefect import flow  # noqa: PLC0415

    from flows.dask_executor import dask_execution, dask_task_runner  # noqa: PLC0415

    started = time.perf_counter()
    with dask_execution(workers=workers) as address:
        start_up = time.perf_counter() - started

        @flow(name="bench-week", task_runner=dask_task_runner(address))
        def one_day() -> dict[str, Any]:
            return _run_day(workspace, day, "dask")

        result = one_day()
        with Client(address) as client:
            rss = client.run(_worker_peak_rss_mb)
    return {**result, "start_up_s": start_up, "worker_peak_rss_mb": sorted(rss.values())}


def _run_child(*args: str) -> dict[str, Any]:
    env = {**ENVIRON, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return run_child(__file__, *args, env=env, label="day child")


# --- the week ---------------------------------------------------------------------------------


def run_week(
    events: int, days: int, executor: str, workers: int, min_nights: int, only: int | None = None
) -> dict[str, Any]:
    """Every day's daily run in order (the first ``only`` days), from an empty workspace; the
    comparison of the last day run with the first."""
    base = prepare_week(events, days)
    ws = fresh_workspace(base)
    rows = []
    for i in range(min(days, only or days)):
        day = DAY + dt.timedelta(days=i)
        drop_day(base, ws, day)
        row = _run_child(str(ws), day.isoformat(), executor, str(workers), str(min_nights))
        row["total_s"] = row["ingest_s"] + row["releases_s"]
        row["total_cpu_s"] = row["ingest_cpu_s"] + row["releases_cpu_s"]
        rows.append(row)
        print(f"  {day}: {row['events']:>12,} events, ingest {row['ingest_s']:.1f} s, "
              f"releases {row['releases_s']:.1f} s", flush=True)  # fmt: skip
    first, last = rows[0], rows[-1]
    per_event = last["total_s"] / last["events"]
    summary = {
        "last_vs_first": last["total_s"] / first["total_s"],
        "last_vs_first_per_event": per_event / (first["total_s"] / first["events"]),
        "releases_last_vs_first": last["releases_s"] / first["releases_s"],
        "cpu_last_vs_first": last["total_cpu_s"] / first["total_cpu_s"],
        "cpu_last_vs_first_per_event": (last["total_cpu_s"] / last["events"])
        / (first["total_cpu_s"] / first["events"]),
        "last_day_s_per_million": per_event * 1e6,
        "carried_to_1B_s": per_event * BILLION,
        "target_ratio": TARGET_RATIO,
    }
    return {"events_per_day": events, "days": len(rows), "executor": executor,
            "min_nights": min_nights,
            "workers": workers if executor == "dask" else None, "rows": rows,
            "summary": summary}  # fmt: skip


def _label(name: str) -> str:
    """A column title for ``indicator:value_column``."""
    indicator, _, value = name.partition(":")
    return indicator if value in ("count", "") else f"{indicator[:8]}:{value[:8]}"


def print_week(result: dict[str, Any]) -> None:
    """The per-day table and the summary."""
    rows = result["rows"]
    names = list(rows[0]["per_release_s"])
    widths = {n: max(7, len(_label(n))) for n in names}
    print(f"\n{'day':<11} {'events':>11} {'ingest s':>8} "
          + " ".join(f"{_label(n):>{widths[n]}}" for n in names)
          + f" {'releases':>9} {'total s':>8} {'CPU s':>7} {'RSS MiB':>8}")  # fmt: skip
    for r in rows:
        cells = " ".join(f"{r['per_release_s'].get(n, 0.0):>{widths[n]}.2f}" for n in names)
        workers = r.get("worker_peak_rss_mb")
        print(f"{r['day']:<11} {r['events']:>11,} {r['ingest_s']:>8.2f} {cells} "
              f"{r['releases_s']:>9.2f} {r['total_s']:>8.2f} {r['total_cpu_s']:>7.1f} "
              f"{r['peak_rss_mb']:>8.0f}"
              + (f"  workers {[round(x) for x in workers]} MiB, start-up "
                 f"{r['start_up_s']:.1f} s" if workers else ""))  # fmt: skip
    s = result["summary"]
    print(f"  day {len(rows)} / day 1: {s['last_vs_first']:.2f}× (per event "
          f"{s['last_vs_first_per_event']:.2f}×; releases alone {s['releases_last_vs_first']:.2f}×;"
          f" CPU {s['cpu_last_vs_first']:.2f}×, per event {s['cpu_last_vs_first_per_event']:.2f}×;"
          f" target ≤ {s['target_ratio']}×)")  # fmt: skip
    print(
        f"  day {len(rows)}: {s['last_day_s_per_million']:.2f} s per M events → 1 B events a "
        f"day: {s['carried_to_1B_s'] / 60:.1f} min (carried linearly, not measured)"
    )


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="CDR events a day")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument(
        "--only", type=int, help="run only the first N days of the --days days' data"
    )
    parser.add_argument("--executor", choices=("local", "dask"), default="local")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (--executor dask)")
    parser.add_argument(
        "--min-nights", type=int, default=HomeRule().min_nights, help="home rule's nights"
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        ws, day, executor, workers, min_nights = args.child
        print(json.dumps(_day_child(ws, day, executor, int(workers), int(min_nights))))
        return 0
    result: dict[str, Any] = {
        "benchmark": "week",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **machine(),
        **run_week(args.events, args.days, args.executor, args.workers, args.min_nights, args.only),
    }
    print_week(result)
    print(f"written to {write_results('week', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
