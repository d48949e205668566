"""A lock file held with ``flock``: the one way processes here wait for one another.

The ledger's sidecar locks and the workspace's run lock are both an ``flock`` on a file: taken
without blocking and polled until a deadline (so a waiter can say whom it waits for, and give up
with a message), released by the kernel when the holding process dies (a ``kill -9`` never
leaves anything locked). An exclusive holder writes who it is into the file for waiters to read.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from schemas.errors import MobilityError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


def lock_holder(path: Path) -> str:
    """Who holds ``path``, as its exclusive holder wrote it ("another process" if unknown)."""
    try:
        return path.read_text(encoding="utf-8").strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def hold_flock(
    path: Path,
    *,
    exclusive: bool,
    timeout: float,
    owner: str,
    busy: Callable[[str], str],
    poll: float = 0.02,
    waiting: Callable[[str], None] | None = None,
    error: type[MobilityError] = MobilityError,
) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if missing) for the block.

    Polls every ``poll`` seconds until ``timeout``; ``waiting`` is told the holder once, when the
    lock is first found taken; past the deadline ``error`` (a :class:`MobilityError`) says
    ``busy(holder)``.
    An exclusive holder writes ``owner (pid P, since T)`` into the file, and clears it on release.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and waiting is not None:
                    waiting(lock_holder(path))
                    told = True
                if time.monotonic() >= deadline:
                    raise error(busy(lock_holder(path))) from None
                time.sleep(poll)
        if exclusive:
            os.ftruncate(fd, 0)
            since = datetime.now(UTC).isoformat(timespec="seconds")
            os.pwrite(fd, f"{owner} (pid {os.getpid()}, since {since})\n".encode(), 0)
        try:
            yield
        finally:
            if exclusive:
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)
