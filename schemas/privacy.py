"""Privacy parameters shared by every layer: privacy units, sensitivities, mechanisms.

Frozen, self-checking value objects. The numbers here are *declared*; the privacy cost recorded in
the ledger is always what the OpenDP measurement's privacy map returns for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AccountingWindow = Literal["day", "week", "month"]
"""The span of one privacy unit: one subscriber's records within one such window."""

Mechanism = Literal["discrete_laplace", "discrete_gaussian"]
"""Noise mechanisms: discrete Laplace (pure ε-DP, default) or discrete Gaussian (ρ-zCDP)."""


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """How far one privacy unit can move a whole vector of bounded aggregates.

    ``l1`` bounds the sum of absolute changes over all cells, ``l2`` the Euclidean norm of the
    change, ``linf`` the change of any single cell. They follow from the contribution bounds of
    the indicator (see :mod:`schemas.indicators`), never from the data.
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
