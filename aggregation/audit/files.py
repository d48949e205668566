"""Published files: each one the ledger lists must exist with the SHA-256 it recorded, say what
the ledger charged, and nothing may be published without a ledger entry.

Paths in the ledger are relative to the workspace root, so a copy of the workspace verifies the
same way as the original. Release directories are listed *before* the ledger is read: a release
is appended to the ledger before its directory appears, so a directory seen first always has its
entry in the snapshot read after, even while a flow is publishing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import opendp.prelude as dp
import polars as pl

from aggregation.audit.costs import RELATIVE_TOLERANCE, totals_noise
from aggregation.audit.findings import entry_label, fail, warn
from aggregation.ledger import files_digest
from aggregation.mechanisms import CONFIDENCE, ci_half_width
from aggregation.release.publish import METADATA_FILE, TMP_PREFIX, sha256_file
from aggregation.release.suppress import publication_threshold
from schemas.privacy import MECHANISMS
from schemas.release_metadata import MetadataError, ReleaseMetadata

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from aggregation.audit.findings import Finding
    from aggregation.ledger import LedgerEntry

DATA_FILE = "data.parquet"


@dataclass(frozen=True, slots=True)
class ReleaseDirectory:
    """A directory ``releases/<indicator>/<release_id>/`` found on disk, and its file names."""

    indicator: str
    release_id: str
    relative: str
    files: frozenset[str]


def scan_release_dirs(root: Path) -> list[ReleaseDirectory]:
    """Every release directory under ``root/releases`` (unfinished ``.tmp-*`` ones ignored)."""
    found: list[ReleaseDirectory] = []
    releases = root / "releases"
    if not releases.is_dir():
        return found
    for indicator_dir in sorted(p for p in releases.iterdir() if p.is_dir()):
        if indicator_dir.name.startswith("."):
            continue
        for release_dir in sorted(p for p in indicator_dir.iterdir() if p.is_dir()):
            files = frozenset(p.name for p in release_dir.iterdir() if p.is_file())
            relative = release_dir.relative_to(root).as_posix()
            found.append(ReleaseDirectory(indicator_dir.name, release_dir.name, relative, files))
    return found


def resolve_output(root: Path, recorded: str) -> Path | None:
    """The file a recorded output path names under ``root``; None if it leaves the workspace."""
    path = PurePosixPath(recorded)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return root.joinpath(*path.parts)


def _check_outputs(root: Path, entry: LedgerEntry) -> tuple[list[Finding], dict[str, Path]]:
    """Hash every output of a published entry; returns findings and the files that match."""
    findings: list[Finding] = []
    good: dict[str, Path] = {}
    if not entry.outputs:
        text = "published with no output files recorded: nothing can be checked against it."
        return [fail("files", entry_label(entry), text)], good
    expected_dir = f"releases/{entry.indicator}/{entry.entry_id}"
    for output in entry.outputs:
        path = resolve_output(root, output.path)
        if path is None:
            text = f"records the output path {output.path!r}, which leaves the workspace."
            findings.append(fail("files", entry_label(entry), text))
            continue
        if not path.is_file():
            text = (
                "this published file is missing: it was moved or deleted. Restore it from a "
                f"backup; the ledger ({entry_label(entry)}) records SHA-256 {output.sha256}."
            )
            findings.append(fail("files", output.path, text))
            continue
        digest = sha256_file(path)
        if digest != output.sha256:
            text = (
                f"SHA-256 {digest} differs from {output.sha256} recorded by {entry_label(entry)}: "
                "the file was changed after it was published. Restore the original from a "
                "backup; a corrected release must be a new release, paid for."
            )
            findings.append(fail("files", output.path, text))
            continue
        if PurePosixPath(output.path).parent.as_posix() != expected_dir:
            text = f"published outside its release directory {expected_dir}/."
            findings.append(warn("files", output.path, text))
        good[PurePosixPath(output.path).name] = path
    return findings, good


def _metadata_mismatches(entry: LedgerEntry, meta: ReleaseMetadata) -> list[str]:
    """What ``metadata.json`` states differently from the ledger entry."""
    outputs = {PurePosixPath(o.path).name: o.sha256 for o in entry.outputs}
    files, sens = meta.files, meta.sensitivity
    expected: dict[str, tuple[object, object]] = {
        "ledger_entry_id": (meta.ledger_entry_id, entry.entry_id),
        "indicator": (str(meta.indicator), entry.indicator),
        "mechanism": (meta.mechanism, entry.mechanism),
        "epsilon": (meta.epsilon, entry.epsilon),
        "delta": (meta.delta, entry.delta),
        "rho": (meta.rho, entry.rho),
        "scale": (meta.scale, entry.scale),
        "sensitivity": ([sens.l1, sens.l2, sens.linf], [entry.l1, entry.l2, entry.linf]),
        "k": (meta.k, entry.k_threshold),
        "cells_released": (meta.cells_released, entry.cells_released),
        "cells_suppressed": (meta.cells_suppressed, entry.cells_suppressed),
        "scope.windows_charged": (
            [str(d) for d in meta.scope.windows_charged],
            [str(d) for d in entry.windows],
        ),
        "privacy_unit": (str(meta.privacy_unit), entry.privacy_unit),
    }
    problems = [
        f"{name} {stated!r} (ledger: {charged!r})"
        for name, (stated, charged) in expected.items()
        if not _same(stated, charged)
    ]
    for name, digest in files.items():
        if outputs.get(str(name)) != digest:
            problems.append(f"files.{name} {digest!r} (ledger: {outputs.get(str(name))!r})")
    return problems + _totals_mismatches(entry, meta)


def _totals_mismatches(entry: LedgerEntry, meta: ReleaseMetadata) -> list[str]:
    """What ``metadata.totals`` states differently from the DP totals the ledger entry implies
    (:func:`aggregation.audit.costs.totals_noise`: its share of the charged ε, the sensitivity
    the cells' l1 gives): the charge alone is checked by the cost check, so totals drawn at
    another scale than the one paid for are found here."""
    try:
        rebuilt = totals_noise(entry)
    except (ValueError, dp.OpenDPException) as err:
        return [f"totals cannot be rebuilt from the ledger entry ({err})"]
    stated = meta.totals
    if rebuilt is None:
        if stated is None:
            return []
        return [f"totals {stated.to_dict()!r} (ledger: no DP totals charged)"]
    if stated is None:
        return [f"totals None (ledger: totals_share {entry.parameters['totals_share']!r})"]
    sens, s = stated.sensitivity, rebuilt.sensitivity
    expected: dict[str, tuple[object, object]] = {
        "share": (stated.share, entry.parameters["totals_share"]),
        "mechanism": (stated.mechanism, rebuilt.mechanism),
        "scale": (stated.scale, rebuilt.scale),
        "epsilon": (stated.epsilon, rebuilt.cost.epsilon),
        "ci95_half_width": (stated.ci95_half_width, rebuilt.ci_half_width),
        "sensitivity": ([sens.l1, sens.l2, sens.linf], [s.l1, s.l2, s.linf]),
    }
    return [
        f"totals.{name} {value!r} (ledger implies: {implied!r})"
        for name, (value, implied) in expected.items()
        if not _close(value, implied)
    ]


def _close(stated: object, implied: object) -> bool:
    """:func:`_agrees` within the cost check's float tolerance: a rebuilt ε or scale may differ
    from the release's own by a float rounding of its ε split."""
    return _agrees(stated, implied, RELATIVE_TOLERANCE)


def _same(stated: object, charged: object) -> bool:
    """:func:`_agrees` up to float printing: what the ledger recorded, the metadata copies."""
    return _agrees(stated, charged, 1e-12)


def _agrees(stated: object, other: object, rel_tol: float) -> bool:
    """Equal, numbers within ``rel_tol`` of each other (relative), lists item by item."""
    if isinstance(stated, list) and isinstance(other, list):
        return len(stated) == len(other) and all(
            _agrees(s, o, rel_tol) for s, o in zip(stated, other, strict=True)
        )
    numbers = (int, float)
    if isinstance(stated, numbers) and isinstance(other, numbers):
        return math.isclose(float(stated), float(other), rel_tol=rel_tol, abs_tol=0.0)
    return stated == other


def _check_contents(entry: LedgerEntry, good: Mapping[str, Path]) -> list[Finding]:
    """metadata.json agrees with the ledger; data.parquet has the recorded cells, none below k."""
    findings: list[Finding] = []
    if METADATA_FILE in good:
        try:
            meta = ReleaseMetadata.read(good[METADATA_FILE])
        except MetadataError as err:
            problems = [f"unreadable metadata ({err})"]
        else:
            problems = _metadata_mismatches(entry, meta)
        if problems:
            text = (
                f"states {'; '.join(problems)}: the release describes itself differently from "
                "what was charged."
            )
            findings.append(fail("metadata", f"{entry_label(entry)} metadata.json", text))
    if DATA_FILE in good:
        values = pl.read_parquet(good[DATA_FILE], columns=["value"])["value"]
        where = f"{entry_label(entry)} {DATA_FILE}"
        if entry.cells_released is not None and values.len() != entry.cells_released:
            text = f"holds {values.len()} cells, the ledger records {entry.cells_released}."
            findings.append(fail("metadata", where, text))
        k = entry.k_threshold
        low = values.filter(values < k).len() if k is not None else 0
        if low:
            text = (
                f"{low} released value(s) are below k={k}: the threshold on noisy values was not "
                "applied to them."
            )
            findings.append(fail("metadata", where, text))
        bar = _publication_threshold(entry)
        unreliable = values.filter(values < bar).len() if bar is not None else 0
        if unreliable and not low:
            text = (
                f"{unreliable} released value(s) are below the publication threshold {bar} "
                f"(k={k}, reliability {entry.parameters.get('reliability')} × ci95 of the "
                "charged scale): the reliability bar was not applied to them."
            )
            findings.append(fail("metadata", where, text))
    return findings


def _publication_threshold(entry: LedgerEntry) -> int | None:
    """``max(k, ⌈reliability × ci95⌉)`` from the entry's parameters and charged scale (None for
    a release without a reliability bar, or whose mechanism this code does not know)."""
    reliability = entry.parameters.get("reliability")
    if not isinstance(reliability, int | float) or not reliability or entry.k_threshold is None:
        return None
    if entry.mechanism not in MECHANISMS:
        return None
    confidence = entry.parameters.get("confidence", CONFIDENCE)
    if not isinstance(confidence, int | float):
        return None
    ci95 = ci_half_width(entry.mechanism, entry.scale, float(confidence))
    return publication_threshold(entry.k_threshold, float(reliability), ci95)


def _check_directories(
    dirs: Sequence[ReleaseDirectory], entries: Sequence[LedgerEntry]
) -> list[Finding]:
    by_id = {e.entry_id: e for e in entries}
    findings: list[Finding] = []
    for found in dirs:
        entry = by_id.get(found.release_id)
        if entry is None or entry.indicator != found.indicator:
            text = (
                "a release directory with no ledger entry: it was published without being "
                "charged, or its ledger entry was deleted. Withdraw it, or restore the ledger."
            )
            findings.append(fail("files", found.relative, text))
            continue
        if entry.status == "pending":
            text = (
                f"files of {entry_label(entry)}, which is still pending: its run is publishing "
                "now, or was interrupted after moving the files (they are not hash-recorded)."
            )
            findings.append(warn("files", found.relative, text))
            continue
        listed = {PurePosixPath(o.path).name for o in entry.outputs}
        extra = sorted(found.files - listed)
        if extra:
            text = (
                f"holds {extra}, which the ledger does not list: their content was never "
                "checked or paid for, and analysts would take them for part of the release. "
                "Remove them (or find out who put them there)."
            )
            findings.append(fail("files", found.relative, text))
    return findings


def check_leftovers(root: Path, entries: Sequence[LedgerEntry]) -> list[Finding]:
    """Temporary release folders (``releases/.tmp-<id>``): noisy values not published.

    A folder whose entry is pending was paid for: rerunning the same release finishes it (a
    warning). Any other holds noise no charge pays for (a failure): destroy it.
    """
    releases = root / "releases"
    if not releases.is_dir():
        return []
    pending = {e.entry_id: e for e in entries if e.status == "pending"}
    findings: list[Finding] = []
    for leftover in sorted(releases.glob(f"{TMP_PREFIX}*")):
        where = leftover.relative_to(root).as_posix()
        entry = pending.get(leftover.name.removeprefix(TMP_PREFIX))
        if entry is not None:
            text = (
                f"a temporary folder of {entry_label(entry)}, charged and interrupted before "
                "publication: run the same release again to finish it (no second charge)."
            )
            findings.append(warn("files", where, text))
        else:
            text = (
                "a temporary release folder with no pending charge: it may hold noisy values "
                "that no ledger entry pays for. Delete it; never publish from it."
            )
            findings.append(fail("files", where, text))
    return findings


def check_files(
    root: Path, entries: Sequence[LedgerEntry], dirs: Sequence[ReleaseDirectory]
) -> list[Finding]:
    """Findings about published files (hashes, self-descriptions, unpaid directories) and about
    the input files each entry lists (their digest must be its fingerprint)."""
    findings: list[Finding] = []
    for entry in entries:
        if files_digest(entry.inputs) != entry.input_fingerprint:
            text = (
                f"its input fingerprint {entry.input_fingerprint[:16]}… is not the digest of the "
                f"{len(entry.inputs)} input file(s) it lists: one of them was rewritten."
            )
            findings.append(fail("files", entry_label(entry), text))
        if entry.status != "published":
            continue
        problems, good = _check_outputs(root, entry)
        findings.extend(problems)
        findings.extend(_check_contents(entry, good))
    findings.extend(_check_directories(dirs, entries))
    return findings


def count_outputs(entries: Sequence[LedgerEntry]) -> int:
    """How many published files the ledger lists."""
    return sum(len(e.outputs) for e in entries if e.status == "published")
