"""Release cost side by side: the no-privacy floor, this pipeline, and OpenDP's Polars Context.

    uv run python benchmarks/bench_release.py                         # 1 M events
    uv run python benchmarks/bench_release.py --events 50000000       # the issue's target size

On the same staged Parquet files of one day (a synthetic country, ``sample_data.synth``, ingested
into a workspace with 16 shards), for ``od_trips`` and ``presence``:

(a) **floor** -- the plain DuckDB query of the exact, unbounded aggregate
    (:mod:`aggregation.unprotected`: window ``lag()`` for trips, ``count(DISTINCT pseudonym)`` for
    presence); no bounding, no noise, nothing written;
(b) **release** -- this pipeline's :func:`aggregation.release.release`: plan, exact *bounded*
    aggregate, ledger charge, OpenDP noise over the whole public key set, k-threshold on noisy
    values, data and metadata files hashed and moved into place (the ledger and releases are
    removed before each run, so every run is a first release);
(c) **opendp** -- the same DP release written as an OpenDP user would: Polars preprocessing
    (``shift().over()`` for trips, ``unique()`` for presence), then ``dp.Context`` with the
    subscriber-day as identifier, ``truncate_per_group`` to the same bound, ``group_by().agg(
    dp.len())`` with the public key set (``with_keys``), the same k-threshold, Parquet + CSV out.
    OpenDP's Polars support pins ``polars==1.36.1``, so it runs in its own environment,
    ``benchmarks/.venv-opendp`` (created with ``uv`` on first use).

Every measurement runs in a fresh child process (peak RSS is its own); variants are interleaved
run by run, so load from elsewhere on the machine hits them alike. Reported: medians of
``--repeats`` runs, ratios b/a and c/b, and peak RSS. Results: a table, and JSON under
``benchmarks/results/`` (git-ignored). Staged data are generated once under ``benchmarks/data/``
and reused (also by ``bench_accuracy.py`` and ``bench_scaling.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT / "data"
OPENDP_VENV = ROOT / ".venv-opendp"
OPENDP_REQUIREMENTS = ("opendp[polars]==0.16.0", "duckdb", "pyarrow")
DAY = dt.date(2026, 3, 2)
SECRET = "benchmark-secret-not-for-production-use"
EVENTS_PER_SUBSCRIBER = 19.4
"""CDR events per subscriber-day of the synthetic country (measured, default settings)."""
INDICATORS = ("od_trips", "presence")
BOUND = {"od_trips": 4, "presence": 3}
"""Default contribution bounds: trips per subscriber-day (L) and zones per subscriber-day (z)."""
BOUND_FIELD = {"od_trips": "max_trips_per_day", "presence": "max_zones_per_day"}
VARIANTS = ("floor", "release", "opendp")

# A generous budget: benchmarks release the same day many times (the ledger is reset between
# measured runs; the accuracy benchmark releases many ε in one ledger).
_PRIVACY = {"epsilon_per_window = 6.0": "epsilon_per_window = 100000.0",
            "epsilon_rolling = 160.0": "epsilon_rolling = 1000000.0"}  # fmt: skip


# --- staged data, shared by the benchmarks -----------------------------------------------------


def bench_workspace(root: Path, export: Path) -> Path:
    """A new workspace at ``root`` with a generous budget and the reference data of the synthetic
    ``export`` (what every benchmark releases from)."""
    from schemas.workspace import init_workspace  # noqa: PLC0415 - keep start-up light

    ws = init_workspace(root).root
    text = (ws / "mobility.toml").read_text()
    for old, new in _PRIVACY.items():
        text = text.replace(old, new, 1)
    (ws / "mobility.toml").write_text(text)
    (ws / "reference").mkdir()
    for name in ("zones.parquet", "cells.csv"):
        shutil.copy(export / "reference" / name, ws / "reference" / name)
    return ws


@dataclass(frozen=True)
class StagedCountry:
    """One day of a synthetic country's CDR, staged in a workspace, with its export and truth."""

    directory: Path
    events: int
    subscribers: int
    staged_events: int

    @property
    def export(self) -> Path:
        """The synthetic export (raw files, reference, truth)."""
        return self.directory / "export"

    @property
    def workspace(self) -> Path:
        """The workspace the export was ingested into."""
        return self.directory / "workspace"

    def files(self) -> list[str]:
        """The staged Parquet files of the day (every shard)."""
        from aggregation.extract import StagedSource  # noqa: PLC0415 - keep start-up light

        return StagedSource(self.workspace / "staged").files_for([DAY])


