"""A live API server for tests that talk HTTP like real clients (schemathesis, the Python client).

:func:`served` runs uvicorn on 127.0.0.1 on a free port in a background thread;
:func:`small_released_workspace` makes a one-day workspace with a few releases (about 5 s).
"""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

from aggregation.ingest import ingest_files
from aggregation.release import open_context, release
from flows.api import create_app
from flows.api.tokens import TokenStore
from sample_data.synth import SynthConfig, generate
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from schemas.workspace import init_workspace
from tests.conftest import KEY_ENVIRON, START

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ROLES = ("analyst", "auditor", "operator")


@dataclass(frozen=True)
class LiveServer:
    """A running API server, its workspace and one token per role."""

    url: str
    workspace: Path
    tokens: dict[str, str]


def small_released_workspace(root: Path) -> Path:
    """One synthetic day (1 500 subscribers) ingested, with od_trips, presence and
    mobility_distance released at admin2."""
    export = root / "export"
    generate(SynthConfig(subscribers=1500, days=1, start=START, seed=11, scenario="none"), export)
    ws = init_workspace(root / "ws").root
    (ws / "reference").mkdir()
    for name in ("zones.parquet", "cells.csv"):
        shutil.copy(export / "reference" / name, ws / "reference" / name)
    assert ingest_files([export / "raw"], ws, environ=KEY_ENVIRON).ok
    ctx = open_context(ws, environ=KEY_ENVIRON)
    # k alone: 1 500 subscribers make few flows above the reliability bar (2 × ci95 = 48 at
    # ε = 0.5), and the exports tested here need some rows whatever the noise.
    release(ctx, ReleaseSpec(Indicator.OD_TRIPS, START, START, epsilon=0.5, reliability=0.0))
    release(ctx, ReleaseSpec(Indicator.PRESENCE, START, START, epsilon=0.5))
    release(ctx, ReleaseSpec(Indicator.MOBILITY_DISTANCE, START, START, epsilon=0.25,
                             value="subscribers"))  # fmt: skip
    return ws


@contextmanager
def served(workspace: Path) -> Iterator[LiveServer]:
    """The API of ``workspace`` on a free port of 127.0.0.1, with a fresh token per role."""
    store = TokenStore(workspace)
    tokens = {role: store.create(role, label="tests")[1] for role in ROLES}
    config = uvicorn.Config(create_app(workspace), host="127.0.0.1", port=0, log_level="warning",
                            access_log=False, ws="none", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            msg = "the API server did not start within 30 s"
            raise RuntimeError(msg)
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", workspace, tokens)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
