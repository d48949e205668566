"""API tokens: created and revoked on the command line, stored hashed in the workspace.

A token reads ``mdp_<id>_<secret>``: ``<id>`` (12 hex digits) names it in logs and listings, and
``<secret>`` (43 URL-safe characters, 256 bits from :mod:`secrets`) is what makes it a credential.
Only the SHA-256 of the whole token is stored, in ``<workspace>/api/tokens.json`` (mode 0600), so
the file alone cannot be used to call the API; a lost token cannot be recovered, only replaced.
A high-entropy token needs no slow password hash: guessing 256 bits is hopeless either way.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from schemas.errors import ConfigurationError, MobilityError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from schemas.agreement import Agreement

Role = Literal["analyst", "auditor", "operator"]
ROLES: tuple[Role, ...] = ("analyst", "auditor", "operator")

API_DIR = "api"
TOKENS_FILE = "tokens.json"
PREFIX = "mdp"
_TOKEN = re.compile(r"^mdp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed token, or None."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the workspace keeps about one token (never the token itself)."""

    token_id: str
    role: Role
    sha256: str
    label: str
    created_at: str
    revoked_at: str | None = None
    agreements: tuple[str, ...] = ()
    """The data-sharing agreements the token is bound to: the releases made under them are all
    it sees, and it may request releases only under them (see :mod:`flows.api.security`)."""

    @property
    def active(self) -> bool:
        """Whether the token is still accepted."""
        return self.revoked_at is None

    def public(self) -> dict[str, object]:
        """The record without its hash (for listings)."""
        doc = asdict(self)
        del doc["sha256"]
        return doc


def registered_agreements(workspace_root: Path) -> dict[str, Agreement]:
    """Every agreement registered in the workspace's ledger: id → the version in force."""
    from aggregation.ledger.agreements import agreement_of  # noqa: PLC0415 - DuckDB is slow
    from aggregation.release import open_context  # noqa: PLC0415

    ledger = open_context(workspace_root, need_secret=False).ledger
    return {i: agreement_of(r) for i, r in ledger.agreements_in_force().items()}


def covered(record: TokenRecord, agreements: dict[str, Agreement]) -> tuple[str, ...]:
    """The agreements (version in force) whose recipients include the token ``record``: bound
    to it, its role among the agreement's roles, and its id among its tokens if it lists any."""
    return tuple(
        name
        for name in record.agreements
        if name in agreements
        and record.role in agreements[name].roles
        and (not agreements[name].tokens or record.token_id in agreements[name].tokens)
    )


def check_binding(workspace_root: Path, role: str, agreements: tuple[str, ...]) -> None:
    """Refuse (:class:`ConfigurationError`) a token bound to agreements that do not exist or
    do not name ``role``, or an unbound analyst/operator token once agreements are registered."""
    registered = registered_agreements(workspace_root)
    if not registered and not agreements:
        return
    unknown = [a for a in agreements if a not in registered]
    if unknown:
        msg = (
            f"No agreement {', '.join(unknown)} is registered (registered: "
            f"{', '.join(sorted(registered)) or 'none'}); see `mobility agreement list`."
        )
        raise ConfigurationError(msg)
    uncovered = [a for a in agreements if role not in registered[a].roles]
    if uncovered:
        msg = (
            f"Role {role} is not among the recipients of {', '.join(uncovered)}; bind the token "
            "to agreements that name its role, or amend the agreement."
        )
        raise ConfigurationError(msg)
    if not agreements and role != "auditor":
        msg = (
            f"This workspace has data-sharing agreements ({', '.join(sorted(registered))}): an "
            f"{role} token is bound to the agreements it receives releases under. Give "
            "--agreement ID (repeat it for several)."
        )
        raise ConfigurationError(msg)


class TokenStore:
    """The token file of one workspace. Writes are atomic and serialised with ``flock``."""

    def __init__(self, workspace_root: Path) -> None:
        self.path = workspace_root / API_DIR / TOKENS_FILE
        self.lock = self.path.with_name(TOKENS_FILE + ".lock")

    def records(self) -> list[TokenRecord]:
        """Every token ever created, active or revoked."""
        if not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text(encoding="utf-8"))["tokens"]
            return [
                TokenRecord(**{**row, "agreements": tuple(row.get("agreements", ()))})
                for row in rows
            ]
        except (ValueError, KeyError, TypeError) as exc:
            msg = f"{self.path} is not a valid token file ({exc}); restore it or remove it."
            raise MobilityError(msg) from exc

    def create(
        self, role: str, label: str = "", agreements: tuple[str, ...] = ()
    ) -> tuple[TokenRecord, str]:
        """A new token for ``role``, bound to ``agreements``; returns its record and the token
        (shown only once). Once agreements are registered, a token must be bound to at least one
        that names its role among its recipients (auditors excepted: they see every release)."""
        if role not in ROLES:
            msg = f"Unknown role {role!r}; choose one of {list(ROLES)}."
            raise ConfigurationError(msg)
        check_binding(self.path.parent.parent, role, agreements)
        token = f"{PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        token_id = token_id_of(token)
        if token_id is None:  # pragma: no cover - token_urlsafe(32) is always 43 characters
            msg = "generated token does not match its own format"
            raise MobilityError(msg)
        record = TokenRecord(
            token_id=token_id,
            role=role,
            sha256=_digest(token),
            label=label,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            agreements=tuple(dict.fromkeys(agreements)),
        )
        with self._locked():
            self._write([*self.records(), record])
        return record, token

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke the token ``token_id``; it is refused from the next request on."""
        with self._locked():
            records = self.records()
            for i, record in enumerate(records):
                if record.token_id == token_id:
                    if record.active:
                        now = datetime.now(UTC).isoformat(timespec="seconds")
                        records[i] = replace(record, revoked_at=now)
                        self._write(records)
                    return records[i]
        known = ", ".join(r.token_id for r in records) or "none"
        msg = f"No token {token_id!r} in {self.path} (tokens: {known}); see `mobility token list`."
        raise ConfigurationError(msg)

    def verify(self, token: str) -> TokenRecord | None:
        """The active record of ``token``, or None if it is unknown, malformed or revoked."""
        token_id = token_id_of(token)
        digest = _digest(token)
        for record in self.records():
            if record.token_id == token_id and hmac.compare_digest(record.sha256, digest):
                return record if record.active else None
        return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, records: list[TokenRecord]) -> None:
        tmp = self.path.with_name(f".{TOKENS_FILE}.tmp")
        text = json.dumps({"tokens": [asdict(r) for r in records]}, indent=2) + "\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        tmp.replace(self.path)
