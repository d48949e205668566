"""Privacy parameters shared by every layer: privacy units, sensitivities, mechanisms.

Frozen, self-checking value objects. The numbers here are *declared*; the privacy cost recorded in
the ledger is always what the OpenDP measurement's privacy map returns for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from schemas.errors import ConfigurationError, PrivacyParameterError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

AccountingWindow = Literal["day", "week", "month"]
"""The span of one privacy unit: one subscriber's records within one such window."""

Mechanism = Literal["discrete_laplace", "discrete_gaussian"]
"""Noise mechanisms: discrete Laplace (pure ε-DP, default) or discrete Gaussian (ρ-zCDP)."""


def window_of(day: date, window: AccountingWindow) -> date:
    """The accounting window ``day`` belongs to, named by its first day.

    ``day``: the day itself; ``week``: the Monday of its ISO week; ``month``: the first of its
    month. The ledger charges windows by these names, so that every release touching any day of
    a week (or month) is charged to, and capped by, that one week (or month).
    """
    if window == "day":
        return day
    if window == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)  # month


def windows_of(days: Collection[date], window: AccountingWindow) -> tuple[date, ...]:
    """The accounting windows (see :func:`window_of`) the ``days`` read fall in, in order."""
    return tuple(sorted({window_of(d, window) for d in days}))


UnitHolder = Literal["subscriber", "device"]
"""Whose records one privacy unit holds: a subscriber's (CDR) or a device's (GPS)."""

UNIT_HOLDER: Mapping[str, UnitHolder] = MappingProxyType({"cdr": "subscriber", "gps": "device"})
"""Whose records one privacy unit holds, per source."""


@dataclass(frozen=True, slots=True)
class PrivacyUnit:
    """What ε and δ protect: all of one ``holder``'s records within one accounting ``window``.

    ``str()`` gives the text every release states and the ledger records (``subscriber-day``,
    ``device-week`` …); :meth:`parse` is the one reader of that text back.
    """

    holder: UnitHolder
    window: AccountingWindow

    def __post_init__(self) -> None:
        require_valid(
            self.holder in UNIT_HOLDER.values() and self.window in ACCOUNTING_WINDOWS,
            f"A privacy unit is <{'|'.join(UNIT_HOLDER.values())}>-"
            f"<{'|'.join(ACCOUNTING_WINDOWS)}>; got holder={self.holder!r}, "
            f"window={self.window!r}.",
        )

    def __str__(self) -> str:
        return f"{self.holder}-{self.window}"

    @classmethod
    def of(cls, source: str, window: AccountingWindow) -> PrivacyUnit:
        """The privacy unit of a release from ``source`` under ``window``."""
        if source not in UNIT_HOLDER:
            msg = f"Unknown source {source!r}; choose one of {list(UNIT_HOLDER)}."
            raise ConfigurationError(msg)
        return cls(UNIT_HOLDER[source], window)

    @classmethod
    def parse(cls, text: str) -> PrivacyUnit:
        """The unit whose ``str()`` is ``text`` (as recorded in a ledger entry); ``ValueError``
        naming the text and the accepted forms otherwise."""
        holder, _, window = text.rpartition("-")
        for h in UNIT_HOLDER.values():
            for w in ACCOUNTING_WINDOWS:
                if (holder, window) == (h, w):
                    return cls(h, w)
        msg = (
            f"privacy unit {text!r} is not <{'|'.join(UNIT_HOLDER.values())}>-"
            f"<{'|'.join(ACCOUNTING_WINDOWS)}>"
        )
        raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """How far one privacy unit can move a whole vector of bounded aggregates.

    ``l1`` bounds the sum of absolute changes over all cells, ``l2`` the Euclidean norm of the
    change, ``linf`` the change of any single cell. They follow from the contribution bounds of
    the indicator (derived in its module, ``aggregation/indicators/<name>.py``), never from the
    data.
    """

    l1: int
    l2: float
    linf: int

    def __post_init__(self) -> None:
        if self.l1 < 1 or self.linf < 1 or self.l2 <= 0:
            msg = (
                f"Sensitivities must be positive; got l1={self.l1}, l2={self.l2}, linf={self.linf}."
            )
            raise ValueError(msg)
        if not (self.linf <= self.l2 <= self.l1 + 1e-9):
            msg = (
                f"Inconsistent sensitivities: need linf <= l2 <= l1, got linf={self.linf}, "
                f"l2={self.l2}, l1={self.l1}."
            )
            raise ValueError(msg)

    def as_dict(self) -> dict[str, int | float]:
        """As release metadata, ``explain`` and the noise description state it."""
        return {"l1": self.l1, "l2": self.l2, "linf": self.linf}


