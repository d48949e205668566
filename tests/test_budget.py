"""The budget policy and its accounting rules: parsing, per-window caps, rolling caps, zCDP."""

from __future__ import annotations

import math
import tomllib
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.budget import (
    Charge,
    epsilon_from_rho,
    refusal_reasons,
    rho_for_epsilon,
    rolling_budget,
    summarise_reasons,
    window_budget,
)
from schemas.budget_policy import BudgetPolicy
from schemas.errors import ConfigurationError
from schemas.privacy import PrivacyCost

DAY = date(2024, 3, 5)
INDICATORS = ("od_trips", "presence", "residents")


def pure(epsilon: float) -> PrivacyCost:
    return PrivacyCost(epsilon=epsilon, rho=epsilon * epsilon / 2)


def days(start: date, n: int) -> tuple[date, ...]:
    return tuple(start + timedelta(days=i) for i in range(n))


# -- policy parsing -----------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    policy = BudgetPolicy.from_mapping({})
    assert policy == BudgetPolicy()
    assert policy.composition == "basic"
    assert policy.epsilon_per_window == 2.0
    assert policy.delta_per_window == 1e-6
    assert policy.rolling_days == 30
    assert policy.epsilon_rolling == 20.0


def test_parses_the_privacy_section_of_mobility_toml() -> None:
    text = """
    [privacy]
    composition = "zcdp"
    epsilon_per_window = 1
    delta_per_window = 1e-7
    rolling_days = 7
    epsilon_rolling = 5.5
    default_delta = 1e-8
    accounting_window = "week"
    mechanism = "discrete_gaussian"

    [privacy.epsilon]
    od_trips = 0.5
    presence = 1
    """
    policy = BudgetPolicy.from_mapping(tomllib.loads(text)["privacy"], indicators=INDICATORS)
    assert policy.composition == "zcdp"
    assert policy.epsilon_per_window == 1.0
    assert isinstance(policy.epsilon_per_window, float)
    assert policy.rolling_days == 7
    assert policy.accounting_window == "week"
    assert policy.mechanism == "discrete_gaussian"
    assert policy.epsilon_for("od_trips") == 0.5
    assert policy.epsilon_for("presence") == 1.0
    assert BudgetPolicy.from_mapping(policy.as_dict()) == policy


