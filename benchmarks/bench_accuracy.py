"""Accuracy of released indicators: DP noise, bounding bias and CDR observation bias, apart.

    uv run python benchmarks/bench_accuracy.py                      # 1 M events, admin2
    uv run python benchmarks/bench_accuracy.py --events 10000000 --draws 5
    uv run python benchmarks/bench_accuracy.py --sources --subscribers 100000 --gps-share 0.3

On one staged day of a synthetic country (the data of ``bench_release.py``), every combination of
ε ∈ {0.1, 0.5, 1, 2} and a few contribution bounds is released through
:func:`aggregation.release.release` (noise, k-threshold, ledger, files), ``--draws`` times each
(the ledger is reset between draws, so each draw is fresh noise). A suppressed cell counts as 0,
which is what an analyst sees. Relative errors ``|x - ref| / ref`` are pooled over draws and over
the cells whose reference is at least ``--min-count`` (default 100), and reported as median and
90th percentile against:

* **exact** -- the exact *unbounded* aggregate of the same staged events
  (:mod:`aggregation.unprotected`): the error a user pays for privacy = DP noise + bounding bias;
* **truth** -- the synthetic itineraries (:mod:`sample_data.synth.truth`): adds what sparse CDR
  cannot see (observation bias), which no privacy setting causes or cures.

Next to them: the **theory** of the noise alone (pooled quantiles of ``|Z| / ref`` for the
discrete Laplace ``Z`` at the release's scale, computed from its distribution, no sampling), the
**noise** measured (released vs the exact *bounded* aggregate) and the **bias** of bounding
(exact bounded vs exact unbounded, no noise). Measured noise should match the theory; the gap
between *exact* and *noise* is the bounding bias. Results: tables, and JSON under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from bench_release import DAY, SECRET, machine, prepare, reset_releases, write_results

from aggregation import unprotected
from aggregation.indicators import exact_aggregate
from aggregation.release import open_context, release
from sample_data.synth.truth import true_od_trips, true_presence
from schemas.indicators import ContributionBounds, Indicator
from schemas.release import ReleaseSpec

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from bench_release import StagedCountry

    from aggregation.bounding import BoundingKey
    from aggregation.indicators import AggregateRequest

EPSILONS = (0.1, 0.5, 1.0, 2.0)
BOUNDS: dict[str, tuple[str, tuple[int, ...]]] = {
    "od_trips": ("max_trips_per_day", (2, 4, 8)),
    "presence": ("max_zones_per_day", (1, 3, 5)),
}
KEYS = {"od_trips": ["date", "origin", "destination"], "presence": ["date", "zone"]}
QUANTILES = (0.5, 0.9)


def laplace_abs_cdf(h: np.ndarray[Any, Any], scale: float) -> np.ndarray[Any, Any]:
    """P(|Z| <= h) for the discrete Laplace P(Z = k) ∝ exp(-|k| / scale), h >= 0 integers."""
    p = math.exp(-1.0 / scale)
    return 1.0 - 2.0 * np.exp(-(h + 1.0) / scale) / (1.0 + p)


def theory_quantile(scale: float, refs: np.ndarray[Any, Any], q: float) -> float:
    """The q-quantile of ``|Z| / ref`` pooled over cells ``refs`` (each cell equally likely).

    F(r) = mean_i P(|Z| <= floor(r * ref_i)) is a step function of r; bisection finds the
    smallest r with F(r) >= q to 1e-7.
    """

    def pooled(r: float) -> float:
        return float(laplace_abs_cdf(np.floor(r * refs), scale).mean())

    lo, hi = 0.0, 1.0
    while pooled(hi) < q:
        hi *= 2.0
    while hi - lo > 1e-7:
        mid = (lo + hi) / 2.0
        lo, hi = (lo, mid) if pooled(mid) >= q else (mid, hi)
    return hi


def quantiles(values: Sequence[float] | np.ndarray[Any, Any]) -> list[float]:
    """Median and 90th percentile (nan when empty)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return [math.nan] * len(QUANTILES)
    return [float(np.quantile(arr, q)) for q in QUANTILES]


