"""Staging is idempotent and atomic per drop: re-ingest replaces; crash, re-run, same data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aggregation.ingest import ingest_files
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

HEADER = "record_id,msisdn,event_time,cell_id,event_type,direction,duration_s,volume_bytes"


def snapshot(ws: Path) -> dict[str, bytes]:
    """Every staged partition file and quarantine file, by relative path, with its bytes."""
    files = [*ws.glob("staged/date=*/shard=*/*.parquet"), *ws.glob("quarantine/*.parquet")]
    return {p.relative_to(ws).as_posix(): p.read_bytes() for p in sorted(files)}


def cdr_csv(path: Path, subscribers: int, day: str = "2026-03-02") -> Path:
    """A CDR export with one event per subscriber, and one bad row."""
    lines = [HEADER]
    lines += [
        f"r{i},23480{i:08d},{day} {i % 24:02d}:00:00,CELL{1 + i % 2},sms,in,,"
        for i in range(subscribers)
    ]
    lines.append(f"bad,2348000000001,{day} 10:00:00,NOPE,sms,in,,")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reingest_is_idempotent(tiny_workspace: Path, key_environ: dict[str, str]) -> None:
    raw = cdr_csv(tiny_workspace.parent / "cdr_2026-03-02.csv", 200)
    ingest_files([raw], tiny_workspace, environ=key_environ)
    first = snapshot(tiny_workspace)
    assert len([p for p in first if p.startswith("staged/")]) == 16
    ingest_files([raw], tiny_workspace, environ=key_environ)
    assert snapshot(tiny_workspace) == first


def test_reingest_removes_partitions_the_drop_no_longer_has(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    raw = cdr_csv(tiny_workspace.parent / "cdr_2026-03-02.csv", 200)
    other = cdr_csv(tiny_workspace.parent / "cdr_2026-03-03.csv", 50, day="2026-03-03")
    ingest_files([raw, other], tiny_workspace, environ=key_environ)
    others = {k: v for k, v in snapshot(tiny_workspace).items() if "cdr_2026-03-03" in k}
    cdr_csv(raw, 2)  # the corrected export holds two subscribers, and no bad row
    lines = raw.read_text().splitlines()[:-1]
    raw.write_text("\n".join(lines) + "\n")
    report = ingest_files([raw], tiny_workspace, environ=key_environ)
    after = snapshot(tiny_workspace)
    mine = [k for k in after if "cdr_2026-03-02" in k]
    assert len(mine) == report.files[0].partitions <= 2
    assert not (tiny_workspace / "quarantine" / "cdr_2026-03-02.parquet").exists()
    assert {k: v for k, v in after.items() if "cdr_2026-03-03" in k} == others
    manifest = json.loads((tiny_workspace / "staged/_drops/cdr_2026-03-02.json").read_text())
    assert sorted(manifest["partitions"]) == sorted(k.removeprefix("staged/") for k in mine)
    assert manifest["rows_in"] == manifest["rows_staged"] == 2


def test_a_crash_during_commit_then_a_rerun_gives_the_same_data(
    tiny_workspace: Path, key_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = cdr_csv(tiny_workspace.parent / "cdr_2026-03-02.csv", 300)
    ingest_files([raw], tiny_workspace, environ=key_environ)
    expected = snapshot(tiny_workspace)
    for p in tiny_workspace.glob("staged/date=*/shard=*/*.parquet"):
        p.unlink()  # start again from an empty workspace, with the same layout
    (tiny_workspace / "staged/_drops/cdr_2026-03-02.json").unlink()

    real_replace = Path.replace
    moved = 0

    def crash_after_five(self: Path, target: Any) -> Path:
        nonlocal moved
        if str(target).endswith(".parquet") and "staged" in str(target):
            moved += 1
            if moved > 5:
                raise KeyboardInterrupt
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        ingest_files([raw], tiny_workspace, environ=key_environ)
    monkeypatch.setattr(Path, "replace", real_replace)
    assert len(list(tiny_workspace.glob("staged/date=*/shard=*/*.parquet"))) == 5
    assert not (tiny_workspace / "staged/_drops/cdr_2026-03-02.json").exists()  # incomplete
    assert ingest_files([raw], tiny_workspace, environ=key_environ).ok
    assert snapshot(tiny_workspace) == expected
    assert not list((tiny_workspace / ".tmp").rglob("*.parquet"))


def test_an_error_while_writing_leaves_the_previous_state(
    tiny_workspace: Path, key_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = cdr_csv(tiny_workspace.parent / "cdr_2026-03-02.csv", 300)
    ingest_files([raw], tiny_workspace, environ=key_environ)
    before = snapshot(tiny_workspace)
    manifest = (tiny_workspace / "staged/_drops/cdr_2026-03-02.json").read_bytes()

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("aggregation.ingest.pipeline.commit", fail)
    cdr_csv(raw, 10)
    with pytest.raises(OSError, match="No space left"):
        ingest_files([raw], tiny_workspace, environ=key_environ)
    assert snapshot(tiny_workspace) == before
    assert (tiny_workspace / "staged/_drops/cdr_2026-03-02.json").read_bytes() == manifest
    assert not (tiny_workspace / ".tmp" / "ingest").exists()


_CHILD = """
import sys, time
from pathlib import Path
import aggregation.ingest.staging as staging
from aggregation.ingest import ingest_files