@pytest.mark.parametrize(
    ("section", "fragments"),
    [
        ({"epsilon_per_day": 1.0}, ["epsilon_per_day", "unknown key", "epsilon_per_window"]),
        ({"epsilon_per_window": "2"}, ["epsilon_per_window", "must be a number", "'2'"]),
        ({"epsilon_per_window": -1}, ["epsilon_per_window", "positive", "-1.0"]),
        ({"rolling_days": 2.5}, ["rolling_days", "whole number", "2.5"]),
        ({"rolling_days": True}, ["rolling_days", "whole number", "True"]),
        ({"rolling_days": 0}, ["rolling_days", ">= 1", "0"]),
        ({"composition": "renyi"}, ["composition", "'basic', 'zcdp'", "'renyi'"]),
        ({"mechanism": "laplace"}, ["mechanism", "discrete_laplace", "'laplace'"]),
        ({"delta_per_window": 1.5}, ["delta_per_window", "[0, 1)", "1.5"]),
        ({"default_delta": 1e-5}, ["default_delta", "delta_per_window"]),
        (
            {"composition": "zcdp", "delta_per_window": 0, "default_delta": 0},
            ["zcdp", "delta_per_window must be positive"],
        ),
        ({"epsilon": {"od_trip": 1.0}}, ["epsilon.od_trip", "unknown indicator", "od_trips"]),
        ({"epsilon": {"od_trips": "high"}}, ["epsilon.od_trips", "must be a number"]),
        ({"epsilon": {"od_trips": 0}}, ["epsilon.od_trips", "from 0.001 to 100", "0.0"]),
        ({"epsilon": 1.0}, ["epsilon", "table"]),
    ],
)
def test_bad_configuration_names_the_key_value_and_rule(
    section: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        BudgetPolicy.from_mapping(section, indicators=INDICATORS)
    message = str(caught.value)
    assert message.startswith("mobility.toml: [privacy] ")
    for fragment in fragments:
        assert fragment in message


def test_missing_indicator_epsilon_says_where_to_configure_it() -> None:
    policy = BudgetPolicy(default_epsilon={"od_trips": 1.0})
    with pytest.raises(ConfigurationError, match=r"'presence'.*\[privacy\.epsilon\]"):
        policy.epsilon_for("presence")


def test_policy_is_frozen_including_its_epsilon_table() -> None:
    table = {"od_trips": 1.0}
    policy = BudgetPolicy(default_epsilon=table)
    table["od_trips"] = 9.0
    assert policy.epsilon_for("od_trips") == 1.0
    with pytest.raises(TypeError):
        policy.default_epsilon["od_trips"] = 2.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": -1}, "Epsilon must be a finite non-negative number; got -1."),
        ({"epsilon": math.nan}, "Epsilon must be a finite non-negative number; got nan."),
        ({"epsilon": 1, "delta": 1}, "Delta must be a probability in [0, 1); got 1."),
        ({"epsilon": 1, "rho": -0.5}, "Rho must be a finite non-negative number; got -0.5."),
    ],
)
def test_privacy_cost_checks_itself(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        PrivacyCost(**kwargs)


def test_a_charge_reads_at_least_one_distinct_window() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Charge((), pure(1.0))
    with pytest.raises(ValueError, match="duplicates"):
        Charge((DAY, DAY), pure(1.0))


# -- basic composition ----------------------------------------------------------------------------


def test_window_spend_is_the_correctly_rounded_sum() -> None:
    # 10 × 0.2 is 2.0000000000000004 with naive float addition; fsum gives exactly 2.0, the cap.
    policy = BudgetPolicy()
    charges = [Charge((DAY,), pure(0.2)) for _ in range(9)]
    assert refusal_reasons(policy, charges, Charge((DAY,), pure(0.2))) == []
    spent = window_budget(policy, [*charges, Charge((DAY,), pure(0.2))], DAY)
    assert spent.epsilon_spent == 2.0
    assert spent.epsilon_left == 0.0
    assert spent.releases == 10


def test_per_window_refusal_names_window_spend_cap_and_what_is_left() -> None:
    policy = BudgetPolicy()
    charges = [Charge((DAY,), pure(1.5))]
    reasons = refusal_reasons(policy, charges, Charge((DAY,), pure(0.75)))
    assert reasons == [
        (
            "window 2024-03-05: this release costs ε=0.75; the window has already spent ε=1.5 "
            "of its cap ε=2 (left: ε=0.5)"
        )
    ]


def test_delta_cap_is_enforced_per_window() -> None:
    policy = BudgetPolicy(delta_per_window=1e-6, default_delta=1e-7)
    charges = [Charge((DAY,), PrivacyCost(epsilon=0.1, delta=6e-7))]
    reasons = refusal_reasons(policy, charges, Charge((DAY,), PrivacyCost(0.1, delta=5e-7)))
    assert len(reasons) == 1
    assert "δ=5e-07" in reasons[0]
    assert "already spent δ=6e-07 of its cap δ=1e-06 (left: δ=4e-07)" in reasons[0]


def test_a_multi_window_release_charges_every_window_it_reads() -> None:
    policy = BudgetPolicy()
    month = days(date(2024, 3, 1), 31)
    monthly = Charge(month, pure(0.5))
    for day in month:
        assert window_budget(policy, [monthly], day).epsilon_spent == 0.5
    assert window_budget(policy, [monthly], date(2024, 4, 1)).epsilon_spent == 0.0
    # One full day elsewhere in the month blocks the whole monthly release.
    full = Charge((date(2024, 3, 20),), pure(2.0))
    reasons = refusal_reasons(policy, [full], monthly)
    assert reasons[0].startswith("window 2024-03-20: ")


def test_rolling_cap_sums_the_windows_of_any_span_containing_the_release() -> None:
    policy = BudgetPolicy(epsilon_per_window=2.0, epsilon_rolling=20.0, rolling_days=30)
    daily = [Charge((d,), pure(1.0)) for d in days(date(2024, 3, 1), 19)]  # 19 days × 1.0
    ok = Charge((date(2024, 3, 20),), pure(1.0))
    assert refusal_reasons(policy, daily, ok) == []
    over = Charge((date(2024, 3, 20),), pure(1.5))
    reasons = refusal_reasons(policy, daily, over)
    # Every span ending 20..30 March holds all 19 days plus the new one: 11 spans over.
    assert reasons == [
        (
            "30-day span 2024-02-20..2024-03-20: this release adds ε=1.5; the span has already "
            "spent ε=19 of its rolling cap ε=20 (left: ε=1) (11 rolling spans would be over "
            "their cap; this is the worst)"
        )
    ]
    # A release far enough in the future does not share a span with them.
    later = Charge((date(2024, 3, 1) + timedelta(days=30),), pure(2.0))
    assert refusal_reasons(policy, daily, later) == []


def test_rolling_spend_counts_a_multi_window_release_once_per_window_in_the_span() -> None:
    policy = BudgetPolicy(rolling_days=30)
    weekly = Charge(days(date(2024, 3, 1), 7), pure(0.5))
    spent = rolling_budget(policy, [weekly], date(2024, 3, 30))
    assert spent.start == date(2024, 3, 1)
    assert spent.epsilon_spent == 3.5  # group privacy: 7 windows × 0.5
    assert rolling_budget(policy, [weekly], date(2024, 4, 3)).epsilon_spent == 1.5  # 5..7 March


@settings(max_examples=60, deadline=None)
@given(
    requests=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=40),
            st.integers(min_value=1, max_value=5),
            st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 1.0, 1.3]),
        ),
        max_size=40,
    )
)
def test_accepting_only_requests_without_reasons_never_overspends(
    requests: list[tuple[int, int, float]],
) -> None:
    policy = BudgetPolicy(epsilon_rolling=6.0, rolling_days=10)
    start = date(2024, 1, 1)
    accepted: list[Charge] = []
    for offset, length, epsilon in requests:
        new = Charge(days(start + timedelta(days=offset), length), pure(epsilon))
        if not refusal_reasons(policy, accepted, new):
            accepted.append(new)
    for day in days(start - timedelta(days=10), 70):
        assert window_budget(policy, accepted, day).epsilon_spent <= policy.epsilon_per_window
        assert rolling_budget(policy, accepted, day).epsilon_spent <= policy.epsilon_rolling