def references(country: StagedCountry, indicator: str, level: str) -> pl.DataFrame:
    """Key columns, ``exact`` (unbounded, from the staged events) and ``truth`` (itineraries)."""
    files = country.files()
    keys = KEYS[indicator]
    if indicator == "od_trips":
        exact = unprotected.od_trips(files, DAY, level)
        truth = true_od_trips(country.export, DAY, level)
    else:
        exact = unprotected.presence(files, DAY, level)
        truth = true_presence(country.export, DAY, level)
    truth = truth.with_columns(pl.lit(DAY).alias("date")).rename({"true_value": "truth"})
    return exact.rename({"true_value": "exact"}).join(truth, on=keys, how="full", coalesce=True)


def _spec(indicator: str, level: str, epsilon: float, bound: int, k: int) -> ReleaseSpec:
    field, _ = BOUNDS[indicator]
    return ReleaseSpec(
        Indicator(indicator), DAY, DAY, level=level, epsilon=epsilon, k=k,  # type: ignore[arg-type]
        bounds=ContributionBounds(**{field: bound}),
    )  # fmt: skip


def run(
    country: StagedCountry, level: str, draws: int, min_count: int, k: int
) -> list[dict[str, Any]]:
    """Every (indicator, bound, ε): the error table rows."""
    ws: Path = country.workspace
    environ = {"MOBILITY_SECRET": SECRET}
    exact_cache: dict[tuple[str, int], pl.DataFrame] = {}

    def cached(request: AggregateRequest, key: BoundingKey) -> pl.DataFrame:
        field, _ = BOUNDS[str(request.indicator)]
        index = (str(request.indicator), getattr(request.bounds, field))
        if index not in exact_cache:
            exact_cache[index] = exact_aggregate(request, key)
        return exact_cache[index]

    released: dict[tuple[str, int, float], list[pl.DataFrame]] = {}
    scales: dict[tuple[str, int, float], float] = {}
    for _ in range(draws):
        reset_releases(ws)
        ctx = open_context(ws, environ=environ)
        for indicator, (_, bounds) in BOUNDS.items():
            for bound in bounds:
                for eps in EPSILONS:
                    spec = _spec(indicator, level, eps, bound, k)
                    outcome = release(ctx, spec, aggregator=cached)
                    released.setdefault((indicator, bound, eps), []).append(outcome.data)
                    scales[(indicator, bound, eps)] = float(outcome.metadata.scale)
    rows = []
    for indicator, (_, bounds) in BOUNDS.items():
        keys = KEYS[indicator]
        refs = references(country, indicator, level)
        for bound in bounds:
            bounded = exact_cache[(indicator, bound)].rename({"count": "bounded"})
            cells = refs.join(bounded, on=keys, how="left").with_columns(
                pl.col("bounded").fill_null(0), pl.col("exact").fill_null(0),
                pl.col("truth").fill_null(0),
            )  # fmt: skip
            on_exact = cells.filter(pl.col("exact") >= min_count)
            on_truth = cells.filter(pl.col("truth") >= min_count)
            bias = (on_exact["bounded"] - on_exact["exact"]).abs() / on_exact["exact"]
            for eps in EPSILONS:
                scale = scales[(indicator, bound, eps)]
                noise, total, vs_truth = [], [], []
                suppressed = 0
                for data in released[(indicator, bound, eps)]:
                    got = data.select(*keys, "value")
                    e = on_exact.join(got, on=keys, how="left")
                    suppressed += e["value"].null_count()
                    e = e.with_columns(pl.col("value").fill_null(0))
                    noise += ((e["value"] - e["bounded"]).abs() / e["exact"]).to_list()
                    total += ((e["value"] - e["exact"]).abs() / e["exact"]).to_list()
                    t = on_truth.join(got, on=keys, how="left").with_columns(
                        pl.col("value").fill_null(0)
                    )
                    vs_truth += ((t["value"] - t["truth"]).abs() / t["truth"]).to_list()
                ref = on_exact["exact"].to_numpy().astype(np.float64)
                rows.append({
                    "indicator": indicator, "bound": bound, "epsilon": eps, "scale": scale,
                    "cells": on_exact.height, "cells_truth": on_truth.height,
                    "suppressed_share": suppressed / max(1, on_exact.height * draws),
                    "theory_noise": [theory_quantile(scale, ref, q) for q in QUANTILES]
                    if ref.size else [math.nan] * 2,
                    "noise": quantiles(noise),
                    "bounding_bias": quantiles(bias.to_numpy()),
                    "vs_exact": quantiles(total),
                    "vs_truth": quantiles(vs_truth),
                })  # fmt: skip
        obs = refs.filter(pl.col("truth") >= min_count).with_columns(pl.col("exact").fill_null(0))
        rows.append({
            "indicator": indicator, "observation_bias":
            quantiles(((obs["exact"] - obs["truth"]).abs() / obs["truth"]).to_numpy()),
            "cells_truth": obs.height,
        })  # fmt: skip
    return rows


