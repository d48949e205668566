"""Release files: written aside, hashed, then made visible by one atomic rename.

Layout: ``releases/<indicator>/<release_id>/{data.parquet, data.csv, metadata.json}``. Until the
rename, files live in ``releases/.tmp-<release_id>/``, which readers ignore. ``metadata.json``
is written last, itself by a rename, and lists the SHA-256 of the data files: a folder whose
metadata is present and whose data match it is complete (:func:`recover`), whatever moment a
crash interrupted its writer. A temporary folder holds noisy values, so it is only ever created
under a committed ledger charge, and destroyed (:func:`discard_aside`) before a charge is
released.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jsonschema
import pyarrow.parquet as pq

from aggregation.release import checkpoints
from schemas.errors import MobilityError
from schemas.release import METADATA_JSON_SCHEMA, release_contract
from schemas.release_metadata import MetadataError, ReleaseMetadata

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

    import polars as pl

DATA_FILES = ("data.parquet", "data.csv")
MARGIN_FILES = ("margins.parquet", "margins.csv")
"""Unbiased totals of a public-key release (:mod:`aggregation.release.margins`), if any."""
METADATA_FILE = "metadata.json"
TMP_PREFIX = ".tmp-"


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tmp_dir(releases: Path, release_id: str) -> Path:
    """The temporary folder of release ``release_id``."""
    return releases / f"{TMP_PREFIX}{release_id}"


@dataclass(frozen=True)
class StagedRelease:
    """Files of one release, complete and hashed, ready to be made visible (or already so)."""

    folder: Path
    final_dir: Path
    hashes: dict[str, str]
    metadata: ReleaseMetadata

    @property
    def cells_released(self) -> int:
        """Cells in the data files."""
        return self.metadata.cells_released

    @property
    def cells_suppressed(self) -> int:
        """Cells suppressed below k."""
        return self.metadata.cells_suppressed

    def move(self) -> None:
        """Make the release visible: one rename of the whole folder (nothing if in place)."""
        if self.folder != self.final_dir:
            self.final_dir.parent.mkdir(parents=True, exist_ok=True)
            self.folder.replace(self.final_dir)
        checkpoints.reach("moved")


def write_aside(
    releases: Path,
    indicator: str,
    release_id: str,
    data: pl.DataFrame,
    metadata: ReleaseMetadata,
    margins: pl.DataFrame | None = None,
) -> StagedRelease:
    """Write data (and ``margins``, if any) and metadata into the temporary folder under
    ``releases``; hash everything.

    The caller destroys the folder (:func:`discard_aside`) if this raises.
    """
    tmp = tmp_dir(releases, release_id)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    table = data.to_arrow().cast(release_contract(indicator).schema)
    release_contract(indicator).validate(table, source=f"release {release_id}")
    pq.write_table(table, tmp / "data.parquet", compression="zstd")
    data.write_csv(tmp / "data.csv")
    names: tuple[str, ...] = DATA_FILES
    if margins is not None:
        margins.write_parquet(tmp / MARGIN_FILES[0], compression="zstd")
        margins.write_csv(tmp / MARGIN_FILES[1])
        names = (*DATA_FILES, *MARGIN_FILES)
    checkpoints.reach("data_written")
    hashes = {name: sha256_file(tmp / name) for name in names}
    described = metadata.with_files(hashes)
    jsonschema.validate(described.to_dict(), METADATA_JSON_SCHEMA)
    part = tmp / (METADATA_FILE + ".part")
    part.write_text(described.as_json())
    part.replace(tmp / METADATA_FILE)
    hashes[METADATA_FILE] = sha256_file(tmp / METADATA_FILE)
    return StagedRelease(tmp, releases / indicator / release_id, hashes, described)


def discard_aside(releases: Path, release_id: str) -> None:
    """Destroy the temporary folder of ``release_id``; raise if any of it is left."""
    tmp = tmp_dir(releases, release_id)
    shutil.rmtree(tmp, ignore_errors=True)
    if tmp.exists():
        msg = (
            f"Could not remove {tmp}, which holds noisy values of a release that failed: its "
            "ledger charge is kept (pending). Remove the folder by hand, then run the same "
            "release again."
        )
        raise MobilityError(msg)


def recover(releases: Path, indicator: str, release_id: str) -> StagedRelease | None:
    """The complete files of ``release_id`` left by an interrupted run, in place or aside.

    Complete: ``metadata.json`` names this release and the data files have the hashes it
    lists. Returns None when there is nothing complete to finish with.
    """
    final = releases / indicator / release_id
    for folder in (final, tmp_dir(releases, release_id)):
        try:
            document = ReleaseMetadata.read(folder / METADATA_FILE)
            listed = dict(document.files)
            if document.release_id != release_id or set(listed) not in (
                set(DATA_FILES),
                {*DATA_FILES, *MARGIN_FILES},
            ):
                continue
            hashes = {name: sha256_file(folder / name) for name in listed}
        except (OSError, MetadataError):
            continue
        if hashes == listed:
            hashes[METADATA_FILE] = sha256_file(folder / METADATA_FILE)
            return StagedRelease(folder, final, hashes, document)
    return None


def clean_leftovers(releases: Path, *, paid: Collection[str]) -> list[Path]:
    """Destroy temporary folders whose release has no pending charge in ``paid``; return them.

    Such a folder can only come from a run of older code, or from hands outside the pipeline:
    its noise was never paid for, so it must not survive. Folders of pending charges are kept
    for the rerun of their question to finish.
    """
    removed = []
    for leftover in sorted(releases.glob(f"{TMP_PREFIX}*")):
        if leftover.name.removeprefix(TMP_PREFIX) not in paid:
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed
