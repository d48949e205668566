#!/usr/bin/env python3
"""Set up the locked environment if needed, then run the demo or the tests.

    python3 dev.py demo [ARGS...]   # the whole job on the embedded default (``mobility demo``)
    python3 dev.py test [ARGS...]   # lint, type-check and the test suite (pytest ARGS)

Needs only Python >= 3.11 and access to the package registry: it creates ``.venv`` with a pinned
``uv`` and installs exactly what ``uv.lock`` records (``uv sync --locked``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
UV_VERSION = "0.13.8"  # keep equal to the uv pin in pyproject.toml's dev group
PYTEST_NO_TESTS_COLLECTED = 5


def _run(*cmd: str | Path) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)  # noqa: S603


def _ensure_environment() -> None:
    # Trust the operating system's certificate store (as pip does here): networks that inspect
    # TLS, common inside operators' walls, add their authority there, not to uv's bundled roots.
    os.environ.setdefault("UV_SYSTEM_CERTS", "true")
    # Installed packages get their bytecode now, once: where PYTHONDONTWRITEBYTECODE is set,
    # Python never caches it, and every process (each test worker, each CLI test's subprocess)
    # would compile some 2 000 modules of prefect, polars, fastapi, ... again (~11 s of CPU).
    os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
    uv = BIN / "uv"
    if not uv.exists():
        print(f"dev.py: creating {VENV} with uv {UV_VERSION} ...", flush=True)
        venv.create(VENV, with_pip=True, clear=True)
        rc = _run(
            BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            f"uv=={UV_VERSION}",
        )  # fmt: skip
        if rc:
            sys.exit(f"dev.py: could not install uv {UV_VERSION} (pip exit {rc})")
    env_ok = _run(uv, "sync", "--locked", "--quiet", "--python", BIN / "python")
    if env_ok:
        sys.exit("dev.py: 'uv sync --locked' failed: is uv.lock up to date with pyproject.toml?")


def _test(args: list[str]) -> int:
    for step in (
        (BIN / "ruff", "check", "."),
        (BIN / "ruff", "format", "--check", "."),
        (BIN / "mypy",),
    ):
        rc = _run(*step)
        if rc:
            print(f"dev.py: {' '.join(str(s) for s in step)} failed", file=sys.stderr)
            return rc
    rc = _run(BIN / "python", "-m", "pytest", *args)
    if rc == PYTEST_NO_TESTS_COLLECTED:
        print("dev.py: pytest collected no tests (exit 5); treating that as a failure")
        return 1
    return rc


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "test"}:  # noqa: PLR2004 - argv[0], command
        print(__doc__)
        return 2
    command, args = sys.argv[1], sys.argv[2:]
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _ensure_environment()
    if command == "demo":
        return _run(BIN / "mobility", "demo", *args)
    return _test(args)


if __name__ == "__main__":
    sys.exit(main())