def _pct(pair: list[float]) -> str:
    return " / ".join(f"{100 * x:5.1f}" for x in pair)


def print_tables(result: dict[str, Any]) -> None:
    """The rows as one table per indicator (percentages: median / 90th percentile)."""
    print(
        f"\n{result['events']:,} CDR events, {result['level']}, {result['draws']} draw(s), "
        f"k = {result['k']}; cells with reference >= {result['min_count']}; "
        "relative error in %, median / p90"
    )
    for indicator, (field, _) in BOUNDS.items():
        rows = [r for r in result["rows"] if r["indicator"] == indicator]
        obs = next(r for r in rows if "observation_bias" in r)
        print(
            f"\n{indicator} ({field}); exact unbounded vs truth (CDR observation bias, no DP): "
            f"{_pct(obs['observation_bias'])} over {obs['cells_truth']} cells"
        )
        print(
            f"{'bound':>5} {'ε':>4} {'scale':>6} {'cells':>5} {'theory noise':>14} "
            f"{'noise':>14} {'bound bias':>14} {'vs exact':>14} {'vs truth':>14} {'supp%':>6}"
        )
        for r in rows:
            if "observation_bias" in r:
                continue
            print(
                f"{r['bound']:>5} {r['epsilon']:>4} {r['scale']:>6.1f} {r['cells']:>5} "
                f"{_pct(r['theory_noise']):>14} {_pct(r['noise']):>14} "
                f"{_pct(r['bounding_bias']):>14} {_pct(r['vs_exact']):>14} "
                f"{_pct(r['vs_truth']):>14} {100 * r['suppressed_share']:>6.1f}"
            )


# --- GPS beside CDR, against the truth ----------------------------------------------------------

SOURCE_INDICATORS = ("od_trips", "presence")


def prepare_sources(subscribers: int, gps_share: float, data_dir: Path) -> Path:
    """A one-day synthetic country with ``gps_share`` of its subscribers on the app, both feeds
    ingested (made once per size and share); returns its directory (``export``, ``workspace``)."""
    import json  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    from aggregation.ingest import ingest_files  # noqa: PLC0415
    from sample_data.synth import SynthConfig, generate  # noqa: PLC0415
    from schemas.workspace import init_workspace  # noqa: PLC0415

    base = data_dir / f"sources_{subscribers}_{gps_share:g}"
    if (base / "prepared.json").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    print(f"preparing {subscribers:,} subscribers, GPS share {gps_share:g}, in {base} ...")
    config = SynthConfig(
        subscribers=subscribers, days=1, start=DAY, seed=5, fmt="parquet", scenario="none",
        gps_share=gps_share, error_rate=0.0,
    )  # fmt: skip
    generate(config, base / "export")
    ws = init_workspace(base / "workspace").root
    text = (ws / "mobility.toml").read_text()
    text = text.replace("epsilon_per_window = 6.0", "epsilon_per_window = 1000.0", 1)
    text = text.replace("epsilon_rolling = 160.0", "epsilon_rolling = 100000.0", 1)
    (ws / "mobility.toml").write_text(text)
    (ws / "reference").mkdir()
    for name in ("zones.parquet", "cells.csv"):
        shutil.copy(base / "export" / "reference" / name, ws / "reference" / name)
    report = ingest_files([base / "export" / "raw"], ws, environ={"MOBILITY_SECRET": SECRET})
    if not report.ok:
        raise SystemExit(report.failure_message())
    (base / "prepared.json").write_text(json.dumps({"subscribers": subscribers}))
    return base


