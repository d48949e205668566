"""SHA-256 of the staged files a release reads, remembered while the files stay the same.

Every release records the content hash of every staged file it read (its input fingerprint), so
that an auditor's copy of the workspace gives the same fingerprint and a change of data shows.
Hashing is one read of the files: at a billion events a day (about 8.5 GB staged a day) a
home-based release reading a week would hash some 60 GB, a minute of CPU, every day, for files
that have not changed since they were staged.

So each digest is kept in ``staged/_digests.json`` with the file's identity when it was hashed:
size, modification time, inode change time and inode number, as ``git`` keeps its index. A file
re-staged (a new file renamed into place), rewritten in place, or restored with its old
modification time changes at least its inode change time, which no user can set; then it is
hashed again. A copy of the workspace has other inodes and times, so an auditor's copy is
hashed afresh. The cache is written atomically and is only an optimisation: if it cannot be read
or written (a read-only copy), files are hashed every time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregation.ledger import FileDigest
from aggregation.release.publish import sha256_file

if TYPE_CHECKING:
    from collections.abc import Sequence

CACHE_FILE = "_digests.json"


def _identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load(path: Path) -> dict[str, Any]:
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _save(path: Path, cache: dict[str, Any]) -> None:
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        part.write_text(json.dumps(cache, sort_keys=True), encoding="utf-8")
        part.replace(path)
    except OSError:  # a read-only copy: hash again next time
        part.unlink(missing_ok=True)


def staged_digests(staged: Path, files: Sequence[str]) -> tuple[FileDigest, ...]:
    """Each of ``files`` (paths under ``staged``) by its path relative to ``staged`` (POSIX) and
    the SHA-256 of its bytes, hashing only the files changed since they were last hashed."""
    cache_path = staged / CACHE_FILE
    cache = _load(cache_path)
    digests, changed = [], False
    for name in files:
        path = Path(name)
        rel = path.relative_to(staged).as_posix()
        identity = _identity(path)
        kept = cache.get(rel)
        if isinstance(kept, dict) and kept.get("identity") == identity:
            digest = str(kept["sha256"])
        else:
            digest = sha256_file(path)
            cache[rel] = {"identity": identity, "sha256": digest}
            changed = True
        digests.append(FileDigest(rel, digest))
    if changed:
        live = {rel: entry for rel, entry in cache.items() if (staged / rel).is_file()}
        _save(cache_path, live)
    return tuple(digests)
