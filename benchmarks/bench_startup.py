"""Start-up of the ``mobility`` command beside a bare interpreter, in cold subprocesses.

    uv run python benchmarks/bench_startup.py                 # 7 runs of each
    uv run python benchmarks/bench_startup.py --repeats 11

Measured, each in a fresh process and interleaved run by run (so load from elsewhere on the
machine hits them alike): ``python -c pass`` (the floor), ``mobility --help``, ``mobility
--version``, ``mobility explain``, ``mobility release`` (a first release each run, on a fresh copy
of the workspace; the copy is not timed) and ``mobility export`` (csv and parquet) on a
demo-like workspace of one day (``mobility synth --days 1``, 20 000 subscribers, ingested once and
kept in ``benchmarks/data/startup/``). Targets (issue 17): ``--help`` and ``--version`` within
0.5 s of the floor; ``export`` and ``release`` under 1.5 s wall on an idle 2-core machine.
Reported: median wall seconds and median CPU seconds (user + system of the child), which outside
load disturbs less; a table, and JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data" / "startup"
RESULTS = ROOT / "results"
DAY = "2026-03-02"
SECRET = "benchmark-secret-not-for-production-use"
BIN = Path(sys.executable).parent
MOBILITY = str(BIN / "mobility")
TARGET_OVER_FLOOR = 0.5
TARGET_COMMAND = 1.5


def _env() -> dict[str, str]:
    return {**os.environ, "MOBILITY_SECRET": SECRET, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``cmd`` in a fresh child (fails loudly if the command fails)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def prepare() -> Path:
    """A workspace with one ingested day and one released od_trips (made once, then reused)."""
    pristine, released = DATA / "pristine", DATA / "released"
    if released.exists():
        return DATA
    shutil.rmtree(DATA, ignore_errors=True)
    export = DATA / "export"
    for cmd in (
        [MOBILITY, "synth", "--out", str(export), "--days", "1", "--start", DAY],
        [MOBILITY, "init", str(pristine)],
    ):
        _run(cmd)
    shutil.copytree(export / "reference", pristine / "reference", dirs_exist_ok=True)
    _run([MOBILITY, "ingest", str(export / "raw"), "--workspace", str(pristine)])
    shutil.copytree(pristine, released)
    _run([MOBILITY, "release", "od_trips", "--date", DAY, "--workspace", str(released)])
    return DATA


def commands(data: Path, scratch: Path) -> dict[str, list[str]]:
    """What is timed, by label."""
    fresh = str(scratch / "workspace")
    released = str(data / "released")
    out = str(scratch / "out")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mobility --help": [MOBILITY, "--help"],
        "mobility --version": [MOBILITY, "--version"],
        "mobility explain od_trips": [MOBILITY, "explain", "od_trips", "--date", DAY,
                                      "--workspace", released],
        "mobility release od_trips": [MOBILITY, "release", "od_trips", "--date", DAY,
                                      "--workspace", fresh],
        "mobility export od_trips csv": [MOBILITY, "export", "od_trips", "--from", DAY,
                                         "--workspace", released, "--out", out + "-csv"],
        "mobility export od_trips parquet": [MOBILITY, "export", "od_trips", "--from", DAY,
                                             "--format", "parquet", "--workspace", released,
                                             "--out", out + "-parquet"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    data = prepare()
    scratch = DATA / "scratch"
    load_before = os.getloadavg()
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for label, cmd in commands(data, scratch).items():
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(data / "pristine", scratch / "workspace")
            wall, cpu = _run(cmd)
            walls.setdefault(label, []).append(wall)
            cpus.setdefault(label, []).append(cpu)
    shutil.rmtree(scratch, ignore_errors=True)
    floor = statistics.median(walls["python -c pass"])
    rows = []
    print(f"load average before: {load_before}; {args.repeats} runs each, medians")
    print(f"{'command':<36}{'wall s':>9}{'cpu s':>9}{'- floor':>9}  target")
    for label, values in walls.items():
        wall, cpu = statistics.median(values), statistics.median(cpus[label])
        if label.startswith("mobility --"):
            target, ok = f"floor + {TARGET_OVER_FLOOR}", wall - floor <= TARGET_OVER_FLOOR
        elif label.startswith(("mobility release", "mobility export")):
            target, ok = f"< {TARGET_COMMAND}", wall < TARGET_COMMAND
        else:
            target, ok = "", True
        mark = "" if not target else (" ok" if ok else " MISSED")
        print(f"{label:<36}{wall:>9.3f}{cpu:>9.3f}{wall - floor:>9.3f}  {target}{mark}")
        rows.append({"command": label, "wall_median_s": wall, "cpu_median_s": cpu,
                     "wall_runs_s": values, "target": target, "met": ok})  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "startup.json"
    document = {"machine": platform.platform(), "cpus": os.cpu_count(), "rows": rows,
                "load_before": load_before, "load_after": os.getloadavg()}  # fmt: skip
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"load average after: {os.getloadavg()}; written {out}")


if __name__ == "__main__":
    main()
