"""Home-based releases on a week of history: full re-read against day-zone summaries (issue 21).

    uv run python benchmarks/bench_home_days.py                          # 100 000 subscribers
    uv run python benchmarks/bench_home_days.py --subscribers 20000 --repeats 1   # a quick look

A synthetic country (``sample_data.synth``) of ``--subscribers`` over 7 days is ingested once
into a workspace with 16 shards (``benchmarks/data/home_week_<N>/``). Then ``home_away`` (admin2)
and ``mobility_distance`` (``distance_m``, admin2) are released on day 1 (a home period holding
one day of data) and on day 7 (seven days: the steady state of a daily run), each in a fresh
process, as three variants, interleaved run by run:

* **before** -- homes from every event of the home period (the query before issue 21; the
  release's day-zone step is switched off in the child);
* **after, first** -- homes from day-zone summaries, the release day's summaries not made yet
  (those of earlier days are): what the first home-based release of a daily run pays;
* **after, warm** -- every summary made already: the later home-based releases of the day.

Timed: :func:`aggregation.release.release` alone (plan with its input digests, summaries made if
needed, exact aggregate, charge, noise, publication), after a fresh ledger; the digests of the
staged files are cached as in production. Reported: medians of ``--repeats`` runs and the ratio of
day 7 to day 1 per variant. JSON under ``benchmarks/results/``.
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
    DATA,
    DAY,
    SECRET,
    bench_workspace,
    cpu_seconds,
    machine,
    peak_rss_mb,
    reset_releases,
    run_child,
    write_results,
)

DAYS = 7
ENVIRON = {"MOBILITY_SECRET": SECRET}
INDICATORS = ("home_away", "mobility_distance")
VARIANTS = ("before", "after-first", "after-warm")


def prepare(subscribers: int, data_dir: Path = DATA, *, seed: int = 1) -> Path:
    """The workspace of a staged 7-day synthetic country (made once)."""
    from aggregation.ingest import ingest_files  # noqa: PLC0415 - keep start-up light
    from sample_data.synth import SynthConfig, generate  # noqa: PLC0415

    base = data_dir / f"home_week_{subscribers}"
    marker = base / "prepared.json"
    if marker.exists():
        return base / "workspace"
    shutil.rmtree(base, ignore_errors=True)
    print(f"preparing {subscribers:,} subscribers over {DAYS} days in {base} ...", flush=True)
    config = SynthConfig(
        subscribers=subscribers, days=DAYS, start=DAY, seed=seed, fmt="parquet",
        scenario="none", gps_share=0.0, error_rate=0.0,
    )  # fmt: skip
    summary = generate(config, base / "export")
    ws = bench_workspace(base / "workspace", base / "export")
    report = ingest_files([base / "export" / "raw"], ws, environ=ENVIRON)
    if not report.ok:
        raise SystemExit(report.failure_message())
    staged = sum(f.rows_staged for f in report.files)
    marker.write_text(json.dumps({"events": summary.cdr_events, "staged_events": staged}))
    return ws


def _spec(indicator: str, day: dt.date) -> Any:
    from schemas.release import ReleaseSpec  # noqa: PLC0415

    value = "distance_m" if indicator == "mobility_distance" else None
    return ReleaseSpec(indicator, day, day, level="admin2", value=value)


def _child(variant: str, indicator: str, ws: Path, day: dt.date) -> None:
    import aggregation.release.plan as plan_module  # noqa: PLC0415
    from aggregation.release import open_context, release  # noqa: PLC0415

    spec = _spec(indicator, day)
    ctx = open_context(ws, environ=ENVIRON)
    if variant == "before":
        plan_module.with_day_zones = lambda _staged, aggregate, _zones=None: (aggregate, [])  # type: ignore[assignment]
    elif variant == "after-warm":
        plan_module.plan_release(ctx, spec)  # makes every summary the release reads
    start, cpu = time.perf_counter(), cpu_seconds()
    release(ctx, spec)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_rss_mb()}))


def measure(variant: str, indicator: str, ws: Path, day: dt.date) -> dict[str, Any]:
    """One release of ``variant`` in a fresh process, after a fresh ledger."""
    reset_releases(ws)
    if variant == "after-first":  # the release day's summaries are not made yet
        shutil.rmtree(ws / "staged" / "_day_zones" / f"date={day}", ignore_errors=True)
    args = [variant, indicator, str(ws), day.isoformat()]
    return run_child(__file__, *args, label=f"{variant} child")


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, indicator, ws, day = args.child
        _child(variant, indicator, Path(ws), dt.date.fromisoformat(day))
        return 0
    ws = prepare(args.subscribers, args.data_dir)
    facts = json.loads((ws.parent / "prepared.json").read_text())
    days = {"day 1": DAY, "day 7": DAY + dt.timedelta(days=DAYS - 1)}
    # Summaries of days 1-6 are made by the releases of those days in a daily run.
    measure("after-warm", "home_away", ws, days["day 7"])
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for _ in range(args.repeats):
        for indicator in INDICATORS:
            for label, day in days.items():
                for variant in VARIANTS:
                    result = measure(variant, indicator, ws, day)
                    runs.setdefault((indicator, label, variant), []).append(result)
                    print(f"  {indicator:18} {label} {variant:12} {result['seconds']:6.2f} s",
                          flush=True)  # fmt: skip
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    print(f"\n{facts['events']:,} CDR events over {DAYS} days, {args.subscribers:,} subscribers;"
          f" medians of {args.repeats} releases (s)")  # fmt: skip
    print(f"{'indicator':18} {'variant':12} {'day 1':>7} {'day 7':>7} {'7 / 1':>6}")
    for indicator in INDICATORS:
        for variant in VARIANTS:
            one, seven = (median[indicator, label, variant] for label in days)
            print(f"{indicator:18} {variant:12} {one:7.2f} {seven:7.2f} {seven / one:6.2f}")
    out = write_results(
        "home_days",
        {"machine": machine(), "subscribers": args.subscribers, **facts,
         "runs": [{"indicator": i, "day": d, "variant": v, "results": r}
                  for (i, d, v), r in runs.items()]},
    )  # fmt: skip
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
