"""The hash chain: every entry's hash covers its content and its predecessor's hash.

An entry edited in place no longer matches its ``entry_hash``; an entry deleted, inserted or
moved breaks the ``prev_hash`` link of the entry after it and the run of ``seq`` numbers. A
forger who also recomputes every hash after the change leaves a valid chain: that is caught by
the other checks (costs recomputed with OpenDP, the budget replay, published files) or, for a
ledger rewritten or cut short wholesale, by comparing its head with one recorded earlier
(:func:`check_head`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aggregation.audit.findings import entry_label, fail, warn
from aggregation.ledger import GENESIS_HASH, compute_entry_hash

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.audit.findings import Finding
    from aggregation.ledger import LedgerEntry

MIN_HEAD_PREFIX = 12
"""Shortest prefix of a recorded head hash that :func:`check_head` accepts."""

_HEX = re.compile(r"[0-9a-f]+")


def check_chain(entries: Sequence[LedgerEntry]) -> list[Finding]:
    """Findings about the chain of ``entries`` (in ``seq`` order); empty when it is intact."""
    findings: list[Finding] = []
    expected_prev = GENESIS_HASH
    previous: LedgerEntry | None = None
    for position, entry in enumerate(entries, start=1):
        where = entry_label(entry)
        if entry.seq != position:
            findings.append(
                fail(
                    "chain",
                    where,
                    f"expected seq {position} here, found {entry.seq}: entries were deleted, "
                    "inserted or renumbered. Restore the ledger from a backup and find out who "
                    "changed it.",
                )
            )
        if entry.prev_hash != expected_prev:
            after = "the genesis hash" if previous is None else f"seq {previous.seq}'s entry_hash"
            findings.append(
                fail(
                    "chain",
                    where,
                    f"prev_hash {entry.prev_hash[:16]}… does not match {after} "
                    f"({expected_prev[:16]}…): the entry before it was deleted, inserted, moved "
                    "or rewritten.",
                )
            )
        recomputed = compute_entry_hash(entry)
        if recomputed != entry.entry_hash:
            findings.append(
                fail(
                    "chain",
                    where,
                    f"its content hashes to {recomputed[:16]}…, not to its recorded entry_hash "
                    f"{entry.entry_hash[:16]}…: the entry was edited after it was written.",
                )
            )
        if entry.status == "pending" and position < len(entries):
            findings.append(
                warn(
                    "chain",
                    where,
                    "charged but never marked published (its run was interrupted); the charge "
                    "stays counted, which is safe. Check whether its release directory exists.",
                )
            )
        expected_prev = entry.entry_hash
        previous = entry
    return findings


def check_head(entries: Sequence[LedgerEntry], expected: str | None) -> list[Finding]:
    """Whether the ledger still holds the entry whose hash an auditor recorded earlier.

    A ledger cut short (its last entries deleted, with their files) or rebuilt from scratch
    with recomputed hashes keeps a valid chain; only an anchor kept outside the workspace shows
    it. ``expected`` is the full ``entry_hash`` or a prefix of at least
    :data:`MIN_HEAD_PREFIX` hex digits.
    """
    if expected is None:
        return []
    wanted = expected.strip().lower()
    if len(wanted) < MIN_HEAD_PREFIX or _HEX.fullmatch(wanted) is None:
        msg = (
            f"the recorded head {expected!r} is not a hash prefix: give at least "
            f"{MIN_HEAD_PREFIX} hex digits of an entry_hash printed by an earlier audit."
        )
        return [fail("head", "--expect-head", msg)]
    if any(e.entry_hash.startswith(wanted) and e.status == "published" for e in entries):
        return []
    msg = (
        f"no published entry has the hash {wanted[:16]}… recorded earlier: entries were deleted "
        "from the end of the ledger, or the ledger was rewritten, since that hash was noted. (A "
        "hash noted while its entry was pending changes when it is published: note the head "
        "only when its status is published.)"
    )
    return [fail("head", "--expect-head", msg)]