Composition = Literal["basic", "zcdp"]
"""How the ledger adds up the releases charged to one accounting window.

``basic``: sum of ε and sum of δ (pure/approximate DP), the conservative default any auditor can
recompute by hand. ``zcdp``: sum of ρ (zero-concentrated DP), converted to ε at the window's δ
only when compared with the cap; tighter for many Gaussian releases, stated as such in the ledger.
"""

COMPOSITIONS: tuple[Composition, ...] = ("basic", "zcdp")
MECHANISMS: tuple[Mechanism, ...] = ("discrete_laplace", "discrete_gaussian")
ACCOUNTING_WINDOWS: tuple[AccountingWindow, ...] = ("day", "week", "month")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def require_valid(ok: bool, message: str) -> None:
    """:class:`~schemas.errors.PrivacyParameterError` with ``message`` unless ``ok``."""
    if not ok:
        raise PrivacyParameterError(message)


def check_budget(name: str, value: float, *, positive: bool = False) -> None:
    """The rule for one ε or ρ (or another amount of this module: a cap, a scale, an error):
    a finite number, at least 0 where it is what something cost (a share of nothing is
    nothing), above 0 where a measurement is built from it or it caps spending (``positive``).
    Raises :class:`~schemas.errors.PrivacyParameterError` naming ``name``; what a release may
    *ask* for is the narrower :func:`release_parameter_problems`."""
    if positive:
        ok, rule = _is_number(value) and math.isfinite(value) and value > 0, "positive"
    else:
        ok, rule = _is_number(value) and math.isfinite(value) and value >= 0, "non-negative"
    require_valid(ok, f"{name} must be a finite {rule} number; got {value!r}.")


def check_delta(name: str, value: float, *, positive: bool = False) -> None:
    """The rule for one δ: a probability in [0, 1), and above 0 for a mechanism that needs one
    (``positive``: partition selection, a Gaussian stated as (ε, δ)-DP). Raises
    :class:`~schemas.errors.PrivacyParameterError` naming ``name``."""
    if positive:
        require_valid(
            _is_number(value) and 0 < value < 1,
            f"{name} must lie strictly between 0 and 1 for this mechanism; got {value!r}.",
        )
    else:
        require_valid(
            _is_number(value) and 0 <= value < 1,
            f"{name} must be a probability in [0, 1); got {value!r}.",
        )


def _check_share(share: float) -> None:
    require_valid(
        _is_number(share) and 0 <= share <= 1,
        f"A share of a privacy budget must be a number from 0 to 1; got {share!r}.",
    )


def _rest(whole: float, part: float) -> float:
    """``whole - part``, nudged down until adding ``part`` back stays at most ``whole``."""
    rest = whole - part
    while rest + part > whole:
        rest = math.nextafter(rest, 0.0)
    return rest


EPSILON_RANGE = (1e-3, 100.0)
"""The ε one release may ask for (per value column, after the policy's defaults are applied).

Below 1e-3 the noise drowns any count a mobility indicator can hold (scale >= 1 000 × L1) and
the noise arithmetic degenerates (ε = 1e-300 spun for ever computing a 95 % interval); above 100
a release is not private in any useful sense and OpenDP's maps overflow (ε = 1e308)."""

DELTA_RANGE = (1e-15, 1e-3)
"""The δ a release that needs one may be given (partition selection, Gaussian stated as DP)."""

K_MAX = 1_000_000_000
"""The largest suppression threshold k: beyond it no cell of any indicator could be published
and OpenDP's partition thresholds overflow."""


def release_parameter_problems(
    *, epsilon: float | None = None, delta: float | None = None, k: int | None = None
) -> list[str]:
    """What is out of range in a release's ε, δ and k (empty when all is well).

    The one validation of these numbers: :class:`~schemas.release.ReleaseSpec` (every door:
    CLI, API, flows), :class:`~schemas.budget_policy.BudgetPolicy` (the defaults of
    ``mobility.toml``) and the release plan (the resolved ε) all call it, so a bad value is
    refused up front, before any noise or ledger work, with the same message everywhere.
    """
    problems: list[str] = []
    low, high = EPSILON_RANGE
    if epsilon is not None and not (
        _is_number(epsilon) and math.isfinite(epsilon) and low <= epsilon <= high
    ):
        problems.append(f"epsilon must be a number from {low:g} to {high:g}; got {epsilon!r}")
    low, high = DELTA_RANGE
    if delta is not None and not (_is_number(delta) and low <= delta <= high):
        problems.append(f"delta must be a number from {low:g} to {high:g}; got {delta!r}")
    if k is not None and not (isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= K_MAX):
        problems.append(f"k must be a whole number from 0 to {K_MAX:,}; got {k!r}")
    return problems


DEFAULT_TOTALS_SHARE = 0.2
"""The one share of every indicator's ε spent on its per-date totals (``[privacy] totals_share =
0.2``) that the template set before :data:`DEFAULT_TOTALS_SHARES`; the template's share of the
period indicators, which the accuracy benchmark does not measure."""

