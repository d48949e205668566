"""Sidecar lock files that serialise the ledger's readers and writers across processes.

DuckDB lets one process hold the file read-write, and a read-only open fails while a writer has
it, so every operation opens a short-lived connection under ``fcntl.flock`` on a sidecar lock
file: ``<ledger>.lock`` (exclusive for a read-write connection, shared for a read-only one, held
only while the connection is open) and ``<ledger>.writer.lock`` (exclusive for a whole charge
transaction, so that check-then-append is atomic across processes and threads). Locks are
released by the kernel when a process dies, so a kill -9 never leaves the ledger locked.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aggregation.file_lock import hold_flock

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def now() -> datetime:
    """The current time, timezone-aware (UTC): every ledger timestamp."""
    return datetime.now(UTC)


@contextmanager
def flock(path: Path, *, exclusive: bool, timeout: float, purpose: str) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if missing) for the block; poll until ``timeout``."""

    def busy(holder: str) -> str:
        return (
            f"The privacy ledger is busy: could not lock {path} for {purpose} within "
            f"{timeout:g} s (held by {holder}). Wait for that run to finish; a lock is freed as "
            "soon as its process ends."
        )

    with hold_flock(path, exclusive=exclusive, timeout=timeout, owner=purpose, busy=busy):
        yield
