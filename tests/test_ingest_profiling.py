"""The duplicate scan: same candidates in one pass or many; more passes when memory runs out."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from test_ingest_rules import _cdr_row, _cdr_table, local

from aggregation.ingest import profiling
from aggregation.ingest.drops import discover
from aggregation.ingest.profiling import profile
from aggregation.ingest.reading import Source, open_source

if TYPE_CHECKING:
    from pathlib import Path

ROWS = 2_000


@pytest.fixture
def source(tmp_path: Path) -> Source:
    """A CDR drop where every 7th row repeats the (msisdn, time) of the row before it."""
    rng = np.random.default_rng(3)
    rows: list[dict[str, Any]] = []
    for i in range(ROWS):
        if i % 7 == 6:
            rows.append(dict(rows[-1], record_id=f"r{i}"))
            continue
        when = local("2026-03-02 10:00:00") + dt.timedelta(seconds=int(rng.integers(0, 50_000)))
        rows.append(_cdr_row(f"r{i}", msisdn=f"23480{rng.integers(0, 300):08d}", event_time=when))
    path = tmp_path / "cdr_2026-03-02.parquet"
    pq.write_table(_cdr_table(rows), path)
    (raw,) = discover([path])
    return open_source(raw, tmp_path)


def _expected(source: Source) -> list[int]:
    table = pq.read_table(source.parquet, columns=["msisdn", "event_time"]).to_pylist()
    keys = [(r["msisdn"], r["event_time"]) for r in table]
    counts = {k: keys.count(k) for k in set(keys)}
    return [i + 1 for i, k in enumerate(keys) if counts[k] > 1]


def test_several_passes_find_the_same_candidates(source: Source, tmp_path: Path) -> None:
    one = profile(source, memory_limit_mb=64, spill_dir=tmp_path / "spill")
    assert one.passes == 1
    assert one.candidates.to_list() == _expected(source)
    assert len(one.candidates) >= 2 * (ROWS // 7)
    many = profile(source, memory_limit_mb=64, spill_dir=tmp_path / "spill", rows_per_mb=7)
    assert many.passes == 5  # 2 000 rows / (64 MiB x 7 rows per MiB), rounded up
    assert many.candidates.equals(one.candidates)


def test_passes_double_when_memory_runs_out(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = profiling._candidates

    def tight(source: Source, memory_limit_mb: int, spill_dir: Path, passes: int) -> np.ndarray:
        if passes < 4:
            raise duckdb.OutOfMemoryException("Out of Memory Error: (simulated)")
        return real(source, memory_limit_mb, spill_dir, passes)

    monkeypatch.setattr(profiling, "_candidates", tight)
    found = profile(source, memory_limit_mb=64, spill_dir=tmp_path / "spill")
    assert found.passes == 4
    assert found.candidates.to_list() == _expected(source)