real = Path.replace
def slow(self, target):
    if "staged/date=" in str(target):
        print("moved", flush=True)
        time.sleep(0.5)
    return real(self, target)
Path.replace = slow
ingest_files([Path(sys.argv[1])], Path(sys.argv[2]), environ={"MOBILITY_SECRET": sys.argv[3]})
"""


@pytest.mark.slow  # a SIGKILLed ingest process (an interpreter start); in-process crashes above
def test_a_killed_run_then_a_rerun_gives_the_same_data(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    raw = cdr_csv(tiny_workspace.parent / "cdr_2026-03-02.csv", 400)
    ingest_files([raw], tiny_workspace, environ=key_environ)
    expected = snapshot(tiny_workspace)
    for p in tiny_workspace.glob("staged/date=*/shard=*/*.parquet"):
        p.unlink()
    secret = key_environ["MOBILITY_SECRET"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(raw), str(tiny_workspace), secret],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert child.stdout is not None
    for _ in range(3):  # let three partition files land, then kill it mid-commit
        assert child.stdout.readline().strip() == "moved"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert 1 <= len(list(tiny_workspace.glob("staged/date=*/shard=*/*.parquet"))) < 16
    assert (tiny_workspace / ".tmp" / "ingest").exists()  # left by the killed run: raw data
    time.sleep(0.1)
    assert ingest_files([raw], tiny_workspace, environ=key_environ).ok
    assert snapshot(tiny_workspace) == expected
    assert not (tiny_workspace / ".tmp" / "ingest").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("shards = 16", "shards = 8"), "written with shards = 16"),
        (lambda t: t.replace("Africa/Lagos", "Africa/Cairo"), "timezone = 'Africa/Lagos'"),
    ],
)
def test_staged_data_are_never_mixed_with_other_settings(
    tiny_workspace: Path,
    key_environ: dict[str, str],
    edit: Callable[[str], str],
    message: str,
) -> None:
    raw = cdr_csv(tiny_workspace.parent / "cdr_2026-03-02.csv", 20)
    ingest_files([raw], tiny_workspace, environ=key_environ)
    config = tiny_workspace / "mobility.toml"
    config.write_text(edit(config.read_text()))
    with pytest.raises(ConfigurationError, match=message):
        ingest_files([raw], tiny_workspace, environ=key_environ)


def test_a_different_secret_is_refused(tiny_workspace: Path, key_environ: dict[str, str]) -> None:
    raw = cdr_csv(tiny_workspace.parent / "cdr_2026-03-02.csv", 20)
    ingest_files([raw], tiny_workspace, environ=key_environ)
    other = {"MOBILITY_SECRET": "another-secret-of-enough-length-000"}
    with pytest.raises(ConfigurationError, match="secret differs") as info:
        ingest_files([raw], tiny_workspace, environ=other)
    assert other["MOBILITY_SECRET"] not in str(info.value)
    assert key_environ["MOBILITY_SECRET"] not in str(info.value)
