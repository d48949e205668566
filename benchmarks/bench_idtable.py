"""Memory and speed of ingest's id table, built directly from synthetic phone numbers.

    uv run python benchmarks/bench_idtable.py                                # 51.5 M ids
    uv run python benchmarks/bench_idtable.py --ids 1250000 --passes 40 --baseline 60f1e78

Each of ``--ids`` distinct 13-digit phone numbers (``234`` and 10 scattered digits) is given to an
:class:`~aggregation.ingest.idtable.IdTable` (CDR, with the msisdn format check), in chunks of
``--chunk`` ids as ingest gives them, so every id is new once; then ``--passes`` more passes look
every id up again (chunks shuffled: hits only, as most rows of a drop are). The table runs in a
child process, so its peak resident memory is its own; the RSS before the table (imports, key,
compiled code) is reported beside it.

``--baseline COMMIT`` runs the same child first on the code of an earlier commit (extracted with
``git archive`` under ``benchmarks/data/``), so before and after are measured in the same run.
Reported: the bytes held by the table's arrays (``nbytes`` of every array it holds) per distinct
id, the peak RSS and its rise over the baseline RSS per id, and the CPU seconds of building the
table and of each lookup pass. Results go to ``benchmarks/results/`` as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent
SCATTER = 7_919_990_893
"""Odd and not a multiple of 5: i -> i * SCATTER mod 10**10 is one to one."""


def _rss_mb(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak) of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _ids(start: int, stop: int) -> pl.Series:
    """Distinct phone numbers ``start .. stop - 1``."""
    i = np.arange(start, stop, dtype=np.int64)
    return pl.Series("msisdn", 2_340_000_000_000 + (i * SCATTER) % 10**10).cast(pl.String)


def _child(ids: int, chunk: int, passes: int) -> dict[str, Any]:
    """Build the table and look every id up ``passes`` times; the measurements."""
    from aggregation.ingest.idtable import IdTable  # noqa: PLC0415 - the tree under test
    from aggregation.ingest.pseudonymise import Pseudonymiser, Secret  # noqa: PLC0415
    from aggregation.ingest.validation import ID_FORMAT  # noqa: PLC0415

    pseudonymiser = Pseudonymiser(Secret(b"benchmark-secret-not-for-production"), shards=16)
    table = IdTable(pseudonymiser, "cdr", id_format=ID_FORMAT["cdr"])
    warm = table.positions(_ids(ids, ids + 1), "pid")  # compiles (or loads) the kernels
    table.shards(warm)
    table.well_formed(warm)
    table.take(np.zeros(1, dtype=np.int64))
    table = IdTable(pseudonymiser, "cdr", id_format=ID_FORMAT["cdr"])
    del warm
    rss_before = _rss_mb("VmRSS")
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, ids, chunk):
        table.positions(_ids(start, min(ids, start + chunk)), "pid")
    build_cpu, build_wall = time.process_time() - cpu, time.perf_counter() - wall
    if len(table) != ids:
        msg = f"{len(table)} ids in the table, {ids} given"
        raise AssertionError(msg)
    rng = np.random.default_rng(0)
    pass_cpu = []
    for _ in range(passes):
        cpu = time.process_time()
        for start in rng.permutation(np.arange(0, ids, chunk)):
            got = table.positions(_ids(int(start), min(ids, int(start) + chunk)), "pid")
            table.shards(got)
            table.well_formed(got)
        pass_cpu.append(time.process_time() - cpu)
    sample = np.arange(0, ids, max(1, ids // 1000))  # every 1000th id's pseudonym, to compare
    pseudonyms = table.take(sample).to_pylist()
    nbytes = sum(v.nbytes for v in vars(table).values() if isinstance(v, np.ndarray))
    peak = _rss_mb("VmHWM")
    return {
        "ids": ids,
        "table_nbytes": nbytes,
        "bytes_per_id": round(nbytes / ids, 1),
        "rss_before_mb": round(rss_before),
        "peak_rss_mb": round(peak),
        "peak_rise_bytes_per_id": round((peak - rss_before) * 2**20 / ids, 1),
        "build_cpu_s": round(build_cpu, 2),
        "build_wall_s": round(build_wall, 2),
        "lookup_cpu_s_per_pass": [round(c, 2) for c in pass_cpu],
        "pseudonyms_sample": pseudonyms[:3],
        "pseudonyms_sha256": hashlib.sha256("".join(pseudonyms).encode()).hexdigest()[:16],
    }


def _tree(commit: str) -> Path:
    """The code of ``commit`` (``aggregation/`` and ``schemas/``), extracted once."""
    out = ROOT / "data" / f"tree_{commit}"
    if not (out / "aggregation").exists():
        archive = subprocess.run(
            ["git", "-C", str(ROOT.parent), "archive", commit, "aggregation", "schemas"],
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(out, filter="data")
    return out


def _run(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The child's measurements on the code under ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, __file__, "--child", "--ids", str(args.ids), "--chunk", str(args.chunk)]
    proc = subprocess.run(
        [*cmd, "--passes", str(args.passes)], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        msg = f"the table on {tree} failed"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=51_500_000, help="distinct ids")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="ids per chunk")
    parser.add_argument("--passes", type=int, default=0, help="lookup passes over every id")
    parser.add_argument("--baseline", help="a commit to measure first, in the same run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.ids, args.chunk, args.passes)))
        return 0
    runs = {}
    if args.baseline:
        runs["before"] = _run(_tree(args.baseline), args) | {"code": args.baseline}
    runs["after"] = _run(ROOT.parent, args) | {"code": "working tree"}
    if args.baseline and runs["before"]["pseudonyms_sha256"] != runs["after"]["pseudonyms_sha256"]:
        print("pseudonyms differ between before and after", file=sys.stderr)
        return 1
    results = ROOT / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC)
    out = results / f"idtable_{args.ids}_{stamp:%Y%m%dT%H%M%SZ}.json"
    load = os.getloadavg()
    document = {"benchmark": "idtable", "date": stamp.isoformat(timespec="seconds"), **runs}
    out.write_text(json.dumps(document | {"load_after": load}, indent=2) + "\n")
    for name, run in runs.items():
        shown = {k: v for k, v in run.items() if k != "pseudonyms_sample"}
        print(name, json.dumps(shown))
    print(f"load average {load[0]:.1f}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