def _panel_truth(export: Path, indicator: str, level: str) -> pl.DataFrame:
    """The truth of the app panel alone (subscribers with a device): what GPS can see at best."""
    from sample_data.synth.truth import LEVEL_CODE_LENGTH  # noqa: PLC0415

    panel = (
        pl.read_parquet(export / "truth" / "subscribers.parquet")
        .filter(pl.col("device_id").is_not_null())
        .select("msisdn")
    )
    stays = (
        pl.read_parquet(export / "truth" / f"stays_{DAY}.parquet")
        .join(panel, on="msisdn")
        .with_columns(pl.col("admin3").str.slice(0, LEVEL_CODE_LENGTH[level]).alias("zone"))
        .sort("msisdn", "seq")
    )
    if indicator == "presence":
        return stays.group_by("zone").agg(pl.col("msisdn").n_unique().alias("panel_truth"))
    return (
        stays.with_columns(pl.col("zone").shift(1).over("msisdn").alias("origin"))
        .filter(pl.col("origin").is_not_null() & (pl.col("origin") != pl.col("zone")))
        .group_by("origin", pl.col("zone").alias("destination"))
        .agg(pl.len().alias("panel_truth"))
    )


def _errors(got: pl.Series, ref: pl.Series) -> list[float]:
    return ((got - ref).abs() / ref).to_list()


def run_sources(
    base: Path, level: str, draws: int, min_count: int, k: int, epsilon: float
) -> list[dict[str, Any]]:
    """od_trips and presence released from CDR and from GPS (default bounds, ``epsilon``),
    ``draws`` times, against the truth: CDR and the GPS count scaled by 1 / panel share against
    every subscriber's truth, the raw GPS count against the panel's own truth."""
    ws, export = base / "workspace", base / "export"
    environ = {"MOBILITY_SECRET": SECRET}
    share = (
        pl.read_parquet(export / "truth" / "subscribers.parquet")["device_id"].is_not_null().mean()
    )
    rows = []
    for indicator in SOURCE_INDICATORS:
        keys = [c for c in KEYS[indicator] if c != "date"]
        truth = (true_od_trips if indicator == "od_trips" else true_presence)(export, DAY, level)
        truth = truth.join(_panel_truth(export, indicator, level), on=keys, how="full",
                           coalesce=True).fill_null(0)  # fmt: skip
        found: dict[str, list[pl.DataFrame]] = {"cdr": [], "gps": []}
        for _ in range(draws):
            reset_releases(ws)
            ctx = open_context(ws, environ=environ)
            for source in ("cdr", "gps"):
                spec = ReleaseSpec(
                    Indicator(indicator), DAY, DAY, level=level, epsilon=epsilon, k=k,  # type: ignore[arg-type]
                    source=source,  # type: ignore[arg-type]
                )  # fmt: skip
                found[source].append(release(ctx, spec).data.select(*keys, "value"))
        on_all = truth.filter(pl.col("true_value") >= min_count)
        on_panel = truth.filter(pl.col("panel_truth") >= min_count)
        errors: dict[str, list[float]] = {"cdr": [], "gps_scaled": [], "gps_panel": []}
        for source, datas in found.items():
            for data in datas:
                a = on_all.join(data, on=keys, how="left").with_columns(
                    pl.col("value").fill_null(0)
                )
                p = on_panel.join(data, on=keys, how="left").with_columns(
                    pl.col("value").fill_null(0)
                )
                if source == "cdr":
                    errors["cdr"] += _errors(a["value"], a["true_value"])
                else:
                    errors["gps_scaled"] += _errors(a["value"] / share, a["true_value"])
                    errors["gps_panel"] += _errors(p["value"], p["panel_truth"])
        for what, values in errors.items():
            rows.append({
                "indicator": indicator, "estimate": what, "epsilon": epsilon, "share": share,
                "cells": on_panel.height if what == "gps_panel" else on_all.height,
                "vs_truth": quantiles(values) if values else [math.nan, math.nan],
            })  # fmt: skip
    return rows


