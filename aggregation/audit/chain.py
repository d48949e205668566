"""The hash chain: every record's hash covers its content and its predecessor's hash.

One chain runs over every record of the ledger, whatever its kind (charge, publication,
refusal, policy; see :mod:`aggregation.ledger.chain`). A record edited in place no longer
matches its hash; a record deleted, inserted or moved breaks the ``prev_hash`` link of the
record after it and the run of ``seq`` numbers. A forger who also recomputes every hash after
the change leaves a valid chain: that is caught by the other checks (costs recomputed with
OpenDP, the budget replay, published files) or, for a ledger rewritten or cut short wholesale,
by comparing its head with one recorded earlier (:func:`check_head`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aggregation.audit.findings import entry_label, fail, warn
from aggregation.ledger import GENESIS_HASH

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.audit.findings import Finding
    from aggregation.ledger import ChainLink, LedgerEntry

MIN_HEAD_PREFIX = 12
"""Shortest prefix of a recorded head hash that :func:`check_head` accepts."""

_HEX = re.compile(r"[0-9a-f]+")


def check_chain(links: Sequence[ChainLink], entries: Sequence[LedgerEntry] = ()) -> list[Finding]:
    """Findings about the chain of ``links`` (in ``seq`` order); empty when it is intact.

    ``entries`` are only used to report charges that were never published.
    """
    findings: list[Finding] = []
    expected_prev = GENESIS_HASH
    previous: ChainLink | None = None
    for position, link in enumerate(links, start=1):
        where = link.label
        if link.seq != position:
            findings.append(
                fail(
                    "chain",
                    where,
                    f"expected seq {position} here, found {link.seq}: records were deleted, "
                    "inserted or renumbered. Restore the ledger from a backup and find out who "
                    "changed it.",
                )
            )
        if link.prev_hash != expected_prev:
            after = "the genesis hash" if previous is None else f"seq {previous.seq}'s hash"
            findings.append(
                fail(
                    "chain",
                    where,
                    f"prev_hash {link.prev_hash[:16]}… does not match {after} "
                    f"({expected_prev[:16]}…): the record before it was deleted, inserted, "
                    "moved or rewritten.",
                )
            )
        if not link.intact:
            findings.append(
                fail(
                    "chain",
                    where,
                    f"its content hashes to {link.recomputed[:16]}…, not to its recorded hash "
                    f"{link.record_hash[:16]}…: the record was edited after it was written.",
                )
            )
        expected_prev = link.record_hash
        previous = link
    head_seq = links[-1].seq if links else 0
    findings.extend(
        warn(
            "chain",
            entry_label(entry),
            "charged but not published (its run was interrupted); the charge stays counted, "
            "which is safe. Run the same release again to finish it: it publishes the files "
            "already written, or draws again, under this charge.",
        )
        for entry in entries
        if entry.status == "pending" and entry.seq < head_seq
    )
    return findings


def check_head(links: Sequence[ChainLink], expected: str | None) -> list[Finding]:
    """Whether the ledger still holds the record whose hash an auditor noted earlier.

    A ledger cut short (its last records deleted, with their files) or rebuilt from scratch
    with recomputed hashes keeps a valid chain; only an anchor kept outside the workspace shows
    it. ``expected`` is the full hash or a prefix of at least :data:`MIN_HEAD_PREFIX` hex
    digits. Records are never updated, so any head noted — even while a release was pending —
    stays valid (unless that release failed and its charge was rolled back).
    """
    if expected is None:
        return []
    wanted = expected.strip().lower()
    if len(wanted) < MIN_HEAD_PREFIX or _HEX.fullmatch(wanted) is None:
        msg = (
            f"the recorded head {expected!r} is not a hash prefix: give at least "
            f"{MIN_HEAD_PREFIX} hex digits of a head hash printed by an earlier audit."
        )
        return [fail("head", "--expect-head", msg)]
    if any(link.record_hash.startswith(wanted) for link in links):
        return []
    msg = (
        f"no record has the hash {wanted[:16]}… noted earlier: records were deleted from the "
        "end of the ledger, or the ledger was rewritten, since that hash was noted."
    )
    return [fail("head", "--expect-head", msg)]
