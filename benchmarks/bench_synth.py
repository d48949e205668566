"""Generator throughput and peak memory: rows written per minute, and RSS as the period grows.

    uv run python benchmarks/bench_synth.py [--subscribers 200000] [--days 3] [--repeats 3]

Each run generates in a fresh child process (so peak RSS is that run's own) and writes a table
and ``benchmarks/results/synth.json`` (git-ignored). Target (issue 2): >= 10 M events/minute on
2 cores. The memory check compares the same country over ``--days`` and 5x as many days.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

_CHILD = """
import json, resource, sys, time, pathlib
from sample_data.synth import SynthConfig, generate
subscribers, days, fmt, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
config = SynthConfig(subscribers=subscribers, days=days, seed=1, error_rate=0.01, fmt=fmt)
s = generate(config, pathlib.Path(out))
print(json.dumps({"rows": s.cdr_events + s.gps_fixes, "seconds": s.seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(subscribers: int, days: int, fmt: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(subscribers), str(days), fmt, tmp],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["rows_per_minute"] = 60 * result["rows"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows = []
    for fmt in ("csv", "parquet"):
        runs = [_run(args.subscribers, args.days, fmt) for _ in range(args.repeats)]
        rows.append(
            {
                "case": f"{fmt}, {args.subscribers:,} subscribers x {args.days} days",
                "rows": runs[0]["rows"],
                "median_rows_per_minute": statistics.median(r["rows_per_minute"] for r in runs),
                "median_seconds": statistics.median(r["seconds"] for r in runs),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            }
        )
    short, long_ = (
        _run(args.subscribers, args.days, "csv"),
        _run(args.subscribers, 5 * args.days, "csv"),
    )
    memory = {
        "days": [args.days, 5 * args.days],
        "peak_rss_mib": [short["peak_rss_mib"], long_["peak_rss_mib"]],
        "ratio": long_["peak_rss_mib"] / short["peak_rss_mib"],
    }
    print(f"{'case':<44} {'rows':>12} {'M rows/min':>11} {'median s':>9} {'peak MiB':>9}")
    for r in rows:
        print(
            f"{r['case']:<44} {r['rows']:>12,.0f} {r['median_rows_per_minute'] / 1e6:>11.1f} "
            f"{r['median_seconds']:>9.1f} {r['peak_rss_mib']:>9.0f}"
        )
    print(
        f"peak RSS over {memory['days'][0]} vs {memory['days'][1]} days: "
        f"{memory['peak_rss_mib'][0]:.0f} vs {memory['peak_rss_mib'][1]:.0f} MiB "
        f"(ratio {memory['ratio']:.2f})"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "synth.json").write_text(json.dumps({"runs": rows, "memory": memory}, indent=2))


if __name__ == "__main__":
    main()
