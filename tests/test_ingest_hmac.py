"""The compiled HMAC-SHA256 gives exactly what Python's hmac module gives."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.ingest.hmac_sha256 import KeyedState

# SHA-256 pads within a block up to 55 message bytes; 64 + n crosses block edges at these n.
EDGES = [0, 1, 55, 56, 63, 64, 119, 120, 127, 128]


def _digests(key: bytes, prefix: bytes, messages: list[bytes], chars: int = 64) -> list[str]:
    data = np.frombuffer(b"".join(messages), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(m) for m in messages])]).astype(np.int64)
    out = KeyedState.of(key).hex_digests(prefix, data, offsets, chars)
    return [bytes(row).decode() for row in out]


@settings(deadline=None)  # the first call compiles
@given(
    key=st.binary(max_size=150),  # keys longer than a block (64) are hashed first
    prefix=st.binary(max_size=8),
    messages=st.lists(st.binary(max_size=200), max_size=20),
)
def test_hmac_is_byte_for_byte_pythons(key: bytes, prefix: bytes, messages: list[bytes]) -> None:
    expected = [hmac.new(key, prefix + m, hashlib.sha256).hexdigest() for m in messages]
    assert _digests(key, prefix, messages) == expected


@pytest.mark.parametrize("n", EDGES)
def test_messages_at_block_edges(n: int) -> None:
    key = bytes(range(32))
    message = bytes(i % 251 for i in range(n))
    assert _digests(key, b"cdr:", [message], chars=32) == [
        hmac.new(key, b"cdr:" + message, hashlib.sha256).hexdigest()[:32]
    ]


def test_the_state_never_shows_and_chars_are_checked() -> None:
    state = KeyedState.of(b"k" * 32)
    assert repr(state) == "KeyedState(<redacted>)"
    with pytest.raises(ValueError, match="even"):
        state.hex_digests(b"", np.empty(0, np.uint8), np.zeros(1, np.int64), 31)
