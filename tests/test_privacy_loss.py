"""The privacy-loss value (:class:`PrivacyCost`) and the privacy unit (:class:`PrivacyUnit`).

A release's ε is split (value columns, DP totals), its parts' costs summed (basic composition),
and an audit reverses the splits: every one of these is arithmetic of the type, and these tests
hold it to the guarantees the ledger relies on: the parts of a split never sum above the whole,
a sum is the float sum of each number, and a bad ε, δ or ρ is refused naming it.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregation.mechanisms import discrete_gaussian_for_epsilon, discrete_laplace
from schemas.budget_policy import BudgetPolicy
from schemas.errors import ConfigurationError, PrivacyParameterError
from schemas.privacy import (
    ACCOUNTING_WINDOWS,
    AccountingWindow,
    PrivacyCost,
    PrivacyUnit,
    Sensitivity,
    check_budget,
    check_delta,
)

if TYPE_CHECKING:
    from collections.abc import Callable

epsilons = st.floats(min_value=1e-3, max_value=100.0)
shares = st.floats(min_value=0.0, max_value=1.0)
rhos = st.one_of(st.none(), st.floats(min_value=0.0, max_value=50.0))
deltas = st.floats(min_value=0.0, max_value=1e-3)


@given(epsilon=epsilons, delta=deltas, rho=rhos, share=shares)
def test_a_split_sums_back_to_at_most_the_whole(
    epsilon: float, delta: float, rho: float | None, share: float
) -> None:
    whole = PrivacyCost(epsilon=epsilon, delta=delta, rho=rho, zcdp_delta=delta / 2)
    rest, part = whole.split(share)
    total = rest + part
    assert part.epsilon == epsilon * share
    assert total.epsilon <= epsilon
    assert total.delta <= whole.delta
    assert total.zcdp_delta <= whole.zcdp_delta
    assert total.epsilon == pytest.approx(epsilon, rel=1e-15)
    if rho is None:
        assert total.rho is None
    else:
        assert total.rho is not None
        assert total.rho <= rho
        assert total.rho == pytest.approx(rho, rel=1e-15, abs=1e-300)


@given(epsilon=epsilons)
def test_a_share_of_nothing_leaves_the_whole(epsilon: float) -> None:
    whole = PrivacyCost(epsilon=epsilon, delta=1e-7)
    assert whole.split(0.0) == (whole, PrivacyCost(epsilon=0.0))


@given(a=epsilons, b=epsilons, ra=rhos, rb=rhos)
def test_basic_composition_adds_each_number(
    a: float, b: float, ra: float | None, rb: float | None
) -> None:
    left = PrivacyCost(epsilon=a, delta=1e-7, rho=ra, zcdp_delta=1e-8 if ra is not None else 0.0)
    right = PrivacyCost(epsilon=b, delta=2e-7, rho=rb, zcdp_delta=3e-8 if rb is not None else 0.0)
    total = left + right
    assert total.epsilon == math.fsum((a, b)) == a + b
    assert total.delta == 1e-7 + 2e-7
    if ra is None or rb is None:  # no zCDP statement for the pair
        assert (total.rho, total.zcdp_delta) == (None, 0.0)
    else:
        assert (total.rho, total.zcdp_delta) == (ra + rb, 1e-8 + 3e-8)
    assert total == right + left


@given(epsilon=epsilons, share=st.sampled_from((0.25, 0.5, 0.75, 0.2, 0.8, 1.0)))
def test_whole_reverses_part_and_the_totals_split(epsilon: float, share: float) -> None:
    part = PrivacyCost(epsilon=epsilon).part(share)
    assert part.epsilon == epsilon * share
    assert part.whole(share).epsilon == pytest.approx(epsilon, rel=1e-15)
    cells, totals = PrivacyCost(epsilon=epsilon).split(1.0 - share)
    released = cells.whole(share)  # what an audit rebuilds from the cells' ε
    assert released.split(1.0 - share)[1].epsilon == pytest.approx(totals.epsilon, rel=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": -0.5}, "Epsilon must be a finite non-negative number; got -0.5."),
        ({"epsilon": math.nan}, "Epsilon must be a finite non-negative number; got nan."),
        ({"epsilon": math.inf}, "Epsilon must be a finite non-negative number; got inf."),
        ({"epsilon": True}, "Epsilon must be a finite non-negative number; got True."),
        ({"epsilon": 1.0, "delta": -1e-9}, "Delta must be a probability in [0, 1); got -1e-09."),
        ({"epsilon": 1.0, "rho": math.nan}, "Rho must be a finite non-negative number; got nan."),
        ({"epsilon": 1.0, "zcdp_delta": 1.0}, "zCDP delta must be a probability in [0, 1)"),
    ],
)
def test_a_bad_number_is_refused_naming_it(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        PrivacyCost(**kwargs)


@pytest.mark.parametrize("share", [-0.1, 1.5, math.nan, math.inf])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    cost = PrivacyCost(epsilon=1.0)
    with pytest.raises(ValueError, match="share of a privacy budget must be a number from 0 to 1"):
        cost.split(share)
    with pytest.raises(ValueError, match="share of a privacy budget must be a number from 0 to 1"):
        cost.part(share)
    with pytest.raises(ValueError, match="must be a number above 0 and at most 1"):
        cost.whole(share)
    with pytest.raises(ValueError, match="must be a number above 0 and at most 1"):
        cost.whole(0.0)


def test_a_sum_is_only_of_costs() -> None:
    with pytest.raises(TypeError):
        _ = PrivacyCost(epsilon=1.0) + 1.0  # type: ignore[operator]


@pytest.mark.parametrize("window", ACCOUNTING_WINDOWS)
def test_the_privacy_unit_states_and_reads_back_its_text(window: AccountingWindow) -> None:
    cdr, gps = PrivacyUnit.of("cdr", window), PrivacyUnit.of("gps", window)
    assert (str(cdr), str(gps)) == (f"subscriber-{window}", f"device-{window}")
    assert (PrivacyUnit.parse(str(cdr)), PrivacyUnit.parse(str(gps))) == (cdr, gps)
    assert cdr.window == gps.window == window


@pytest.mark.parametrize("text", ["subscriber-year", "person-day", "day", "", "subscriber-day-"])
def test_a_privacy_unit_text_that_names_none_is_refused(text: str) -> None:
    expected = f"privacy unit '{text}' is not <subscriber|device>-<day|week|month>"
    with pytest.raises(ValueError, match=re.escape(expected)):
        PrivacyUnit.parse(text)


def test_a_privacy_unit_is_of_a_known_holder_window_and_source() -> None:
    expected = "A privacy unit is <subscriber|device>-<day|week|month>; got holder='person'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        PrivacyUnit("person", "day")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got holder='device', window='year'"):
        PrivacyUnit("device", "year")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="Unknown source 'wifi'; choose one of"):
        PrivacyUnit.of("wifi", "day")


@pytest.mark.parametrize(
    "build",
    [
        lambda: PrivacyCost(epsilon=-1.0),
        lambda: PrivacyCost(epsilon=1.0, delta=1.0),
        lambda: PrivacyCost(epsilon=1.0).part(2.0),
        lambda: check_budget("Epsilon", 0.0, positive=True),
        lambda: check_delta("Delta", 0.0, positive=True),
        lambda: discrete_laplace(Sensitivity(l1=1, l2=1.0, linf=1), 0.0),
        lambda: discrete_gaussian_for_epsilon(Sensitivity(l1=1, l2=1.0, linf=1), 1.0, delta=1.0),
        lambda: BudgetPolicy(epsilon_per_window=0.0),
    ],
)
def test_every_check_of_a_privacy_number_raises_one_error_type(build: Callable[[], object]) -> None:
    """One rule, one exception: an ε, δ or ρ out of range is a PrivacyParameterError wherever it
    is checked, which is both bad parameters (exit 2) and a ValueError."""
    with pytest.raises(PrivacyParameterError) as caught:
        build()
    assert isinstance(caught.value, ConfigurationError)
    assert isinstance(caught.value, ValueError)
