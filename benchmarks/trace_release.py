"""Trace ``mobility release <indicator>``: which project functions and files it runs (issue 15).

Runs the CLI command once, in process, on a small staged synthetic day
(:func:`bench_release.prepare`), under :func:`sys.setprofile`, and prints:

* the project call stack (``flows/``, ``aggregation/``, ``schemas/``; the command's function
  first) when each function of the indicator's own module (``aggregation/indicators/<name>.py``:
  its per-unit bound, its contribution SQL) is first entered, and when the release's
  ``data.parquet`` is written: ``hops`` is the number of calls from the command's function to
  that point, ``files`` the distinct files on the way;
* every project file with a function run by the command (module bodies run on import are not
  counted).

It counts what runs, not what a reader opens: which files hold an indicator's definition is a
matter of reading (docs/design.md, Layout: one module per indicator). One command::

    uv run python benchmarks/trace_release.py od_trips
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from bench_release import DAY, SECRET, prepare, reset_releases

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = tuple(f"{ROOT / p}{os.sep}" for p in ("flows", "aggregation", "schemas"))


def _project_stack(frame: Any) -> list[str]:
    """``file:function`` of each project frame from the outermost to ``frame``."""
    found = []
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(PACKAGES):
            found.append(f"{Path(name).relative_to(ROOT)}:{frame.f_code.co_qualname}")
        frame = frame.f_back
    return found[::-1]


def _from_command(stack: list[str]) -> list[str]:
    start = next(i for i, s in enumerate(stack) if s.startswith("flows/cli/release.py:"))
    return stack[start:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("indicator", nargs="?", default="od_trips")
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    workspace = prepare(args.events).directory / "workspace"
    reset_releases(workspace)
    os.environ["MOBILITY_SECRET"] = SECRET

    import pyarrow.parquet as pq  # noqa: PLC0415 - after the data are prepared
    from click.testing import CliRunner  # noqa: PLC0415

    from flows.cli import cli  # noqa: PLC0415

    own = f"aggregation/indicators/{args.indicator}.py"
    stacks: dict[str, list[str]] = {}
    run: set[str] = set()
    write_table = pq.write_table

    def spying_write(table: Any, where: Any, *a: Any, **k: Any) -> None:
        if str(where).endswith("data.parquet"):
            stacks.setdefault("data.parquet written", _project_stack(sys._getframe(1)))
        write_table(table, where, *a, **k)

    def profile(frame: Any, event: str, _: object) -> None:
        name = frame.f_code.co_filename
        if event != "call" or not name.startswith(PACKAGES) or frame.f_code.co_name == "<module>":
            return
        rel = str(Path(name).relative_to(ROOT))
        run.add(rel)
        if rel == own:
            stacks.setdefault(f"{own}:{frame.f_code.co_qualname}", _project_stack(frame))

    pq.write_table = spying_write
    command = ["release", args.indicator, "--date", str(DAY), "--workspace", str(workspace)]
    sys.setprofile(profile)
    try:
        result = CliRunner().invoke(cli, command)
    finally:
        sys.setprofile(None)
        pq.write_table = write_table
    if result.exit_code != 0:
        raise SystemExit(result.output)
    for what, stack in stacks.items():
        path = _from_command(stack)
        files = {s.split(":")[0] for s in path}
        print(f"{what}: hops={len(path) - 1} files={len(files)}")
        for step in path:
            print(f"    {step}")
    print(f"files run by the command: {len(run)}")
    for name in sorted(run):
        print(f"    {name}")


if __name__ == "__main__":
    main()
