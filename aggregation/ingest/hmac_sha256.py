"""HMAC-SHA256 (RFC 2104, FIPS 180-4) of many short messages at once, compiled with numba.

Python's :mod:`hmac` costs about a microsecond and a half per message in interpreter overhead,
which is most of keying a file's distinct ids (50 M of them in a billion-row export). Here one
compiled call keys a whole batch, without the GIL. The result is byte for byte that of
:func:`hmac.new` with :func:`hashlib.sha256` (tests check it on random keys and messages).

The key is taken in once (:class:`KeyedState`): SHA-256 compresses the padded key XOR ipad and
XOR opad into two 8-word states; every message then costs its own blocks plus one outer block.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

BLOCK = 64
DIGEST = 32
_M32 = np.uint64(0xFFFFFFFF)
_K = np.array(
    [
        0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
        0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
        0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
        0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
        0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
        0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
        0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
        0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
        0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
        0xC67178F2,
    ],
    dtype=np.uint64,
)  # fmt: skip
"""Round constants: the first 32 bits of the fractional parts of the cube roots of the first
64 primes."""
_H0 = np.array(
    [
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
        0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
    ],
    dtype=np.uint64,
)  # fmt: skip
"""Initial state: the first 32 bits of the fractional parts of the square roots of the first 8
primes."""
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_PAIRS = (
    np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 0x0F]], axis=1)
    .view(np.uint16)
    .reshape(256)
)
"""The two hex digits of each byte value, as one 2-byte item (one gather per byte, 4 times
faster than gathering the two digits as a row)."""


@numba.njit(nogil=True, cache=True, inline="always")
def _rotr(x: np.uint64, n: int) -> np.uint64:
    """``x`` (32 bits, held in 64) rotated right by ``n``."""
    return ((x >> np.uint64(n)) | (x << np.uint64(32 - n))) & _M32


@numba.njit(nogil=True, cache=True)
def _compress(
    state: NDArray[np.uint64], buf: NDArray[np.uint8], at: int, w: NDArray[np.uint64]
) -> None:
    """SHA-256's compression of the block ``buf[at : at + 64]`` into ``state`` (scratch ``w``)."""
    for t in range(16):
        j = at + 4 * t
        w[t] = (
            (np.uint64(buf[j]) << np.uint64(24))
            | (np.uint64(buf[j + 1]) << np.uint64(16))
            | (np.uint64(buf[j + 2]) << np.uint64(8))
            | np.uint64(buf[j + 3])
        )
    for t in range(16, 64):
        x, y = w[t - 15], w[t - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> np.uint64(3))
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> np.uint64(10))
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & _M32
    a, b, c, d = state[0], state[1], state[2], state[3]
    e, f, g, h = state[4], state[5], state[6], state[7]
    for t in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        choose = (e & f) ^ ((e ^ _M32) & g)
        t1 = (h + s1 + choose + _K[t] + w[t]) & _M32
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        majority = (a & b) ^ (a & c) ^ (b & c)
        t2 = (s0 + majority) & _M32
        h, g, f, e = g, f, e, (d + t1) & _M32
        d, c, b, a = c, b, a, (t1 + t2) & _M32
    for i, v in enumerate((a, b, c, d, e, f, g, h)):
        state[i] = (state[i] + v) & _M32


@numba.njit(nogil=True, cache=True)
def _pad(buf: NDArray[np.uint8], n: int, prior: int) -> int:
    """Pad the ``n`` message bytes at the start of ``buf`` (after ``prior`` bytes already
    compressed) as SHA-256 does: 0x80, zeros, the bit length big-endian. Returns the blocks."""
    blocks = (n + 9 + BLOCK - 1) // BLOCK
    buf[n] = 0x80
    for j in range(n + 1, blocks * BLOCK - 8):
        buf[j] = 0
    bits = (prior + n) * 8
    for j in range(8):
        buf[blocks * BLOCK - 1 - j] = (bits >> (8 * j)) & 0xFF
    return blocks


@numba.njit(nogil=True, cache=True)
def _digest_words(state: NDArray[np.uint64], buf: NDArray[np.uint8]) -> None:
    """The state as 32 bytes big-endian at the start of ``buf``."""
    for i in range(8):
        for j in range(4):
            buf[4 * i + j] = (state[i] >> np.uint64(24 - 8 * j)) & np.uint64(0xFF)


