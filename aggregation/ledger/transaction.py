"""An open charge: the entry charged, and the one way to publish it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from schemas.errors import InternalError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aggregation.ledger.records import FileDigest, LedgerEntry


class _Publisher(Protocol):
    def __call__(
        self,
        entry: LedgerEntry,
        outputs: tuple[FileDigest, ...],
        cells_released: int,
        cells_suppressed: int,
    ) -> LedgerEntry: ...


class ChargeTransaction:
    """An open charge: the pending (resumed, or reused) entry, and the way to publish it.

    Obtained only from :meth:`~aggregation.ledger.Ledger.charge`; see :mod:`aggregation.ledger`
    for the protocol. ``reused``: the question was answered already (nothing to do).
    ``resumed``: an earlier run of the same question was charged and interrupted; this run
    finishes it under the same charge.
    """

    def __init__(
        self,
        publish: _Publisher,
        entry: LedgerEntry,
        *,
        reused: bool = False,
        resumed: bool = False,
    ) -> None:
        self._publish = publish
        self.entry = entry
        self.reused = reused
        self.resumed = resumed
        self.committed = False
        """True once :meth:`publish` has passed the point of no return (no rollback after)."""
        self.published = False
        self._noise_at_risk = False

    def noise_at_risk(self) -> None:
        """Say that noisy values may now be on disk: the charge must not be rolled back until
        :meth:`noise_destroyed` says they are gone (noise on disk is always paid for)."""
        self._noise_at_risk = True

    def noise_destroyed(self) -> None:
        """Say that every noisy byte written for this charge is gone from the disk."""
        self._noise_at_risk = False

    @property
    def may_roll_back(self) -> bool:
        """Whether the charge can be released: a new charge, not published, no noise on disk."""
        return not (self.committed or self.resumed or self.reused or self._noise_at_risk)

    def publish(
        self,
        *,
        outputs: Sequence[FileDigest],
        cells_released: int,
        cells_suppressed: int,
        move: Callable[[], None] | None = None,
    ) -> LedgerEntry:
        """Pass the point of no return, run ``move`` (make the files visible), then append the
        publication record with the outputs' hashes. Returns the published entry."""
        if self.reused:
            msg = "A reused release is already published; reuse its stored files instead."
            raise InternalError(msg)
        if self.committed:
            msg = f"Entry {self.entry.entry_id} is already being published."
            raise InternalError(msg)
        if cells_released < 0 or cells_suppressed < 0:
            msg = (
                "Cell counts must be non-negative; got "
                f"cells_released={cells_released}, cells_suppressed={cells_suppressed}."
            )
            raise ValueError(msg)
        self.committed = True
        if move is not None:
            move()
        self.entry = self._publish(self.entry, tuple(outputs), cells_released, cells_suppressed)
        self.published = True
        return self.entry