def test_summary_lists_the_first_reasons_then_counts_the_rest() -> None:
    assert summarise_reasons(["a", "b"]) == "a; b"
    assert summarise_reasons(["a", "b", "c", "d", "e"]) == "a; b; c; and 2 more"


# -- zCDP composition -----------------------------------------------------------------------------


def test_rho_epsilon_conversion_round_trips() -> None:
    # ρ + 2·sqrt(ρ·ln(1/δ)) at ρ = 0.5, δ = 1e-6: 0.5 + 2·sqrt(0.5·13.8155…) = 5.7565…
    assert epsilon_from_rho(0.5, 1e-6) == pytest.approx(5.756521769756932, rel=1e-12)
    rho = rho_for_epsilon(2.0, 1e-6)
    assert epsilon_from_rho(rho, 1e-6) == pytest.approx(2.0, rel=1e-12)
    assert epsilon_from_rho(0.0, 1e-6) == 0.0
    assert epsilon_from_rho(0.1, 0.0) == math.inf


def test_zcdp_window_sums_rho_and_converts_at_the_remaining_delta() -> None:
    policy = BudgetPolicy(composition="zcdp", epsilon_per_window=2.0, delta_per_window=1e-6)
    cap_rho = rho_for_epsilon(2.0, 1e-6)
    charges = [Charge((DAY,), PrivacyCost(epsilon=9.9, delta=1e-7, rho=cap_rho / 4))] * 3
    spent = window_budget(policy, charges, DAY)
    assert spent.rho_spent == pytest.approx(0.75 * cap_rho)
    assert spent.epsilon_spent == pytest.approx(epsilon_from_rho(0.75 * cap_rho, 1e-6))
    assert spent.rho_left == pytest.approx(0.25 * cap_rho)
    fits = Charge((DAY,), PrivacyCost(epsilon=9.9, rho=cap_rho / 4 * (1 - 1e-9)))
    assert refusal_reasons(policy, charges, fits) == []
    over = Charge((DAY,), PrivacyCost(epsilon=9.9, rho=cap_rho / 3))
    (reason,) = refusal_reasons(policy, charges, over)
    assert reason.startswith("window 2024-03-05: this release costs ρ=")
    assert "of its cap ε=2, δ=1e-06" in reason


