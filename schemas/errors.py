"""The error classes every layer raises, and the exit status each one maps to on the CLI.

User mistakes and refusals carry a message that says what was wrong, where, and how to fix it; the
CLI prints that message without a traceback. :class:`InternalError` marks a bug in this project.
"""

from __future__ import annotations


class MobilityError(Exception):
    """A failure the user can act on. CLI exit status 1."""

    exit_code = 1


class ConfigurationError(MobilityError):
    """Bad usage, configuration or parameters. CLI exit status 2."""

    exit_code = 2


class BudgetExceededError(MobilityError):
    """A release was refused by the privacy budget; nothing was published. CLI exit status 3."""

    exit_code = 3


class AgreementRefusedError(BudgetExceededError):
    """A release was refused by its data-sharing agreement (a rule of it, named in the message);
    nothing was published. CLI exit status 3, HTTP 409, like a refusal by the budget."""


class InternalError(Exception):
    """An invariant of this code base does not hold: this is a bug, please report it."""


class PrivacyParameterError(ConfigurationError, ValueError):
    """An ε, δ, ρ (or another number of a privacy parameter: a share, a scale, a cap) out of its
    range: :mod:`schemas.privacy` raises it, and only it, wherever such a number is checked (a
    :class:`~schemas.privacy.PrivacyCost`, a mechanism's budget, the policy, a release's
    request). Bad parameters (CLI exit status 2) and a :class:`ValueError` for code that checks
    numbers."""
