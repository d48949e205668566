"""The workspace's run lock: one run at a time across processes, re-entrant within one."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from flows.run_lock import LOCK_FILE, run_lock
from schemas.errors import MobilityError

if TYPE_CHECKING:
    from pathlib import Path

HOLD = """
import sys, time
from pathlib import Path
from flows.run_lock import run_lock
with run_lock(Path(sys.argv[1]), what="the nightly backfill"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(root: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_waits_for_the_first_and_names_it(tmp_path: Path) -> None:
    holder = _holder(tmp_path, 1.5)
    told: list[str] = []
    started = time.monotonic()
    with run_lock(tmp_path, what="mobility-daily 2026-03-02", waiting=told.append):
        waited = time.monotonic() - started
        assert "mobility-daily 2026-03-02" in (tmp_path / LOCK_FILE).read_text()
    holder.communicate()
    assert waited >= 0.5
    assert len(told) == 1
    assert "the nightly backfill" in told[0]
    assert f"pid {holder.pid}" in told[0]


def test_a_run_gives_up_after_its_wait_with_what_to_do(tmp_path: Path) -> None:
    holder = _holder(tmp_path, 5)
    try:
        with (
            pytest.raises(
                MobilityError, match=r"still holds .*the nightly backfill.*Let it finish"
            ),
            run_lock(tmp_path, what="mobility-daily", wait_seconds=0.5),
        ):
            pytest.fail("the lock was taken while another process held it")
    finally:
        holder.kill()
        holder.communicate()
    # The kernel released the killed holder's lock.
    with run_lock(tmp_path, what="after the kill", wait_seconds=5):
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with run_lock(tmp_path, what="backfill"), run_lock(tmp_path, what="its first day"):
        assert "backfill" in (tmp_path / LOCK_FILE).read_text()
    holder = _holder(tmp_path, 0)  # released: another process takes it at once
    holder.communicate()
