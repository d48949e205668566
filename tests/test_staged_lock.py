"""A release reads one state of the staged data: an ingest's commit waits for it (and back).

The release names its input files by SHA-256 when it is planned and reads them afterwards; an
ingest of the same day committing in between would change them under it
(:mod:`aggregation.staged_lock`).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aggregation.ingest.pipeline as pipeline_module
from aggregation.ingest import ingest_files
from aggregation.release import open_context, release
from aggregation.release.run import local_aggregator
from aggregation.staged_lock import StagedBusyError, changing_staged, reading_staged
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from tests.conftest import KEY_ENVIRON, START

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import polars as pl
    import pytest

    from aggregation.bounding import BoundingKey
    from aggregation.indicators import AggregateRequest

WAIT_S = 120.0


def test_an_ingest_commits_only_once_the_release_reading_its_day_is_done(
    staged_template: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = open_context(workspace)
    reading, go = threading.Event(), threading.Event()
    at_commit, committed = threading.Event(), threading.Event()
    exact = local_aggregator(ctx.workspace)

    def held(request: AggregateRequest, key: BoundingKey) -> pl.DataFrame:
        reading.set()
        assert go.wait(WAIT_S)
        return exact(request, key)

    real_changing, real_commit = pipeline_module.changing_staged, pipeline_module.commit

    @contextmanager
    def watched_changing(root: Path) -> Iterator[None]:
        at_commit.set()
        with real_changing(root):
            yield

    def watched_commit(*args: Any, **kwargs: Any) -> None:
        real_commit(*args, **kwargs)
        committed.set()

    monkeypatch.setattr(pipeline_module, "changing_staged", watched_changing)
    monkeypatch.setattr(pipeline_module, "commit", watched_commit)
    results: dict[str, Any] = {}

    def run_release() -> None:
        spec = ReleaseSpec(Indicator.OD_TRIPS, START, START, epsilon=0.5)
        results["release"] = release(open_context(workspace), spec, aggregator=held)

    def run_ingest() -> None:
        raw = sorted((staged_template.parent / "export" / "raw").glob(f"*_{START}.*"))
        assert raw
        results["ingest"] = ingest_files(raw, workspace, environ=KEY_ENVIRON)

    releasing = threading.Thread(target=run_release)
    ingesting = threading.Thread(target=run_ingest)
    releasing.start()
    try:
        assert reading.wait(WAIT_S)  # the release is planned and reading
        ingesting.start()
        assert at_commit.wait(WAIT_S)  # the ingest has its files ready to swap in
        time.sleep(1.0)
        assert not committed.is_set(), "the ingest swapped files in under a release reading them"
    finally:
        go.set()
        releasing.join(WAIT_S)
        if ingesting.is_alive():
            ingesting.join(WAIT_S)
    assert committed.is_set()
    assert results["ingest"].ok
    assert not results["release"].reused


def test_a_release_waits_for_a_commit_then_gives_up_saying_what_to_do(tmp_path: Path) -> None:
    with changing_staged(tmp_path):
        failed: list[BaseException] = []

        def read() -> None:
            try:
                with reading_staged(tmp_path, timeout=0.2):
                    pass
            except StagedBusyError as exc:
                failed.append(exc)

        reader = threading.Thread(target=read)  # another open file description: flock applies
        reader.start()
        reader.join(WAIT_S)
    assert len(failed) == 1
    assert "changing the staged data" in str(failed[0])
    assert "Nothing was charged" in str(failed[0])
    with reading_staged(tmp_path, timeout=0.2), reading_staged(tmp_path, timeout=0.2):
        pass  # readers share
