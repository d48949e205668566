"""Stay detection in app GPS fixes: precision and recall against the synthetic truth, and speed.

    uv run python benchmarks/bench_gps_stays.py                   # 20 000 subscribers, 30 % app
    uv run python benchmarks/bench_gps_stays.py --subscribers 200000 --gps-share 0.5

On one day of a synthetic country (``--subscribers``, ``--gps-share`` of them with the app, no
injected errors), :func:`aggregation.gps_stays.detect_stays` runs under a grid of rules around
the defaults (radius × minimum dwell), and under harder fixes than the generator's: every
position error multiplied (``noise x4``: about 50 m median instead of 12 m) and a share of
fixes thrown 1-3 km away (``jumps 3 %``, a multipath or a cell-based fallback). Each is scored
with :func:`sample_data.synth.truth.score_stays`: *precision* (detected stays covered at least
half by a true stay within 200 m of its centre), *recall* over the true stays the fixes can show
(two fixes at least the dwell apart inside them), and recall over all true stays of the devices
(which also counts how often the app reports). Speed: fixes per second of ``detect_stays``
(median of ``--repeat`` runs, compilation excluded). Results: a table, and JSON under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from bench_release import machine, write_results

from aggregation.gps_stays import detect_stays
from sample_data.synth import SynthConfig, generate
from sample_data.synth.truth import score_stays, synthetic_fixes
from schemas.gps import StayRule

DAY = dt.date(2026, 3, 2)
TIME_ZONE = "Africa/Lagos"
GRID = [(50, 20), (100, 20), (200, 10), (200, 20), (200, 30), (300, 20), (500, 20)]
M_PER_DEG = 111_195.0


def harder(fixes: pl.DataFrame, *, noise: float, jumps: float, seed: int) -> pl.DataFrame:
    """``fixes`` with their position errors scaled by ``noise`` and a share ``jumps`` of them
    thrown 1-3 km away in a random direction."""
    rng = np.random.default_rng(seed)
    n = fixes.height
    sigma = fixes["accuracy_m"].to_numpy() * 0.66 * (noise - 1.0)
    east, north = rng.normal(0, 1, n) * sigma, rng.normal(0, 1, n) * sigma
    jump = rng.random(n) < jumps
    far, angle = rng.uniform(1000, 3000, n), rng.uniform(0, 2 * np.pi, n)
    east += np.where(jump, far * np.cos(angle), 0.0)
    north += np.where(jump, far * np.sin(angle), 0.0)
    lat = fixes["lat"].to_numpy()
    return fixes.with_columns(
        pl.Series("lat", lat + north / M_PER_DEG),
        pl.Series("lon", fixes["lon"].to_numpy() + east / (M_PER_DEG * np.cos(np.radians(lat)))),
        pl.Series("accuracy_m", fixes["accuracy_m"].to_numpy() * noise),
    )


def measure(fixes: pl.DataFrame, out: Path, rule: StayRule, repeat: int) -> dict[str, Any]:
    """Scores and speed of ``rule`` on ``fixes``."""
    detect_stays(fixes.head(100), rule)  # compile outside the timing
    times, stays = [], pl.DataFrame()
    for _ in range(repeat):
        started = time.perf_counter()
        stays = detect_stays(fixes, rule)
        times.append(time.perf_counter() - started)
    dwell = round(rule.min_dwell_minutes * 60_000)
    scores = score_stays(stays, fixes, out, min_dwell_ms=dwell)
    seconds = statistics.median(times)
    return {
        "radius_m": rule.radius_m,
        "min_dwell_minutes": rule.min_dwell_minutes,
        "fixes": fixes.height,
        "stays": scores.detected,
        "precision": scores.precision,
        "recall_observable": scores.recall,
        "recall_all": scores.recall_all,
        "seconds": seconds,
        "fixes_per_second": fixes.height / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--gps-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gps-") as tmp:
        out = Path(tmp) / "export"
        config = SynthConfig(
            subscribers=args.subscribers, days=1, start=DAY, seed=args.seed,
            gps_share=args.gps_share, error_rate=0.0, timezone=TIME_ZONE,
        )  # fmt: skip
        generate(config, out)
        clean = synthetic_fixes(out, DAY, TIME_ZONE)
        rows = [
            {"fixes_kind": "as generated", **measure(clean, out, StayRule(radius_m=r,
             min_dwell_minutes=d), args.repeat)}
            for r, d in GRID
        ]  # fmt: skip
        for label, noise, jumps in (("noise x4", 4.0, 0.0), ("jumps 3 %", 1.0, 0.03),
                                    ("noise x4, jumps 3 %", 4.0, 0.03)):  # fmt: skip
            hard = harder(clean, noise=noise, jumps=jumps, seed=args.seed)
            for rule in (StayRule(), StayRule(max_outliers=0), StayRule(radius_m=100)):
                row = measure(hard, out, rule, args.repeat)
                row["max_outliers"] = rule.max_outliers
                rows.append({"fixes_kind": label, **row})
    print(f"{args.subscribers:,} subscribers, {args.gps_share:.0%} with the app, one day")
    print(f"{'fixes':<22}{'radius':>7}{'dwell':>6}{'out':>4}{'stays':>8}{'precision':>10}"
          f"{'recall':>8}{'all':>7}{'fixes/s':>12}")  # fmt: skip
    for r in rows:
        print(f"{r['fixes_kind']:<22}{r['radius_m']:>7.0f}{r['min_dwell_minutes']:>6.0f}"
              f"{r.get('max_outliers', 1):>4}{r['stays']:>8,}{r['precision']:>10.3f}"
              f"{r['recall_observable']:>8.3f}{r['recall_all']:>7.3f}"
              f"{r['fixes_per_second']:>12,.0f}")  # fmt: skip
    path = write_results("gps_stays", {"machine": machine(), "args": vars(args), "rows": rows})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