@numba.njit(nogil=True, cache=True)
def _hmac(
    inner: NDArray[np.uint64],
    outer: NDArray[np.uint64],
    prefix: NDArray[np.uint8],
    data: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    out: NDArray[np.uint8],
) -> None:
    """``out[i]`` = the first ``out.shape[1]`` bytes of HMAC(prefix + message ``i``)."""
    longest = 0
    for i in range(len(offsets) - 1):
        longest = max(longest, offsets[i + 1] - offsets[i])
    buf = np.empty(len(prefix) + longest + 2 * BLOCK, dtype=np.uint8)
    w = np.empty(64, dtype=np.uint64)
    state = np.empty(8, dtype=np.uint64)
    for i in range(len(offsets) - 1):
        a, n = offsets[i], offsets[i + 1] - offsets[i]
        buf[: len(prefix)] = prefix
        buf[len(prefix) : len(prefix) + n] = data[a : a + n]
        state[:] = inner
        for k in range(_pad(buf, len(prefix) + n, BLOCK)):
            _compress(state, buf, k * BLOCK, w)
        _digest_words(state, buf)
        state[:] = outer
        _pad(buf, DIGEST, BLOCK)
        _compress(state, buf, 0, w)
        _digest_words(state, buf)
        out[i, :] = buf[: out.shape[1]]


@numba.njit(nogil=True, cache=True)
def take_hex(digests: NDArray[np.uint8], at: NDArray[np.int64], out: NDArray[np.uint16]) -> None:
    """``out[i]`` = the bytes ``digests[at[i]]`` in hex, two digits a 2-byte item: one compiled
    pass, as fast as gathering the hex itself (numpy's gather, then hex, is 2-4 times slower)."""
    for i in range(len(at)):
        p = at[i]
        for j in range(digests.shape[1]):
            out[i, j] = _HEX_PAIRS[digests[p, j]]


def hex_of(digests: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Each row of bytes as lower-case hex: one row of ASCII bytes, twice as long."""
    return _HEX_PAIRS[digests].view(np.uint8).reshape(len(digests), 2 * digests.shape[1])


@dataclass(frozen=True, slots=True, repr=False)
class KeyedState:
    """SHA-256 states after the key's inner and outer pads: the key, ready for many messages.

    They stand for the key (whoever has them can compute the HMACs); keep them like the key.
    """

    inner: NDArray[np.uint64]
    outer: NDArray[np.uint64]

    @classmethod
    def of(cls, key: bytes) -> KeyedState:
        """The states of ``key`` (a key longer than a block is hashed first, as HMAC does)."""
        block = hashlib.sha256(key).digest() if len(key) > BLOCK else key
        padded = np.zeros(BLOCK, dtype=np.uint8)
        padded[: len(block)] = np.frombuffer(block, dtype=np.uint8)
        w = np.empty(64, dtype=np.uint64)
        states = []
        for pad in (0x36, 0x5C):
            state = _H0.copy()
            _compress(state, padded ^ np.uint8(pad), 0, w)
            states.append(state)
        return cls(*states)

    def __repr__(self) -> str:
        return "KeyedState(<redacted>)"

    def digests(
        self, prefix: bytes, data: NDArray[np.uint8], offsets: NDArray[np.int64], size: int
    ) -> NDArray[np.uint8]:
        """The first ``size`` bytes of HMAC-SHA256(key, prefix + message) for each message
        ``data[offsets[i] : offsets[i + 1]]``: one row of bytes per message."""
        if not 0 < size <= DIGEST:
            msg = f"size must be between 1 and {DIGEST}, not {size}"
            raise ValueError(msg)
        out = np.empty((len(offsets) - 1, size), dtype=np.uint8)
        _hmac(self.inner, self.outer, np.frombuffer(prefix, dtype=np.uint8), data, offsets, out)
        return out

    def hex_digests(
        self, prefix: bytes, data: NDArray[np.uint8], offsets: NDArray[np.int64], chars: int
    ) -> NDArray[np.uint8]:
        """The first ``chars`` hex digits of HMAC-SHA256(key, prefix + message) for each message
        ``data[offsets[i] : offsets[i + 1]]``: one row of ASCII bytes per message."""
        if chars % 2 or not 0 < chars <= 2 * DIGEST:
            msg = f"chars must be even and at most {2 * DIGEST}, not {chars}"
            raise ValueError(msg)
        return hex_of(self.digests(prefix, data, offsets, chars // 2))