def print_sources(result: dict[str, Any]) -> None:
    """The GPS-beside-CDR table."""
    print(
        f"\n{result['subscribers']:,} subscribers, GPS panel share {result['share']:.3f}, "
        f"{result['level']}, ε = {result['epsilon']:g}, k = {result['k']}, {result['draws']} "
        f"draw(s); cells with truth >= {result['min_count']}; relative error vs truth in %, "
        "median / p90"
    )
    print(f"{'indicator':<10} {'estimate':<38} {'cells':>5} {'vs truth':>14}")
    labels = {
        "cdr": "CDR vs all subscribers",
        "gps_scaled": "GPS / panel share vs all subscribers",
        "gps_panel": "GPS vs the panel's own truth",
    }
    for r in result["rows"]:
        print(
            f"{r['indicator']:<10} {labels[r['estimate']]:<38} {r['cells']:>5} "
            f"{_pct(r['vs_truth']):>14}"
        )


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="CDR events in the day")
    parser.add_argument("--level", default="admin2", choices=("admin1", "admin2", "admin3"))
    parser.add_argument("--draws", type=int, default=3, help="independent releases per setting")
    parser.add_argument("--min-count", type=int, default=100, help="cells compared: ref >= this")
    parser.add_argument("--k", type=int, default=10, help="threshold on noisy values")
    parser.add_argument(
        "--sources",
        action="store_true",
        help="GPS beside CDR against the truth instead (see run_sources)",
    )
    parser.add_argument("--subscribers", type=int, default=100_000, help="with --sources")
    parser.add_argument("--gps-share", type=float, default=0.3, help="with --sources")
    args = parser.parse_args()
    if args.sources:
        return main_sources(args)
    country = prepare(args.events)
    started = dt.datetime.now(dt.UTC)
    rows = run(country, args.level, args.draws, args.min_count, args.k)
    result = {
        "benchmark": "accuracy",
        "date": started.isoformat(timespec="seconds"),
        "events": country.events,
        "subscribers": country.subscribers,
        "level": args.level,
        "draws": args.draws,
        "min_count": args.min_count,
        "k": args.k,
        "mechanism": "discrete_laplace",
        **machine(),
        "rows": rows,
    }
    out = write_results(f"accuracy_{country.events}", result)
    print_tables(result)
    print(f"written to {out}")
    return 0


def main_sources(args: argparse.Namespace) -> int:
    """``--sources``: GPS-based od_trips and presence beside CDR-based ones (ε = 1)."""
    from bench_release import DATA  # noqa: PLC0415

    started = dt.datetime.now(dt.UTC)
    base = prepare_sources(args.subscribers, args.gps_share, DATA)
    rows = run_sources(base, args.level, args.draws, args.min_count, args.k, 1.0)
    result = {
        "benchmark": "accuracy_sources", "date": started.isoformat(timespec="seconds"),
        "subscribers": args.subscribers, "share": rows[0]["share"], "level": args.level,
        "epsilon": 1.0, "draws": args.draws, "min_count": args.min_count, "k": args.k,
        **machine(), "rows": rows,
    }  # fmt: skip
    out = write_results(f"accuracy_sources_{args.subscribers}_{args.gps_share:g}", result)
    print_sources(result)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
