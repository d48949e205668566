"""Sidecar lock files that serialise the ledger's readers and writers across processes.

DuckDB lets one process hold the file read-write, and a read-only open fails while a writer has
it, so every operation opens a short-lived connection under ``fcntl.flock`` on a sidecar lock
file: ``<ledger>.lock`` (exclusive for a read-write connection, shared for a read-only one, held
only while the connection is open) and ``<ledger>.writer.lock`` (exclusive for a whole charge
transaction, so that check-then-append is atomic across processes and threads). Locks are
released by the kernel when a process dies, so a kill -9 never leaves the ledger locked.
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
    from collections.abc import Iterator
    from pathlib import Path


def now() -> datetime:
    """The current time, timezone-aware (UTC): every ledger timestamp."""
    return datetime.now(UTC)


def _lock_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


@contextmanager
def flock(path: Path, *, exclusive: bool, timeout: float, purpose: str) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if missing) for the block; poll until ``timeout``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    msg = (
                        f"The privacy ledger is busy: could not lock {path} for {purpose} within "
                        f"{timeout:g} s (held by {_lock_holder(path)}). Wait for that run to "
                        "finish; a lock is freed as soon as its process ends."
                    )
                    raise MobilityError(msg) from None
                time.sleep(0.02)
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {now().isoformat()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
