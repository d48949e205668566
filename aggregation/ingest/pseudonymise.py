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
:class:`~aggregation.ingest.idtable.IdTable` keys each id when it first appears and keeps it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

import polars as pl

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from aggregation.ingest.drops import Feed
    from schemas.workspace import PseudonymisationSettings

NAMESPACE: dict[Feed, bytes] = {"cdr": b"cdr:", "gps": b"gps:"}
PSEUDONYM_CHARS = 32
MIN_SECRET_BYTES = 16
_KEY_ID_LABEL = b"mobility:key-id"
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_hex(32))'"


class SecretError(ConfigurationError):
    """The pseudonymisation secret is missing or unusable."""


class Secret:
    """The pseudonymisation key. Its ``repr`` and ``str`` never show it."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_SECRET_BYTES:
            msg = (
                f"The pseudonymisation secret is {len(key)} bytes long; use at least "
                f"{MIN_SECRET_BYTES} random bytes, e.g. {GENERATE_HINT}."
            )
            raise SecretError(msg)
        self._key = key

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    @property
    def key_id(self) -> str:
        """A public identifier of the key (an HMAC of a fixed label), to detect a changed key."""
        return hmac.new(self._key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def mac(self) -> hmac.HMAC:
        """A fresh HMAC-SHA256 keyed with the secret, to copy for each message."""
        return hmac.new(self._key, digestmod=hashlib.sha256)


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

    def pseudonyms(self, ids: pl.Series, feed: Feed) -> pl.DataFrame:
        """One row per distinct non-null id, in order of first appearance: ``id``, ``pseudonym``
        and ``shard`` (UInt16)."""
        distinct = ids.drop_nulls().unique(maintain_order=True)
        base = self._secret.mac()
        prefix = NAMESPACE[feed]
        out: list[str] = []
        append = out.append
        for raw in distinct.to_list():
            mac = base.copy()
            mac.update(prefix + raw.encode("utf-8"))
            append(mac.hexdigest()[:PSEUDONYM_CHARS])
        pseudonym = pl.Series("pseudonym", out, dtype=pl.String)
        return pl.DataFrame({"id": distinct, "pseudonym": pseudonym}).with_columns(
            (pl.col("pseudonym").str.slice(0, 8).str.to_integer(base=16) % self.shards)
            .cast(pl.UInt16)
            .alias("shard")
        )
