"""Staged-file digests are remembered while a file is unchanged, and recomputed when it is not."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import aggregation.release.digests as digests_module
from aggregation.release.digests import CACHE_FILE, staged_digests


def _file(staged: Path, rel: str, data: bytes) -> str:
    path = staged / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files actually read to be hashed."""
    seen: list[str] = []
    real = digests_module.sha256_file

    def counting(path: Path) -> str:
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(digests_module, "sha256_file", counting)
    return seen


def test_unchanged_files_are_not_read_again(tmp_path: Path, hashed: list[str]) -> None:
    a = _file(tmp_path, "date=2026-03-02/shard=000/cdr.parquet", b"first")
    b = _file(tmp_path, "date=2026-03-02/shard=001/cdr.parquet", b"second")
    first = staged_digests(tmp_path, [a, b])
    assert [(d.path, d.sha256) for d in first] == [
        ("date=2026-03-02/shard=000/cdr.parquet", _sha(b"first")),
        ("date=2026-03-02/shard=001/cdr.parquet", _sha(b"second")),
    ]
    assert len(hashed) == 2
    assert staged_digests(tmp_path, [a, b]) == first
    assert len(hashed) == 2  # remembered
    assert (tmp_path / CACHE_FILE).is_file()


def test_a_file_rewritten_with_its_old_size_and_time_is_hashed_again(
    tmp_path: Path, hashed: list[str]
) -> None:
    a = _file(tmp_path, "date=2026-03-02/shard=000/cdr.parquet", b"honest")
    before = Path(a).stat()
    (digest,) = staged_digests(tmp_path, [a])
    with Path(a).open("r+b") as fh:  # same inode, same size
        fh.write(b"forged")
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))  # modification time put back
    (again,) = staged_digests(tmp_path, [a])
    assert again.sha256 == _sha(b"forged") != digest.sha256
    assert len(hashed) == 2


def test_a_restaged_file_and_a_missing_cache_are_hashed_afresh(
    tmp_path: Path, hashed: list[str]
) -> None:
    a = _file(tmp_path, "date=2026-03-02/shard=000/cdr.parquet", b"one")
    staged_digests(tmp_path, [a])
    replacement = tmp_path / "new.parquet"
    replacement.write_bytes(b"two")
    replacement.replace(a)  # how staging swaps a drop's files in
    assert staged_digests(tmp_path, [a])[0].sha256 == _sha(b"two")
    (tmp_path / CACHE_FILE).write_text("not json")
    assert staged_digests(tmp_path, [a])[0].sha256 == _sha(b"two")
    assert len(hashed) == 3
