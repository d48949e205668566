"""The staged directory's readers-writer lock: a release reads one state of the staged data.

A release names the staged files (and day-zone summaries) it reads, with their SHA-256, when it
is planned, and reads them afterwards to compute its exact aggregate. An ingest committing a drop
of the same days in between would replace those files, and remove their summaries, under the
release's feet: its aggregate would then come from other data than its ledger entry names, or
fail on a summary that vanished. So a release holds ``<workspace>/.staged.lock`` *shared* from its
planning to the end of its exact aggregate (:func:`reading_staged`), and an ingest holds it
*exclusive* while it swaps a drop's files into place (:func:`changing_staged`, the commit: well
under a second a drop), waiting for the releases reading to finish first. Releases do not wait
for one another, nor for an ingest's reading and validation, only for its commit.

Like every lock here it is an ``flock`` (:mod:`aggregation.file_lock`): released by the kernel
when its holder dies, so a killed release or ingest never leaves the staged data locked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aggregation.file_lock import hold_flock
from schemas.errors import MobilityError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

STAGED_LOCK = ".staged.lock"
"""The lock file, in the workspace's root directory."""
READ_TIMEOUT_S = 600.0
"""How long a release waits for an ingest's commit (a commit takes seconds)."""
COMMIT_TIMEOUT_S = 3600.0
"""How long an ingest's commit waits for the releases reading the staged data (one exact
aggregate of a billion-event day takes minutes)."""


class StagedBusyError(MobilityError):
    """The staged data stayed locked past the wait."""


@contextmanager
def reading_staged(root: Path, timeout: float = READ_TIMEOUT_S) -> Iterator[None]:
    """Hold the staged data of the workspace at ``root`` unchanged for the block (shared: other
    releases read too). A workspace whose root cannot be written (an auditor's read-only copy)
    cannot be ingested into either, and is read without the lock."""
    path = root / STAGED_LOCK
    if not os.access(path if path.exists() else root, os.W_OK):
        yield
        return

    def busy(holder: str) -> str:
        return (
            f"An ingest has been changing the staged data of {root} for over {timeout:.0f} s "
            f"({holder} holds {path}); wait for it to finish, then run the release again. "
            "Nothing was charged."
        )

    with hold_flock(
        path, exclusive=False, timeout=timeout, owner="a release", busy=busy,
        error=StagedBusyError,
    ):  # fmt: skip
        yield


@contextmanager
def changing_staged(
    root: Path,
    timeout: float = COMMIT_TIMEOUT_S,
    waiting: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the staged data of the workspace at ``root`` for changing it (exclusive), once the
    releases reading it are done; ``waiting`` is told once if they are not yet."""

    def busy(_: str) -> str:
        return (
            f"Releases have been reading the staged data of {root} for over {timeout:.0f} s "
            f"(they hold {root / STAGED_LOCK}); the drop was not committed and its files are "
            "unchanged. Ingest it again once they are done."
        )

    with hold_flock(
        root / STAGED_LOCK, exclusive=True, timeout=timeout, owner="an ingest's commit",
        busy=busy, waiting=waiting, error=StagedBusyError,
    ):  # fmt: skip
        yield
