"""Named points in a release where a test can stop the process, to prove crash recovery.

A release passes, in order: ``charged`` (the pending charge is committed), ``noised`` (noise
drawn, nothing written), ``data_written`` (the data files are in the temporary folder, the
metadata not yet), ``written`` (the temporary folder is complete and hashed), ``moved`` (the
folder is in place, the publication not yet recorded) and ``published``. Production code never
installs a hook; the crash tests do, in a subprocess, and kill it with SIGKILL at one point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

STEPS = ("charged", "noised", "data_written", "written", "moved", "published")
"""Every checkpoint, in the order a release reaches them."""

_hooks: list[Callable[[str], None]] = []


def reach(step: str) -> None:
    """Tell the installed hook (if any) that the release reached ``step``."""
    for hook in _hooks:
        hook(step)


def install(hook: Callable[[str], None]) -> None:
    """Call ``hook(step)`` at every checkpoint from now on (tests only)."""
    _hooks.append(hook)
