"""kill -9 at each step of a release, then a rerun: one published answer, one charge (16.3, 16.4).

Each crash runs the release in a child process that kills itself with SIGKILL when the release
reaches a checkpoint (:mod:`aggregation.release.checkpoints`); the children are forked from a
forkserver that has imported the pipeline once, so a crash costs a release, not an interpreter
start. The rerun happens in this process. Whatever the step, the workspace must end with exactly
one published answer to the question, the ledger spend of an uninterrupted run, no temporary
folder, and a clean ``audit verify``; from ``written`` on, the answer is the one the killed run
wrote (same noise).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from typing import TYPE_CHECKING

import polars as pl
import pytest

import aggregation.release.run as release_run
from aggregation.audit import verify_workspace
from aggregation.release import checkpoints, open_context, release
from aggregation.release.publish import discard_aside
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from tests.conftest import KEY_ENVIRON, START

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SPEC = ReleaseSpec(Indicator.PRESENCE, START, START, epsilon=1.0)


def _release_and_die_at(workspace: str, step: str) -> None:
    """In the child: release SPEC, SIGKILL at ``step``."""

    def die(reached: str) -> None:
        if reached == step:
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoints.install(die)
    release(open_context(workspace, environ=KEY_ENVIRON), SPEC)


@pytest.fixture(scope="module")
def forkserver() -> Iterator[multiprocessing.context.ForkServerContext]:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["aggregation.release", "tests.test_release_crash"])
    return context


@pytest.fixture(scope="module")
def uninterrupted(staged_template: Path, tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    """The window spend of the same release, run once without a crash (the control)."""
    ws = tmp_path_factory.mktemp("control") / "ws"
    shutil.copytree(staged_template, ws)
    ctx = open_context(ws, environ=KEY_ENVIRON)
    release(ctx, SPEC)
    return [b.epsilon_spent for b in ctx.ledger.window_budgets()]


def _written_by_the_killed_run(ws: Path) -> pl.DataFrame | None:
    found = [*ws.glob("releases/.tmp-*/data.parquet"), *ws.glob("releases/presence/*/data.parquet")]
    return pl.read_parquet(found[0]) if len(found) == 1 else None


@pytest.mark.slow  # a SIGKILLed child release per step (~1 s each); in-process failures below
@pytest.mark.parametrize("step", checkpoints.STEPS)
def test_a_release_killed_at_any_step_then_rerun_publishes_one_answer_charged_once(
    workspace: Path,
    forkserver: multiprocessing.context.ForkServerContext,
    uninterrupted: list[float],
    step: str,
) -> None:
    child = forkserver.Process(target=_release_and_die_at, args=(str(workspace), step))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL, f"the release did not reach {step!r}"
    before = _written_by_the_killed_run(workspace)

    outcome = release(open_context(workspace), SPEC)

    ledger = open_context(workspace).ledger
    (entry,) = ledger.entries()
    assert entry.status == "published"
    assert [b.epsilon_spent for b in ledger.window_budgets()] == uninterrupted
    published = sorted((workspace / "releases" / "presence").iterdir())
    assert [p.name for p in published] == [entry.entry_id]
    assert outcome.directory == published[0]
    assert not list((workspace / "releases").glob(".tmp-*"))
    if step in ("written", "moved", "published"):
        assert before is not None
        assert outcome.data.equals(before)  # the noise the killed run wrote, not fresh noise
    assert outcome.reused == (step == "published")
    report = verify_workspace(workspace)
    assert report.passed, [f.line() for f in report.findings]
    assert report.warnings == []


def test_a_write_failure_leaves_no_noisy_bytes_without_a_charge(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while writing metadata.json: the folder with noisy cells is destroyed before
    the charge is rolled back."""

    def full_disk(reached: str) -> None:
        if reached == "data_written":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "_hooks", [full_disk])
    with pytest.raises(OSError, match="No space left"):
        release(open_context(workspace), SPEC)
    assert open_context(workspace).ledger.entries() == []
    assert not list((workspace / "releases").rglob("*.parquet"))
    assert not list((workspace / "releases").glob(".tmp-*"))


def test_noise_that_cannot_be_destroyed_stays_paid_for(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(reached: str) -> None:
        if reached == "data_written":
            raise OSError(28, "No space left on device")

    def stuck(releases: Path, release_id: str) -> None:
        del releases, release_id
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(checkpoints, "_hooks", [full_disk])
    monkeypatch.setattr(release_run, "discard_aside", stuck)
    with pytest.raises(OSError, match="Input/output"):
        release(open_context(workspace), SPEC)
    (entry,) = open_context(workspace).ledger.entries()
    assert entry.status == "pending"  # noisy bytes are on disk: the charge stays
    leftover = workspace / "releases" / f".tmp-{entry.entry_id}"
    assert (leftover / "data.parquet").exists()
    report = verify_workspace(workspace)
    assert report.passed
    assert any(f.where == f"releases/.tmp-{entry.entry_id}" for f in report.warnings)

    monkeypatch.setattr(checkpoints, "_hooks", [])
    monkeypatch.setattr(release_run, "discard_aside", discard_aside)
    outcome = release(open_context(workspace), SPEC)  # the rerun finishes it: no second charge
    (entry,) = open_context(workspace).ledger.entries()
    assert entry.status == "published"
    assert outcome.directory.name == entry.entry_id


def test_audit_verify_fails_a_temporary_folder_no_charge_pays_for(workspace: Path) -> None:
    release(open_context(workspace), SPEC)
    (entry,) = open_context(workspace).ledger.entries()
    stray = workspace / "releases" / ".tmp-0123456789abcdef"
    shutil.copytree(workspace / "releases" / "presence" / entry.entry_id, stray)
    report = verify_workspace(workspace)
    assert [(f.check, f.where) for f in report.failures] == [
        ("files", "releases/.tmp-0123456789abcdef")
    ]
    assert "no pending charge" in report.failures[0].message
