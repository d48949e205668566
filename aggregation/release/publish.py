"""Release files: written aside, hashed, then made visible by one atomic rename.

Layout: ``releases/<indicator>/<release_id>/{data.parquet, data.csv, metadata.json}``. Until the
rename, files live in ``releases/.tmp-<release_id>/``, which readers ignore; a failed run removes
it, and a crash leaves only such a folder behind (cleaned by the next release).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonschema
import pyarrow.parquet as pq

from schemas.release import METADATA_JSON_SCHEMA, release_contract

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

DATA_FILES = ("data.parquet", "data.csv")
METADATA_FILE = "metadata.json"


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class StagedRelease:
    """Files of one release written aside and hashed, ready to be moved into place."""

    tmp_dir: Path
    final_dir: Path
    hashes: dict[str, str]

    def move(self) -> None:
        """Make the release visible: one rename of the whole directory."""
        self.final_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.replace(self.final_dir)

    def discard(self) -> None:
        """Remove the files written aside (a failed release publishes nothing)."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def write_aside(
    releases: Path, indicator: str, release_id: str, data: pl.DataFrame, metadata: dict[str, Any]
) -> StagedRelease:
    """Write data and metadata into a temporary folder under ``releases``; hash everything."""
    tmp = releases / f".tmp-{release_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    table = data.to_arrow().cast(release_contract(indicator).schema)
    release_contract(indicator).validate(table, source=f"release {release_id}")
    pq.write_table(table, tmp / "data.parquet", compression="zstd")
    data.write_csv(tmp / "data.csv")
    hashes = {name: sha256_file(tmp / name) for name in DATA_FILES}
    document = {**metadata, "files": hashes}
    jsonschema.validate(document, METADATA_JSON_SCHEMA)
    (tmp / METADATA_FILE).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    hashes[METADATA_FILE] = sha256_file(tmp / METADATA_FILE)
    return StagedRelease(tmp, releases / indicator / release_id, hashes)


def clean_leftovers(releases: Path) -> None:
    """Remove folders of releases that never completed (crashed runs)."""
    for leftover in releases.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