DEFAULT_TOTALS_SHARES: Mapping[str, float] = MappingProxyType({
    "event_counts": 0.1, "presence": 0.0, "od_trips": 0.15, "od_connections": 0.5,
    "home_away": 0.5, "mobility_distance": 0.5,
    "residents": DEFAULT_TOTALS_SHARE, "relocations": DEFAULT_TOTALS_SHARE,
})  # fmt: skip
"""The share of each indicator's ε spent on its per-date totals released as DP values of their
own, as the template of new workspaces sets it (``[privacy.totals_share]``); the cells get the
rest. Chosen from the accuracy benchmark (``benchmarks/bench_utility.py --required``, issue 19):
the smallest share (in steps of 0.05) at which the lockdown change of the demo's daily totals is
within 1 point of the exact aggregate's on 99 % of simulated draws at the template's ε (95 % is
the target; the margin covers the simulation's approximations). ``od_connections``,
``home_away`` and ``mobility_distance`` reach it at no share up to :data:`MAX_TOTALS_SHARE`
(98 %, 42 % and 38–85 % at 0.5), so they take 0.5, the share that comes closest. At 10 M events
too, ``home_away`` (96 %) and ``mobility_distance`` (distance 98 %, subscribers 92 %, mean
distance 100 %) come closest to the target at 0.5, and ``home_away`` reaches 95 % at no smaller
share (``od_connections`` would need only 0.15 there)."""

UNSET_TOTALS_SHARE = 0.0
"""The share of a ``[privacy]`` section that does not name ``totals_share`` (a workspace made
before the setting): its releases keep the keys and noise they had."""

MAX_TOTALS_SHARE = 0.5
"""The largest share of a release's ε its totals may take: beyond it the cells, which are what
the release is for, would be noisier than the one number per day."""


def totals_share_problems(share: object) -> list[str]:
    """What is wrong with a totals share (empty when it is a number from 0 to
    :data:`MAX_TOTALS_SHARE`; 0 releases no DP totals, the margins are then sums of cells)."""
    if (
        isinstance(share, int | float)
        and not isinstance(share, bool)
        and math.isfinite(share)
        and 0 <= share <= MAX_TOTALS_SHARE
    ):
        return []
    rule = (
        f"totals_share must be a number from 0 to {MAX_TOTALS_SHARE:g} (the share of a "
        "release's ε spent on its per-date totals; 0: none)"
    )
    return [f"{rule}; got {share!r}"]


@dataclass(frozen=True, slots=True)
class PrivacyCost:
    """What one release costs each accounting window it reads, as OpenDP's privacy map states it.

    Every release satisfies (``epsilon``, ``delta``)-DP with respect to one privacy unit; basic
    composition charges these. When ``rho`` is set the release also satisfies ``zcdp_delta``-
    approximate ``rho``-zCDP (plain ρ-zCDP when ``zcdp_delta`` is 0); zCDP composition charges
    those. A pure ε-DP release carries ``rho = ε²/2``; a threshold release under pure DP has no
    zCDP statement (``rho`` is None) and cannot be charged under zCDP composition.

    The same value states a budget a release is given before its measurement is built (the
    ε of a value column, of the cells, of the per-date totals): :meth:`part`, :meth:`split`,
    :meth:`whole` and ``+`` are the only arithmetic done on privacy loss outside the ledger's
    window sums (:mod:`aggregation.budget`). Each number is checked once, here, when a value is
    made; what a release may *ask* for is the narrower rule of
    :func:`release_parameter_problems`, applied by the doors with their own messages.
    """

    epsilon: float
    delta: float = 0.0
    rho: float | None = None
    zcdp_delta: float = 0.0

    def __post_init__(self) -> None:
        check_budget("Epsilon", self.epsilon)
        check_delta("Delta", self.delta)
        if self.rho is not None:
            check_budget("Rho", self.rho)
        check_delta("zCDP delta", self.zcdp_delta)

    def __add__(self, other: PrivacyCost) -> PrivacyCost:
        """Basic (sequential) composition: ε, δ add up; ρ and the zCDP δ too, when both state
        a zCDP guarantee (else the sum has none). Each sum is one float addition (correctly
        rounded, so equal to :func:`math.fsum` of the two)."""
        if not isinstance(other, PrivacyCost):
            return NotImplemented
        if self.rho is None or other.rho is None:
            rho, zcdp_delta = None, 0.0
        else:
            rho, zcdp_delta = self.rho + other.rho, self.zcdp_delta + other.zcdp_delta
        return PrivacyCost(self.epsilon + other.epsilon, self.delta + other.delta, rho, zcdp_delta)

    def part(self, share: float) -> PrivacyCost:
        """``share`` (from 0 to 1) of this budget: each of ε, δ, ρ and the zCDP δ times
        ``share``, e.g. what one value column of an indicator is given of its ε
        (:meth:`schemas.indicators.IndicatorSpec.epsilon_share`)."""
        _check_share(share)
        return self._times(share)

    def whole(self, share: float) -> PrivacyCost:
        """The budget of which this is the ``share`` (above 0): each number divided by
        ``share``. An audit recovers with it the ε a release asked for from what one value
        column was charged, and the ε a release split from what its cells were given."""
        require_valid(
            _is_number(share) and 0 < share <= 1,
            f"A share of a privacy budget must be a number above 0 and at most 1; got {share!r}.",
        )
        return PrivacyCost(
            epsilon=self.epsilon / share,
            delta=self.delta / share,
            rho=None if self.rho is None else self.rho / share,
            zcdp_delta=self.zcdp_delta / share,
        )

    def split(self, share: float) -> tuple[PrivacyCost, PrivacyCost]:
        """(the rest, the ``share``): two parts whose basic composition (:meth:`__add__`) is at
        most this budget, float for float. The share is each number times ``share``; the rest is
        the difference, nudged down a float step at a time while rounding would carry the sum
        above the whole. A share of 0 gives (this budget, nothing)."""
        _check_share(share)
        part = self._times(share)
        return PrivacyCost(
            epsilon=_rest(self.epsilon, part.epsilon),
            delta=_rest(self.delta, part.delta),
            rho=None if self.rho is None or part.rho is None else _rest(self.rho, part.rho),
            zcdp_delta=_rest(self.zcdp_delta, part.zcdp_delta),
        ), part

    def _times(self, factor: float) -> PrivacyCost:
        return PrivacyCost(
            epsilon=self.epsilon * factor,
            delta=self.delta * factor,
            rho=None if self.rho is None else self.rho * factor,
            zcdp_delta=self.zcdp_delta * factor,
        )

    def describe(self) -> str:
        """The cost in the notation of the release metadata, e.g. ``ε=1, δ=0``."""
        text = f"ε={self.epsilon:g}, δ={self.delta:g}"
        if self.rho is not None:
            text += f", ρ={self.rho:g}"
            if self.zcdp_delta:
                text += f" (zCDP δ={self.zcdp_delta:g})"
        return text