def test_zcdp_delta_of_threshold_releases_shrinks_the_conversion_delta() -> None:
    policy = BudgetPolicy(composition="zcdp", delta_per_window=1e-6)
    thresholded = Charge((DAY,), PrivacyCost(epsilon=1.0, delta=1e-6, rho=0.01, zcdp_delta=6e-7))
    spent = window_budget(policy, [thresholded], DAY)
    assert spent.delta_spent == 6e-7
    assert spent.epsilon_spent == pytest.approx(epsilon_from_rho(0.01, 4e-7))


def test_zcdp_composition_cannot_charge_a_release_without_a_zcdp_cost() -> None:
    policy = BudgetPolicy(composition="zcdp")
    laplace_threshold = Charge((DAY,), PrivacyCost(epsilon=1.0, delta=1e-7))
    with pytest.raises(ConfigurationError, match="zcdp composition needs a zCDP cost"):
        refusal_reasons(policy, [], laplace_threshold)


def test_zcdp_rolling_span_uses_group_privacy_m_squared() -> None:
    policy = BudgetPolicy(composition="zcdp", rolling_days=30)
    weekly = Charge(days(date(2024, 3, 1), 7), PrivacyCost(epsilon=1.0, rho=0.01))
    spent = rolling_budget(policy, [weekly], date(2024, 3, 30))
    assert spent.epsilon_spent == pytest.approx(epsilon_from_rho(49 * 0.01, 1e-6))


# -- δ under group privacy (issue 16.9) ------------------------------------------------------------


def test_the_rolling_cap_counts_delta_under_group_privacy() -> None:
    policy = BudgetPolicy()
    assert policy.delta_rolling == pytest.approx(30 * 1e-6)  # rolling_days × delta_per_window
    # A week-long release at ε = 1, δ = 1e-7 is (7, 7·e^6·1e-7 ≈ 2.8e-4)-DP for one subscriber's
    # week: within every per-window cap (δ 1e-7 ≤ 1e-6, ε 1 ≤ 2) and the rolling ε (7 ≤ 20), but
    # its group δ is far over the span's 3e-5.
    week = Charge(days(DAY, 7), PrivacyCost(epsilon=1.0, delta=1e-7))
    span = rolling_budget(policy, [week], DAY + timedelta(days=6))
    assert span.epsilon_spent == pytest.approx(7.0)
    assert span.delta_spent == pytest.approx(7 * math.exp(6) * 1e-7)
    (reason,) = refusal_reasons(policy, [], week)
    assert "under group privacy" in reason
    assert "rolling cap δ=3e-05" in reason
    # One window at a time, the same δ never binds: 30 daily releases fit.
    daily = [Charge((d,), PrivacyCost(epsilon=0.5, delta=9e-7)) for d in days(DAY, 29)]
    assert refusal_reasons(policy, daily, Charge((DAY + timedelta(days=29),), daily[0].cost)) == []
    assert BudgetPolicy.from_mapping({"delta_rolling": 1e-3}).delta_rolling == 1e-3
