"""One run of a workspace at a time: the workspace's run lock.

Two runs of the daily flow (a scheduled run, a backfill, a ``mobility run`` typed by hand) could
otherwise interleave: ingest re-staging a day while the other run's release reads it. The ledger
never overspends either way (its own writer lock makes every charge atomic), but the runs' reports
would describe a mix. So a run holds ``<workspace>/.run.lock`` (``flock``, released by the kernel
if the process dies) from start to end; a second run waits for it, saying for whom, and gives up
after :data:`WAIT_SECONDS` with a message. The lock is re-entrant within a process, so a backfill
holding it runs its days as subflows without waiting on itself.

The Prefect deployments add a concurrency limit of one run each (``mobility serve``), so that a
second run of the same deployment waits in Prefect (state ``AwaitingConcurrencySlot``, visible in
the UI) rather than in a process.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from schemas.errors import MobilityError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

LOCK_FILE = ".run.lock"
WAIT_SECONDS = 6 * 3600
"""How long a run waits for another run of the same workspace (a long backfill) to end."""

_held: dict[str, int] = {}
_guard = threading.Lock()


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def run_lock(
    root: Path,
    *,
    what: str,
    waiting: Callable[[str], None] | None = None,
    wait_seconds: float = WAIT_SECONDS,
) -> Iterator[None]:
    """Hold the run lock of the workspace at ``root`` for the block.

    ``what`` describes this run (written into the lock file for whoever waits); ``waiting`` is
    told once, with the holder's description, if the lock is taken by another process.
    """
    path = root / LOCK_FILE
    key = str(path.resolve())
    with _guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and waiting is not None:
                    waiting(_holder(path))
                    told = True
                if time.monotonic() >= deadline:
                    msg = (
                        f"Another run of {root} still holds {path} ({_holder(path)}) after "
                        f"{wait_seconds:g} s; this run did nothing. Let it finish (see its logs), "
                        "then run this one again."
                    )
                    raise MobilityError(msg) from None
                time.sleep(1.0)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()}, since {started})\n".encode(), 0)
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