def prepare(events: int, data_dir: Path = DATA, *, seed: int = 1) -> StagedCountry:
    """A staged synthetic country of about ``events`` CDR events in one day (made once)."""
    from aggregation.ingest import ingest_files  # noqa: PLC0415 - keep start-up light
    from sample_data.synth import SynthConfig, generate  # noqa: PLC0415

    base = data_dir / f"country_{events}"
    marker = base / "prepared.json"
    if marker.exists():
        return StagedCountry(base, **json.loads(marker.read_text()))
    shutil.rmtree(base, ignore_errors=True)
    subscribers = max(100, round(events / EVENTS_PER_SUBSCRIBER))
    print(f"preparing {events:,} events ({subscribers:,} subscribers) in {base} ...", flush=True)
    config = SynthConfig(
        subscribers=subscribers, days=1, start=DAY, seed=seed, fmt="parquet",
        scenario="none", gps_share=0.0, error_rate=0.0,
    )  # fmt: skip
    summary = generate(config, base / "export")
    ws = bench_workspace(base / "workspace", base / "export")
    raw = base / "export" / "raw" / f"cdr_{DAY}.parquet"
    report = ingest_files([raw], ws, environ={"MOBILITY_SECRET": SECRET})
    if not report.ok:
        raise SystemExit(report.failure_message())
    country = StagedCountry(
        base,
        events=summary.cdr_events,
        subscribers=subscribers,
        staged_events=sum(f.rows_staged for f in report.files),
    )
    marker.write_text(json.dumps({k: v for k, v in asdict(country).items() if k != "directory"}))
    return country


def reset_releases(workspace: Path) -> None:
    """Remove the ledger and every release, so the next release is a first one."""
    for name in ("ledger.duckdb", "ledger.duckdb.wal"):
        (workspace / name).unlink(missing_ok=True)
    shutil.rmtree(workspace / "releases", ignore_errors=True)
    (workspace / "releases").mkdir()


def peak_rss_mb() -> float:
    """Peak resident memory of this process since it started (``VmHWM``; Linux)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads (robust to a busy machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_results(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` as ``benchmarks/results/<name>_<UTC time>.json``; returns the path."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return out


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}  # fmt: skip


# --- the three variants, each in a child process ----------------------------------------------


def _spec(indicator: str, level: str, epsilon: float, k: int) -> Any:
    from schemas.indicators import ContributionBounds  # noqa: PLC0415
    from schemas.release import ReleaseSpec  # noqa: PLC0415

    bounds = ContributionBounds(**{BOUND_FIELD[indicator]: BOUND[indicator]})
    return ReleaseSpec(indicator, DAY, DAY, level=level, epsilon=epsilon, k=k, bounds=bounds)  # type: ignore[arg-type]


def _floor(country: StagedCountry, indicator: str, level: str) -> dict[str, Any]:
    from aggregation import unprotected  # noqa: PLC0415

    files = country.files()
    started, cpu = time.perf_counter(), cpu_seconds()
    frame = getattr(unprotected, indicator)(files, DAY, level)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu,
        "cells": frame.height,
    }


def _release(
    country: StagedCountry, indicator: str, level: str, epsilon: float, k: int
) -> dict[str, Any]:
    from aggregation.release import open_context, release  # noqa: PLC0415
    from aggregation.release.run import local_aggregator  # noqa: PLC0415

    reset_releases(country.workspace)
    exact_seconds: list[float] = []
    spec = _spec(indicator, level, epsilon, k)
    started, cpu = time.perf_counter(), cpu_seconds()
    ctx = open_context(country.workspace, environ={"MOBILITY_SECRET": SECRET})
    aggregator = local_aggregator(ctx.workspace)  # what `mobility release` uses

    def timed(request: Any, key: Any) -> Any:
        t = time.perf_counter()
        frame = aggregator(request, key)
        exact_seconds.append(time.perf_counter() - t)
        return frame

    outcome = release(ctx, spec, aggregator=timed)
    seconds = time.perf_counter() - started
    meta = outcome.metadata
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu,
        "exact_aggregate_seconds": exact_seconds[0],
        "cells": meta.cells_total,
        "cells_released": meta.cells_released,
        "scale": meta.scale,
    }


_OPENDP_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import polars as pl
import opendp.prelude as dp

a = json.loads(sys.argv[1])
dp.enable_features("contrib")
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, cpu0 = time.perf_counter(), cpu()
day = pl.lit(a["day"]).str.to_date()
events = (
    pl.scan_parquet(a["files"])
    .filter((pl.col("source") == "cdr") & (pl.col("local_date") == day))
    .select("pseudonym", "local_date", "event_time", pl.col(a["level"]).alias("zone"))
)
zones = pl.DataFrame({"zone": a["zones"]})
if a["indicator"] == "od_trips":
    data = (
        events.with_columns(
            pl.col("zone").shift(1)
            .over("pseudonym", "local_date", order_by=["event_time", "zone"]).alias("origin"))
        .filter(pl.col("origin").is_not_null() & (pl.col("origin") != pl.col("zone")))
        .select("pseudonym", "local_date", "origin", pl.col("zone").alias("destination"))
    )
    keys = (zones.rename({"zone": "origin"}).join(zones.rename({"zone": "destination"}),
                                                  how="cross")
            .filter(pl.col("origin") != pl.col("destination")))
    by = ["origin", "destination"]
else:
    data = events.select("pseudonym", "local_date", "zone").unique()
    keys, by = zones, ["zone"]
keys = keys.with_columns(local_date=day)
context = dp.Context.compositor(
    data=data,
    privacy_unit=dp.unit_of(contributions=1, identifier=pl.struct("pseudonym", "local_date")),
    privacy_loss=dp.loss_of(epsilon=a["epsilon"]),
    split_evenly_over=1,
)
query = (
    context.query()
    .truncate_per_group(a["bound"])
    .group_by(["local_date", *by])
    .agg(dp.len())
    .with_keys(keys.lazy())
)
released = query.release().collect()
published = released.filter(pl.col("len") >= a["k"])
out = Path(a["out"])
out.mkdir(parents=True, exist_ok=True)
published.write_parquet(out / "data.parquet")
published.write_csv(out / "data.csv")
seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu0
scale = query.summarize()["scale"][0]  # the noise scale OpenDP chose (after timing)
status = Path("/proc/self/status").read_text().splitlines()
rss = next(int(x.split()[1]) / 1024 for x in status if x.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "cells": released.height,
                  "cells_released": published.height, "scale": scale, "peak_rss_mb": rss}))
"""


