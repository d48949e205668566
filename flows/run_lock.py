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

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aggregation.file_lock import hold_flock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

LOCK_FILE = ".run.lock"
WAIT_SECONDS = 6 * 3600
"""How long a run waits for another run of the same workspace (a long backfill) to end."""

_held: dict[str, int] = {}
_guard = threading.Lock()


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

    def busy(holder: str) -> str:
        return (
            f"Another run of {root} still holds {path} ({holder}) after {wait_seconds:g} s; this "
            "run did nothing. Let it finish (see its logs), then run this one again."
        )

    with hold_flock(
        path, exclusive=True, timeout=wait_seconds, owner=what, busy=busy, poll=1.0,
        waiting=waiting,
    ):  # fmt: skip
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
