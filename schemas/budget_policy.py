"""The privacy budget of a workspace: :class:`BudgetPolicy` and its ``[privacy]`` section.

What a workspace may spend (caps per accounting window and over rolling spans), the ε of each
indicator when a release does not ask for one, and the share of a release's ε spent on its DP
totals; parsed from ``mobility.toml`` with errors that name the key, the value and the rule.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from schemas.errors import ConfigurationError
from schemas.privacy import (
    ACCOUNTING_WINDOWS,
    COMPOSITIONS,
    MECHANISMS,
    UNSET_TOTALS_SHARE,
    AccountingWindow,
    Composition,
    Mechanism,
    check_budget,
    check_delta,
    release_parameter_problems,
    require_valid,
    totals_share_problems,
)

_Choice = TypeVar("_Choice", bound=str)


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """The privacy budget of a workspace: caps per accounting window and over rolling spans.

    A release is refused when it would push any window it reads over ``epsilon_per_window`` or
    ``delta_per_window``, or any span of ``rolling_days`` consecutive days that contains one of its
    windows over ``epsilon_rolling``. The rolling spend of a span is the sum, over the windows that
    start in the span, of what each window has spent (for zCDP: see :mod:`aggregation.budget`).
    Under group privacy a release reading m windows of a span is (m·ε, m·e^((m-1)·ε)·δ)-DP for
    the subscriber's data in the span; the sum of those δ over the span must stay within
    ``delta_rolling`` (default: ``rolling_days × delta_per_window``, which releases reading one
    window each can never exceed). ``default_epsilon`` gives the ε of each indicator when a
    release does not ask for one;
    ``default_delta`` is the δ given to a release that needs one (partition selection, or a
    discrete Gaussian stated as (ε, δ)-DP). ``totals_share`` is the share of a release's ε spent
    on its per-date totals as DP values of their own; it splits a release's ε and never changes
    what the release is charged. Unset, it is 0 (:data:`UNSET_TOTALS_SHARE`: a workspace made
    before the setting keeps its release keys); the template of new workspaces sets
    :data:`DEFAULT_TOTALS_SHARE`. ``totals_shares`` gives it per indicator instead (the table
    form ``[privacy.totals_share]``, as ``[privacy.epsilon]``); an indicator it does not name
    spends 0 on DP totals, and ``totals_share`` must then be left unset
    (:meth:`totals_share_for`).
    """

    composition: Composition = "basic"
    epsilon_per_window: float = 2.0
    delta_per_window: float = 1e-6
    rolling_days: int = 30
    epsilon_rolling: float = 20.0
    default_delta: float = 1e-7
    delta_rolling: float | None = None
    accounting_window: AccountingWindow = "day"
    mechanism: Mechanism = "discrete_laplace"
    default_epsilon: Mapping[str, float] = field(default_factory=dict, hash=False)
    totals_share: float = UNSET_TOTALS_SHARE
    totals_shares: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        require_valid(
            self.composition in COMPOSITIONS,
            f"composition must be one of {list(COMPOSITIONS)}; got {self.composition!r}.",
        )
        require_valid(
            self.accounting_window in ACCOUNTING_WINDOWS,
            f"accounting_window must be one of {list(ACCOUNTING_WINDOWS)}; "
            f"got {self.accounting_window!r}.",
        )
        require_valid(
            self.mechanism in MECHANISMS,
            f"mechanism must be one of {list(MECHANISMS)}; got {self.mechanism!r}.",
        )
        check_budget("epsilon_per_window", self.epsilon_per_window, positive=True)
        check_budget("epsilon_rolling", self.epsilon_rolling, positive=True)
        check_delta("delta_per_window", self.delta_per_window)
        check_delta("default_delta", self.default_delta)
        if self.delta_rolling is None:
            object.__setattr__(self, "delta_rolling", self.rolling_days * self.delta_per_window)
        else:
            check_delta("delta_rolling", self.delta_rolling)
        require_valid(
            isinstance(self.rolling_days, int)
            and not isinstance(self.rolling_days, bool)
            and self.rolling_days >= 1,
            f"rolling_days must be a whole number of days >= 1; got {self.rolling_days!r}.",
        )
        require_valid(
            self.default_delta <= self.delta_per_window,
            f"default_delta ({self.default_delta:g}) must not exceed delta_per_window "
            f"({self.delta_per_window:g}): a single release could never be charged.",
        )
        require_valid(
            self.composition != "zcdp" or self.delta_per_window > 0,
            "zcdp composition converts ρ to ε at the window's δ, so delta_per_window must be "
            f"positive; got {self.delta_per_window!r}.",
        )
        if self.default_delta > 0:
            problems = release_parameter_problems(delta=self.default_delta)
            require_valid(not problems, f"default_{'; '.join(problems)}.")
        for indicator, epsilon in self.default_epsilon.items():
            problems = release_parameter_problems(epsilon=epsilon)
            require_valid(not problems, f"epsilon.{indicator}: {'; '.join(problems)}.")
        object.__setattr__(self, "default_epsilon", MappingProxyType(dict(self.default_epsilon)))
        problems = totals_share_problems(self.totals_share)
        require_valid(not problems, f"{'; '.join(problems)}.")
        for indicator, share in self.totals_shares.items():
            problems = totals_share_problems(share)
            require_valid(not problems, f"totals_share.{indicator}: {'; '.join(problems)}.")
        require_valid(
            not self.totals_shares or self.totals_share == UNSET_TOTALS_SHARE,
            "totals_share is either one number for every indicator or a table of indicator = "
            f"share; got both ({self.totals_share!r} and {dict(self.totals_shares)!r}).",
        )
        object.__setattr__(self, "totals_shares", MappingProxyType(dict(self.totals_shares)))

    def totals_share_for(self, indicator: str) -> float:
        """The share of ε a release of ``indicator`` spends on DP totals when it does not ask:
        its entry in the table form, else the one number (0 for an indicator the table does
        not name)."""
        if self.totals_shares:
            return self.totals_shares.get(indicator, UNSET_TOTALS_SHARE)
        return self.totals_share

    def epsilon_for(self, indicator: str) -> float:
        """The configured ε of ``indicator``; :class:`ConfigurationError` if there is none."""
        try:
            return self.default_epsilon[indicator]
        except KeyError:
            configured = sorted(self.default_epsilon) or "none"
            msg = (
                f"No ε is configured for indicator {indicator!r} (configured: {configured}). "
                f"Add '{indicator} = <ε>' under [privacy.epsilon] in mobility.toml, or ask for "
                "an ε explicitly."
            )
            raise ConfigurationError(msg) from None

    def as_dict(self) -> dict[str, object]:
        """The policy as the ``[privacy]`` mapping it can be parsed from."""
        return {
            "composition": self.composition,
            "epsilon_per_window": self.epsilon_per_window,
            "delta_per_window": self.delta_per_window,
            "rolling_days": self.rolling_days,
            "epsilon_rolling": self.epsilon_rolling,
            "default_delta": self.default_delta,
            "delta_rolling": self.delta_rolling,
            "accounting_window": self.accounting_window,
            "mechanism": self.mechanism,
            "epsilon": dict(self.default_epsilon),
            "totals_share": dict(self.totals_shares) if self.totals_shares else self.totals_share,
        }

    @classmethod
    def from_mapping(
        cls,
        section: Mapping[str, object],
        *,
        indicators: Collection[str] | None = None,
        source: str = "mobility.toml",
    ) -> BudgetPolicy:
        """Parse the ``[privacy]`` section of ``mobility.toml`` (as loaded by :mod:`tomllib`).

        Missing keys take their defaults. Unknown keys, values of the wrong type or outside their
        range, and (when ``indicators`` is given) ε for unknown indicators raise
        :class:`ConfigurationError` naming the key, the value and the rule.
        """
        return _policy_from_mapping(section, indicators=indicators, source=source)


_POLICY_KEYS = (
    "composition",
    "epsilon_per_window",
    "delta_per_window",
    "rolling_days",
    "epsilon_rolling",
    "default_delta",
    "delta_rolling",
    "accounting_window",
    "mechanism",
    "epsilon",
    "totals_share",
)


class _Section:
    """Typed access to the keys of one configuration section, with errors that name the key."""

    def __init__(self, values: Mapping[str, object], source: str) -> None:
        self.values = values
        self.source = source

    def error(self, key: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{self.source}: [privacy] {key}: {problem}")

    def number(self, key: str, default: float) -> float:
        value = self.values.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(key, f"must be a number; got {value!r}.")
        return float(value)

    def whole(self, key: str, default: int) -> int:
        value = self.values.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"must be a whole number; got {value!r}.")
        return value

    def choice(self, key: str, allowed: tuple[_Choice, ...], default: _Choice) -> _Choice:
        value = self.values.get(key, default)
        for option in allowed:
            if value == option:
                return option
        raise self.error(key, f"must be one of {list(allowed)}; got {value!r}.")

    def shares(self, indicators: Collection[str] | None) -> tuple[float, dict[str, float]]:
        """``totals_share``: one number (for every indicator) or a table of indicator = share;
        returns (the number, the table): the number is unset when the table is given."""
        value = self.values.get("totals_share", UNSET_TOTALS_SHARE)
        if not isinstance(value, Mapping):
            return self.number("totals_share", UNSET_TOTALS_SHARE), {}
        shares: dict[str, float] = {}
        for name, share in value.items():
            key = f"totals_share.{name}"
            if indicators is not None and name not in indicators:
                known = sorted(indicators)
                raise self.error(key, f"unknown indicator {name!r}; known indicators: {known}.")
            problems = totals_share_problems(share)
            if problems:
                raise self.error(key, f"{'; '.join(problems)}.")
            shares[str(name)] = float(share)
        return UNSET_TOTALS_SHARE, shares

    def epsilons(self, indicators: Collection[str] | None) -> dict[str, float]:
        table = self.values.get("epsilon", {})
        if not isinstance(table, Mapping):
            raise self.error("epsilon", f"must be a table of indicator = ε; got {table!r}.")
        epsilons: dict[str, float] = {}
        for name, value in table.items():
            key = f"epsilon.{name}"
            if indicators is not None and name not in indicators:
                known = sorted(indicators)
                raise self.error(key, f"unknown indicator {name!r}; known indicators: {known}.")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise self.error(key, f"must be a number; got {value!r}.")
            epsilons[str(name)] = float(value)
        return epsilons


def _policy_from_mapping(
    values: Mapping[str, object], *, indicators: Collection[str] | None, source: str
) -> BudgetPolicy:
    section = _Section(values, source)
    unknown = sorted(set(values) - set(_POLICY_KEYS))
    if unknown:
        raise section.error(unknown[0], f"unknown key; allowed keys are {sorted(_POLICY_KEYS)}.")
    defaults = BudgetPolicy()
    totals_share, totals_shares = section.shares(indicators)
    try:
        return BudgetPolicy(
            composition=section.choice("composition", COMPOSITIONS, defaults.composition),
            epsilon_per_window=section.number("epsilon_per_window", defaults.epsilon_per_window),
            delta_per_window=section.number("delta_per_window", defaults.delta_per_window),
            rolling_days=section.whole("rolling_days", defaults.rolling_days),
            epsilon_rolling=section.number("epsilon_rolling", defaults.epsilon_rolling),
            default_delta=section.number("default_delta", defaults.default_delta),
            delta_rolling=(
                section.number("delta_rolling", 0.0) if "delta_rolling" in values else None
            ),
            accounting_window=section.choice(
                "accounting_window", ACCOUNTING_WINDOWS, defaults.accounting_window
            ),
            mechanism=section.choice("mechanism", MECHANISMS, defaults.mechanism),
            default_epsilon=section.epsilons(indicators),
            totals_share=totals_share,
            totals_shares=totals_shares,
        )
    except ValueError as err:
        raise ConfigurationError(f"{source}: [privacy] {err}") from None