def opendp_python() -> Path:
    """The interpreter of the OpenDP environment, created with ``uv`` on first use."""
    python = OPENDP_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {OPENDP_VENV} with {', '.join(OPENDP_REQUIREMENTS)} ...", flush=True)
    env = {**os.environ, "UV_SYSTEM_CERTS": os.environ.get("UV_SYSTEM_CERTS", "true")}
    subprocess.run(["uv", "venv", "--quiet", str(OPENDP_VENV)], check=True, env=env)
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python", str(python), *OPENDP_REQUIREMENTS],
        check=True, env=env,
    )  # fmt: skip
    return python


def _opendp(
    country: StagedCountry, indicator: str, level: str, epsilon: float, k: int
) -> dict[str, Any]:
    import pyarrow.parquet as pq  # noqa: PLC0415

    from schemas.indicators import ZoneSet  # noqa: PLC0415

    zones = ZoneSet.from_table(pq.read_table(country.workspace / "reference/zones.parquet"), level)  # type: ignore[arg-type]
    out = country.directory / "opendp_release"
    shutil.rmtree(out, ignore_errors=True)
    args = {
        "files": country.files(), "day": str(DAY), "level": level, "indicator": indicator,
        "zones": list(zones.zone_ids), "epsilon": epsilon, "bound": BOUND[indicator], "k": k,
        "out": str(out),
    }  # fmt: skip
    proc = subprocess.run(
        [str(opendp_python()), "-c", _OPENDP_CHILD, json.dumps(args)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"OpenDP child failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _child(variant: str, indicator: str, directory: Path, level: str, eps: float, k: int) -> None:
    """Run one measurement; print it as JSON on the last line."""
    country = StagedCountry(directory, **json.loads((directory / "prepared.json").read_text()))
    if variant == "floor":
        result = _floor(country, indicator, level)
    else:
        result = _release(country, indicator, level, eps, k)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def run_child(
    script: str, *args: str, env: dict[str, str] | None = None, label: str = "child"
) -> dict[str, Any]:
    """Run ``script --child *args`` in a fresh Python process (``env`` added to this one's) and
    return the JSON object on the last line of its output; exit with its stderr if it fails."""
    proc = subprocess.run(
        [sys.executable, script, "--child", *args],
        capture_output=True, text=True, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(
    variant: str, country: StagedCountry, indicator: str, level: str, epsilon: float, k: int
) -> dict[str, Any]:
    """One measurement of ``variant`` in a fresh process."""
    if variant == "opendp":
        return _opendp(country, indicator, level, epsilon, k)
    args = [variant, indicator, str(country.directory), level, str(epsilon), str(k)]
    return run_child(__file__, *args, label=f"{variant} child")


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="CDR events in the day")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each variant")
    parser.add_argument("--level", default="admin2", choices=("admin1", "admin2", "admin3"))
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=10, help="threshold on noisy values")
    parser.add_argument("--indicators", nargs="+", default=list(INDICATORS), choices=INDICATORS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, indicator, directory, level, eps, k = args.child
        _child(variant, indicator, Path(directory), level, float(eps), int(k))
        return 0
    if args.events > 50_000_000:
        parser.error("--events above 50 000 000 does not fit this benchmark's time on 2 cores.")
    country = prepare(args.events, args.data_dir)
    if "opendp" in args.variants:
        opendp_python()
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in range(args.repeats):
        for indicator in args.indicators:
            for variant in args.variants:
                m = measure(variant, country, indicator, args.level, args.epsilon, args.k)
                runs.setdefault((indicator, variant), []).append(m)
                line = f"  run {r + 1}/{args.repeats} {indicator:<9} {variant:<8} "
                line += f"{m['seconds']:7.2f} s ({m['cpu_seconds']:6.2f} s CPU) "
                print(f"{line}{m['peak_rss_mb']:6.0f} MiB", flush=True)
    rows = []
    for indicator in args.indicators:
        row: dict[str, Any] = {"indicator": indicator}
        for variant in args.variants:
            got = runs[(indicator, variant)]
            row[f"{variant}_s"] = round(_median(got, "seconds"), 3)
            row[f"{variant}_cpu_s"] = round(_median(got, "cpu_seconds"), 3)
            row[f"{variant}_peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in got))
            row[f"{variant}_runs_s"] = [round(r["seconds"], 3) for r in got]
            if variant != "floor":
                row[f"{variant}_scale"] = got[0]["scale"]
                row[f"{variant}_cells_released"] = got[0]["cells_released"]
        if "release" in args.variants:
            got = runs[(indicator, "release")]
            row["release_exact_aggregate_s"] = round(_median(got, "exact_aggregate_seconds"), 3)
            for base, other, name in (("floor", "release", "release_over_floor"),
                                      ("release", "opendp", "opendp_over_release")):  # fmt: skip
                if base in args.variants and other in args.variants:
                    row[name] = round(row[f"{other}_s"] / row[f"{base}_s"], 2)
                    row[f"{name}_cpu"] = round(row[f"{other}_cpu_s"] / row[f"{base}_cpu_s"], 2)
        rows.append(row)
    result = {
        "benchmark": "release",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "events": country.events,
        "staged_events": country.staged_events,
        "subscribers": country.subscribers,
        "level": args.level,
        "epsilon": args.epsilon,
        "k": args.k,
        "bounds": {i: BOUND[i] for i in args.indicators},
        "repeats": args.repeats,
        **machine(),
        "rows": rows,
    }
    out = write_results(f"release_{country.events}", result)
    _print_table(result)
    print(f"written to {out}")
    return 0


def _print_table(result: dict[str, Any]) -> None:
    print(
        f"\n{result['events']:,} CDR events, {result['subscribers']:,} subscribers, "
        f"{result['level']}, ε = {result['epsilon']}, k = {result['k']}, "
        f"medians of {result['repeats']} runs: wall seconds (CPU seconds); peak RSS MiB"
    )
    nan = float("nan")
    print(
        f"{'indicator':<10} {'(a) floor':>15} {'(b) release':>15} {'exact':>6} "
        f"{'(c) opendp':>15} {'b/a':>13} {'c/b':>13}   peak RSS a / b / c"
    )
    for r in result["rows"]:
        cells = [f"{r.get(f'{v}_s', nan):6.2f} ({r.get(f'{v}_cpu_s', nan):6.2f})" for v in VARIANTS]
        ratios = [
            f"{r.get(n, nan):5.2f} ({r.get(f'{n}_cpu', nan):5.2f})"
            for n in ("release_over_floor", "opendp_over_release")
        ]
        rss = " / ".join(str(r.get(f"{v}_peak_rss_mb", "-")) for v in VARIANTS)
        print(
            f"{r['indicator']:<10} {cells[0]:>15} {cells[1]:>15} "
            f"{r.get('release_exact_aggregate_s', nan):>6.2f} {cells[2]:>15} "
            f"{ratios[0]:>13} {ratios[1]:>13}   {rss}"
        )


if __name__ == "__main__":
    sys.exit(main())
