"""Canonical JSON and SHA-256: the bytes every hash of the ledger is computed over."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record of a ledger."""


@runtime_checkable
class JsonValue(Protocol):
    """A value object that knows its canonical JSON form (e.g. an output file)."""

    def as_json(self) -> dict[str, object]:
        """The object as plain JSON values."""
        ...


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            msg = f"Timestamps in the ledger must be timezone-aware; got {value!r}."
            raise ValueError(msg)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, MappingProxyType):
        return dict(value)
    if isinstance(value, JsonValue):
        return value.as_json()
    msg = f"Cannot write {value!r} ({type(value).__name__}) into the ledger's canonical JSON."
    raise TypeError(msg)


def canonical_json(value: object) -> bytes:
    """The canonical JSON bytes of ``value``, as every ledger hash is computed.

    UTF-8; object keys sorted; no whitespace (separators ``,`` and ``:``); non-ASCII kept as is;
    integers as digits, floats as Python's shortest round-trip ``repr`` (``1.0``, ``1e-06``);
    NaN and infinities rejected; ``None`` as ``null``; tuples as arrays; dates as ``YYYY-MM-DD``;
    timestamps in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``; files as
    ``{"path": …, "sha256": …}``.
    """
    text = json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data``, 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()
