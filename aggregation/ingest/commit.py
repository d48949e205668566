"""A drop's staged files swapped into the workspace, its manifest written last; the layout check.

A drop is complete exactly when its manifest ``staged/_drops/<drop>.json`` exists. The commit
(1) removes the manifest and the day-zone summaries of every day-shard the drop writes or wrote
(:mod:`aggregation.extract.day_zones`; they are made again from the new files when next read),
(2) moves each new partition file into place with ``os.replace``,
(3) deletes the drop's files that the new run no longer produces, (4) moves the quarantine file
into place, and (5) writes the manifest; a crash in between leaves the drop without a manifest,
and ingesting the file again completes it. ``staged/_layout.json`` records the shards, time zone
and key id every staged file of the workspace shares (:class:`Layout`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError
from schemas.staged import DAY_ZONES_DIR, DAY_ZONES_FILE, FIXES_DIR

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from schemas.workspace import Workspace

DROPS_DIR = "_drops"
LAYOUT_FILE = "_layout.json"
_EVENTS_FILE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/shard=(\d+)/[^/]+\.parquet$")


@dataclass(frozen=True, slots=True)
class Layout:
    """Settings every staged file of a workspace must share."""

    shards: int
    timezone: str
    key_id: str

    def check(self, workspace: Workspace) -> None:
        """Refuse to mix data staged under other settings; record them on the first ingest."""
        path = workspace.staged / LAYOUT_FILE
        if not path.exists():
            return
        recorded = json.loads(path.read_text(encoding="utf-8"))
        fixes = {
            "shards": "set [ingest] shards back to {old} in mobility.toml, or re-stage every drop",
            "timezone": 'set [workspace] timezone back to "{old}", or re-stage every drop',
            "key_id": (
                "the pseudonymisation secret differs from the one the staged data was written "
                "with (key id {old}); use that secret, or re-stage every drop"
            ),
        }
        for key, fix in fixes.items():
            old, new = recorded.get(key), getattr(self, key)
            if old != new:
                msg = (
                    f"{path}: staged data was written with {key} = {old!r}, this run has "
                    f"{new!r}; " + fix.format(old=old)
                )
                raise ConfigurationError(msg)

    def record(self, workspace: Workspace) -> None:
        """Write ``staged/_layout.json`` if it does not exist yet."""
        path = workspace.staged / LAYOUT_FILE
        if not path.exists():
            data = {"shards": self.shards, "timezone": self.timezone, "key_id": self.key_id}
            write_json_atomic(path, data)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON at ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def manifest_path(workspace: Workspace, drop_id: str) -> Path:
    """Where the manifest of a drop lives."""
    return workspace.staged / DROPS_DIR / f"{drop_id}.json"


def commit(
    workspace: Workspace,
    drop_id: str,
    scratch: Path,
    partitions: dict[str, int],
    quarantine: Path | None,
    manifest: dict[str, Any],
) -> None:
    """Swap the drop's new files (written under ``scratch``) into the workspace."""
    for rel in partitions:
        _fsync(scratch / rel)
    if quarantine is not None:
        _fsync(quarantine)
    manifest_file = manifest_path(workspace, drop_id)
    manifest_file.unlink(missing_ok=True)
    staged = workspace.staged
    old_events = [
        p.relative_to(staged).as_posix() for p in staged.glob(f"date=*/shard=*/{drop_id}.parquet")
    ]
    for day, shard in sorted(_day_shards([*partitions, *old_events])):
        # made again, from the new files, when next read (aggregation.extract.day_zones)
        summary = staged / DAY_ZONES_DIR / f"date={day.isoformat()}" / f"shard={shard:03d}"
        (summary / DAY_ZONES_FILE).unlink(missing_ok=True)
        _remove_empty_dirs(summary, stop=staged)
    for rel in partitions:
        target = staged / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        (scratch / rel).replace(target)
    old_files = [
        *staged.glob(f"date=*/shard=*/{drop_id}.parquet"),
        *staged.glob(f"{FIXES_DIR}/date=*/shard=*/{drop_id}.parquet"),
    ]
    for old in old_files:
        rel = old.relative_to(staged).as_posix()
        if rel not in partitions:
            old.unlink()
            _remove_empty_dirs(old.parent, stop=staged)
    quarantine_file = workspace.quarantine / f"{drop_id}.parquet"
    if quarantine is not None:
        workspace.quarantine.mkdir(parents=True, exist_ok=True)
        quarantine.replace(quarantine_file)
    else:
        quarantine_file.unlink(missing_ok=True)
    write_json_atomic(manifest_file, manifest)


def _day_shards(rels: Iterable[str]) -> set[tuple[dt.date, int]]:
    """The (day, shard) of each staged events file ``date=…/shard=…/<drop>.parquet`` of ``rels``
    (GPS fixes, under ``_fixes/``, are not events and have no summary)."""
    found: set[tuple[dt.date, int]] = set()
    for rel in rels:
        m = _EVENTS_FILE.match(rel)
        if m is not None:
            found.add((dt.date.fromisoformat(m.group(1)), int(m.group(2))))
    return found


def _remove_empty_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