@dataclass(frozen=True, slots=True)
class NoiseSpec:
    """Everything a release states about its noise, known before any data are touched.

    ``scale`` is the OpenDP noise scale: for the discrete Laplace P(Z=k) ∝ exp(-|k|/scale); for
    the discrete Gaussian P(Z=k) ∝ exp(-k²/(2·scale²)). ``ci_half_width`` is the smallest integer
    h with P(|Z| <= h) >= ``confidence`` for one cell's noise. ``threshold`` and ``l0`` are set for
    DP partition selection (private key sets): a key is kept only if its noisy count reaches
    ``threshold``, and one privacy unit touches at most ``l0`` keys.
    """

    mechanism: Mechanism
    scale: float
    sensitivity: Sensitivity
    cost: PrivacyCost
    confidence: float
    ci_half_width: int
    expected_abs_error: float
    std_dev: float
    threshold: int | None = None
    l0: int | None = None

    def __post_init__(self) -> None:
        require_valid(
            self.mechanism in MECHANISMS,
            f"Mechanism must be one of {list(MECHANISMS)}; got {self.mechanism!r}.",
        )
        check_budget("Noise scale", self.scale, positive=True)
        require_valid(
            0 < self.confidence < 1,
            f"Confidence must lie strictly between 0 and 1; got {self.confidence!r}.",
        )
        require_valid(
            self.ci_half_width >= 0,
            f"CI half-width must be non-negative; got {self.ci_half_width!r}.",
        )
        check_budget("Expected absolute error", self.expected_abs_error)
        check_budget("Standard deviation", self.std_dev)
        require_valid(
            (self.threshold is None) == (self.l0 is None),
            "A partition-selection spec sets both threshold and l0; a vector spec sets neither; "
            f"got threshold={self.threshold!r}, l0={self.l0!r}.",
        )
        require_valid(
            self.l0 is None or self.l0 >= 1,
            f"l0 (keys one privacy unit can touch) must be at least 1; got {self.l0!r}.",
        )

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready description, for release metadata and ``explain --json``."""
        return {
            "mechanism": self.mechanism,
            "scale": self.scale,
            "sensitivity": self.sensitivity.as_dict(),
            "epsilon": self.cost.epsilon,
            "delta": self.cost.delta,
            "rho": self.cost.rho,
            "zcdp_delta": self.cost.zcdp_delta,
            "confidence": self.confidence,
            "ci_half_width": self.ci_half_width,
            "expected_abs_error": self.expected_abs_error,
            "std_dev": self.std_dev,
            "threshold": self.threshold,
            "l0": self.l0,
        }
