"""Keyed pseudonyms: raw subscriber and device ids replaced by HMAC-SHA256 under a secret.

``pseudonym = hex(HMAC-SHA256(secret, namespace + raw_id))[:32]`` with namespace ``"cdr:"`` for
MSISDNs and ``"gps:"`` for device ids, and ``shard = int(pseudonym[:8], 16) % shards``. Phone
numbers have a small space, so an unkeyed hash could be reversed by enumeration; the key makes the
pseudonyms irreversible to anyone without the secret. The same secret must be used for every drop
of a workspace (staged data records its *key id*, an HMAC of a fixed label, to check that).

The secret is read from the environment variable named in the configuration (``secret_env``) or,
when that is unset or empty, from ``secret_file``; ingest refuses to run without one. It is held
by :class:`Secret`, whose ``repr`` hides it, and is never logged, written or put in a message.
HMACs are computed once per distinct id of a file, not once per row: the file's
:class:`~aggregation.ingest.idtable.IdTable` keys each id when it first appears and keeps it, a
batch at a time with the compiled HMAC of :mod:`~aggregation.ingest.hmac_sha256`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from numpy.typing import NDArray

    from aggregation.ingest.drops import Feed
    from aggregation.ingest.hmac_sha256 import KeyedState
    from schemas.workspace import PseudonymisationSettings

NAMESPACE: dict[Feed, bytes] = {"cdr": b"cdr:", "gps": b"gps:"}
PSEUDONYM_CHARS = 32
PSEUDONYM_BYTES = PSEUDONYM_CHARS // 2
"""The HMAC's bytes a pseudonym shows (as hex): the first 16 of 32."""
MIN_SECRET_BYTES = 16
_KEY_ID_LABEL = b"mobility:key-id"
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_hex(32))'"


class SecretError(ConfigurationError):
    """The pseudonymisation secret is missing or unusable."""


class Secret:
    """The pseudonymisation key. Its ``repr`` and ``str`` never show it."""

    __slots__ = ("_key", "_state")

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_SECRET_BYTES:
            msg = (
                f"The pseudonymisation secret is {len(key)} bytes long; use at least "
                f"{MIN_SECRET_BYTES} random bytes, e.g. {GENERATE_HINT}."
            )
            raise SecretError(msg)
        self._key = key
        self._state: KeyedState | None = None

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    @property
    def key_id(self) -> str:
        """A public identifier of the key (an HMAC of a fixed label), to detect a changed key."""
        return hmac.new(self._key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def mac(self) -> hmac.HMAC:
        """A fresh HMAC-SHA256 keyed with the secret."""
        return hmac.new(self._key, digestmod=hashlib.sha256)

    def keyed(self) -> KeyedState:
        """The key made ready for HMAC-SHA256 of many messages (computed once)."""
        if self._state is None:
            # numba compiles on import (~1 s): only ingest pays for it, not a release reading
            # the secret for its bounding key.
            from aggregation.ingest.hmac_sha256 import KeyedState  # noqa: PLC0415

            self._state = KeyedState.of(self._key)
        return self._state


def load_secret(
    settings: PseudonymisationSettings, root: Path, environ: Mapping[str, str]
) -> Secret:
    """The secret from ``environ[settings.secret_env]``, or else from ``settings.secret_file``."""
    value = environ.get(settings.secret_env, "")
    if value:
        return Secret(value.encode("utf-8"))
    if settings.secret_file is not None:
        path = (
            settings.secret_file
            if settings.secret_file.is_absolute()
            else root / settings.secret_file
        )
        try:
            key = path.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            msg = (
                f"Cannot read the pseudonymisation secret file {path} ({exc.strerror}); fix "
                f"[pseudonymisation] secret_file in mobility.toml or set {settings.secret_env}."
            )
            raise SecretError(msg) from exc
        return Secret(key)
    msg = (
        "No pseudonymisation secret: ingest refuses to run without one. Set the environment "
        f"variable {settings.secret_env} to a long random value (e.g. export "
        f"{settings.secret_env}=$({GENERATE_HINT})), or name a secret file in mobility.toml "
        "([pseudonymisation] secret_file). Use the same secret for every ingest of a workspace."
    )
    raise SecretError(msg)


class Pseudonymiser:
    """Maps raw ids to keyed pseudonyms and shards."""

    def __init__(self, secret: Secret, shards: int) -> None:
        self._secret = secret
        self.shards = shards

    def __repr__(self) -> str:
        return f"Pseudonymiser(shards={self.shards})"

    @property
    def key_id(self) -> str:
        """Public identifier of the key in use."""
        return self._secret.key_id

    def keys(
        self, data: NDArray[np.uint8], offsets: NDArray[np.int64], feed: Feed
    ) -> tuple[NDArray[np.uint8], NDArray[np.uint16]]:
        """Pseudonym (one row of :data:`PSEUDONYM_CHARS` ASCII bytes) and shard of each raw id
        ``data[offsets[i] : offsets[i + 1]]`` (UTF-8)."""
        from aggregation.ingest.hmac_sha256 import hex_of  # noqa: PLC0415 - see Secret.keyed

        digests = self.digests(data, offsets, feed)
        return hex_of(digests), self.shards_of(digests)

    def digests(
        self, data: NDArray[np.uint8], offsets: NDArray[np.int64], feed: Feed
    ) -> NDArray[np.uint8]:
        """The :data:`PSEUDONYM_BYTES` bytes each raw id's pseudonym shows in hex (one row each):
        half the memory of the hex, which
        :func:`~aggregation.ingest.hmac_sha256.hex_of` gives back."""
        return self._secret.keyed().digests(NAMESPACE[feed], data, offsets, PSEUDONYM_BYTES)

    def shards_of(self, digests: NDArray[np.uint8]) -> NDArray[np.uint16]:
        """The shard of each pseudonym given as :meth:`digests`: its first 4 bytes (8 hex
        digits) as a big-endian number, modulo the shards."""
        head = np.ascontiguousarray(digests[:, :4]).view(">u4")[:, 0]
        return (head % np.uint32(self.shards)).astype(np.uint16)


@dataclass(frozen=True, slots=True)
class Utf8:
    """The UTF-8 bytes of a string series and where each one starts (Arrow's layout)."""

    data: NDArray[np.uint8]
    offsets: NDArray[np.int64]

    @classmethod
    def of(cls, strings: pl.Series) -> Utf8:
        array = strings.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(pa.large_string())
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        ends = np.frombuffer(array.buffers()[1], np.int64)
        offsets = ends[array.offset : array.offset + len(array) + 1]
        data = array.buffers()[2]
        return cls(
            np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8), offsets
        )
