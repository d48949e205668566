"""Who is calling and what their role may do: bearer tokens checked against the token store.

=========  =====================================================================
role       may
=========  =====================================================================
analyst    list indicators and releases, read release files, exports, charts
auditor    list indicators and releases, read release files, the privacy ledger
operator   everything above, and request a new release (``POST /v1/releases``)
=========  =====================================================================

**Agreements.** Once data-sharing agreements are registered in the workspace's ledger, every
analyst and operator token must be bound to at least one (``mobility token create --agreement
ID``; an unbound one gets 403), and sees only the releases made under its agreements; an operator
may request releases only under an agreement its token is bound to and that names its role (else
409, recorded as a refusal). Auditor tokens are bound to nothing and see every release: checking
all of them is their job, and they already read the whole ledger. Without agreements, every token
sees every release, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flows.api.tokens import ROLES, Role, TokenStore, covered, registered_agreements, token_id_of

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

Permission = Literal["read_releases", "export", "read_ledger", "request_release"]

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "analyst": frozenset({"read_releases", "export"}),
    "auditor": frozenset({"read_releases", "read_ledger"}),
    "operator": frozenset({"read_releases", "export", "read_ledger", "request_release"}),
}

_DOING: dict[Permission, str] = {
    "read_releases": "read releases",
    "export": "export data or draw charts",
    "read_ledger": "read the privacy ledger",
    "request_release": "request a new release",
}

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="mdp_<id>_<secret>",
    description="A token from `mobility token create --role ROLE --workspace DIR`.",
)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the token's public id and its role."""

    token_id: str
    role: Role
    agreements: tuple[str, ...] = ()
    sees_all: bool = True
    """Whether the caller sees every release (no agreement registered, or an auditor)."""


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def workspace_root(request: Request) -> Path:
    """The workspace the app serves."""
    root: Path = request.app.state.workspace_root
    return root


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller of ``request``; 401 when the token is missing, unknown or revoked."""
    if credentials is None:
        msg = (
            "Missing token: send the header 'Authorization: Bearer <token>'. An operator "
            "creates tokens with `mobility token create --role analyst --workspace DIR`."
        )
        raise _unauthorised(msg)
    request.state.token_id = token_id_of(credentials.credentials)
    record = TokenStore(workspace_root(request)).verify(credentials.credentials)
    if record is None:
        msg = "Invalid or revoked token; ask an operator for a new one (`mobility token create`)."
        raise _unauthorised(msg)
    request.state.role = record.role
    registered = registered_agreements(workspace_root(request))
    sees_all = not registered or record.role == "auditor"
    scope = covered(record, registered)
    if not sees_all and not scope:
        msg = (
            f"Token {record.token_id} is a recipient of no data-sharing agreement of this "
            f"workspace (agreements: {', '.join(sorted(registered))}; the token is bound to "
            f"{', '.join(record.agreements) or 'none'}): ask an operator for a token bound to "
            "yours (`mobility token create --role ROLE --agreement ID`)."
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=msg)
    request.state.agreement_scope = None if sees_all else scope
    return Caller(record.token_id, record.role, scope, sees_all)


def require(permission: Permission) -> Callable[[Caller], Caller]:
    """A dependency that lets through callers whose role has ``permission`` (else 403)."""

    def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if permission not in PERMISSIONS[caller.role]:
            allowed = [r for r in ROLES if permission in PERMISSIONS[r]]
            msg = (
                f"Role {caller.role!r} may not {_DOING[permission]}; roles that may: "
                f"{', '.join(allowed)}."
            )
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=msg)
        return caller

    return check
