"""Which data-sharing agreement a release is made under (the plan's part of issue 20).

- A workspace with no agreement registered releases as before: the release names none, and its
  release key is what it always was.
- Once an agreement is registered, every release names one: the one asked for (``--agreement``,
  the API's ``agreement``), else ``[agreements] default`` of ``mobility.toml``; a release naming
  none then is bad usage (exit 2), and so is one naming an agreement never registered.
- The plan fills in the version in force (registered last), so the resolved question — and its
  release key — names the id and the version: the same question under two agreements is two
  releases, each charged to its own agreement; after an amendment, a question is asked anew
  under the new terms.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from aggregation.ledger import AgreementRecord
    from aggregation.release.context import ReleaseContext
    from schemas.release import ReleaseSpec


def default_agreement(ctx: ReleaseContext) -> str | None:
    """``[agreements] default`` of the workspace's ``mobility.toml``, if set."""
    value = ctx.workspace.config.agreements.get("default")
    if value is not None and not isinstance(value, str):
        msg = (
            f"{ctx.workspace.root / 'mobility.toml'}: [agreements] default must be an agreement "
            f"id (a string), not {value!r}."
        )
        raise ConfigurationError(msg)
    return value


def agreement_for(ctx: ReleaseContext, spec: ReleaseSpec) -> AgreementRecord | None:
    """The agreement version ``spec`` is made under (None when no agreement is registered)."""
    in_force = ctx.ledger.agreements_in_force()
    if not in_force and spec.agreement is None:
        return None
    wanted = spec.agreement or default_agreement(ctx)
    known = ", ".join(sorted(in_force)) or "none"
    if wanted is None:
        msg = (
            f"This workspace has data-sharing agreements ({known}): a release names the one it "
            'is made under. Give --agreement ID (API: "agreement"), or set [agreements] '
            f'default = "ID" in {ctx.workspace.root / "mobility.toml"}.'
        )
        raise ConfigurationError(msg)
    record = in_force.get(wanted)
    if record is None:
        msg = (
            f"No agreement {wanted!r} is registered in this workspace (registered: {known}). "
            "Register it with `mobility agreement add FILE`, or name another."
        )
        raise ConfigurationError(msg)
    return record


def resolve_agreement(ctx: ReleaseContext, spec: ReleaseSpec) -> ReleaseSpec:
    """``spec`` with its agreement id and the version in force filled in (unchanged when the
    workspace has no agreement)."""
    record = agreement_for(ctx, spec)
    if record is None:
        return spec
    return replace(spec, agreement=record.agreement_id, agreement_version=record.version)
