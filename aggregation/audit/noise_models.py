"""The declared noise distributions, as log-probabilities an auditor can evaluate at any scale.

Both are symmetric distributions on the integers, as OpenDP samples them:

- discrete Laplace, P(Z=k) = (1-p)/(1+p)·p^|k| with p = exp(-1/scale); closed forms throughout:
  P(Z >= t) = p^t/(1+p) for t >= 1.
- discrete Gaussian, P(Z=k) = exp(-k²/(2σ²))/N(σ), σ = scale. The normaliser is a direct sum for
  σ < 1 and, for σ >= 1, the Poisson-summation identity N = σ·sqrt(2π)·(1 + 2·Σ_j exp(-2π²σ²j²)).
  Tails are exact sums in log space up to 12σ (beyond, the geometric bound
  f(t)/(1 - f(t+1)/f(t)), tight there) for σ <= :data:`EXACT_GAUSSIAN_LIMIT`; above it, the
  continuity-corrected normal tail, whose relative error is below 1e-5.

Symmetry gives the lower tail: P(Z < t) = P(Z >= 1 - t). Arrays are numpy int64 in, float64 out.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np
from scipy import special, stats

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from schemas.privacy import Mechanism

EXACT_GAUSSIAN_LIMIT = 200.0
"""Up to this σ discrete-Gaussian tails are exact sums; above, a normal approximation."""

_TAIL_SIGMAS = 12
_DIRECT_TERMS = 40


class NoiseModel(Protocol):
    """A symmetric integer noise distribution with a scale parameter."""

    name: str

    def log_pmf(self, k: NDArray[np.int64], scale: float) -> NDArray[np.float64]:
        """log P(Z = k)."""
        ...

    def log_sf(self, t: NDArray[np.int64], scale: float) -> NDArray[np.float64]:
        """log P(Z >= t)."""
        ...


class DiscreteLaplace:
    """OpenDP's discrete Laplace: P(Z=k) ∝ exp(-|k|/scale)."""

    name = "discrete_laplace"

    @staticmethod
    def _logs(scale: float) -> tuple[float, float, float]:
        """(a, log(1 - p), log(1 + p)) with a = 1/scale, p = exp(-a), without cancellation."""
        a = 1.0 / scale
        return a, math.log(-math.expm1(-a)), math.log1p(math.exp(-a))

    def log_pmf(self, k: NDArray[np.int64], scale: float) -> NDArray[np.float64]:
        """log((1-p)/(1+p)) - |k|/scale."""
        a, log_1mp, log_1pp = self._logs(scale)
        return log_1mp - log_1pp - a * np.abs(k).astype(np.float64)

    def log_sf(self, t: NDArray[np.int64], scale: float) -> NDArray[np.float64]:
        """-t/scale - log(1+p) for t >= 1; log(1 - P(Z >= 1-t)) for t <= 0."""
        a, _, log_1pp = self._logs(scale)
        tf = t.astype(np.float64)
        upper = -a * tf - log_1pp
        mirror = -a * np.maximum(1.0 - tf, 1.0) - log_1pp  # log P(Z >= 1 - t), for t <= 0
        lower = np.log1p(-np.exp(mirror))
        return np.where(t >= 1, upper, lower)


class DiscreteGaussian:
    """OpenDP's discrete Gaussian: P(Z=k) ∝ exp(-k²/(2σ²)), σ = scale."""

    name = "discrete_gaussian"

    @staticmethod
    def log_norm(scale: float) -> float:
        """log Σ_k exp(-k²/(2σ²)) over all integers k."""
        if scale < 1.0:
            k = np.arange(-_DIRECT_TERMS, _DIRECT_TERMS + 1, dtype=np.float64)
            return float(special.logsumexp(-(k * k) / (2.0 * scale * scale)))
        j = np.arange(1, 5, dtype=np.float64)
        theta = 2.0 * float(np.sum(np.exp(-2.0 * math.pi**2 * scale * scale * j * j)))
        return math.log(scale * math.sqrt(2.0 * math.pi)) + math.log1p(theta)

    def log_pmf(self, k: NDArray[np.int64], scale: float) -> NDArray[np.float64]:
        """-k²/(2σ²) - log N(σ)."""
        kf = k.astype(np.float64)
        return -(kf * kf) / (2.0 * scale * scale) - self.log_norm(scale)

    def _log_upper_tail(self, u: NDArray[np.int64], scale: float) -> NDArray[np.float64]:
        """log Σ_{k >= u} exp(-k²/(2σ²)) for u >= 1 (unnormalised), exact up to 12σ."""
        top = math.ceil(_TAIL_SIGMAS * scale) + 2
        grid = np.arange(1, top + 1, dtype=np.float64)
        log_f = -(grid * grid) / (2.0 * scale * scale)
        log_f[-1] = self._log_geometric_tail(grid[-1:], scale)[0]  # the mass from top on
        tails = np.logaddexp.accumulate(log_f[::-1])[::-1]  # tails[i] = log Σ_{k >= i+1}
        inside = np.clip(u, 1, top) - 1
        beyond = self._log_geometric_tail(u.astype(np.float64), scale)
        return np.where(u <= top, tails[inside], beyond)

    @staticmethod
    def _log_geometric_tail(u: NDArray[np.float64], scale: float) -> NDArray[np.float64]:
        """log f(u)/(1 - f(u+1)/f(u)): an upper bound on the tail from u, tight beyond 12σ."""
        ratio = -(2.0 * u + 1.0) / (2.0 * scale * scale)  # log f(u+1)/f(u)
        return -(u * u) / (2.0 * scale * scale) - np.log(-np.expm1(ratio))

    def log_sf(self, t: NDArray[np.int64], scale: float) -> NDArray[np.float64]:
        """log P(Z >= t): exact sums (σ <= limit) or the normal tail at t - 1/2 (σ above)."""
        if scale > EXACT_GAUSSIAN_LIMIT:
            return np.asarray(stats.norm.logsf((t.astype(np.float64) - 0.5) / scale))
        norm = self.log_norm(scale)
        upper = self._log_upper_tail(np.maximum(t, 1), scale) - norm
        mirror = self._log_upper_tail(np.maximum(1 - t, 1), scale) - norm
        return np.where(t >= 1, upper, np.log1p(-np.exp(np.minimum(mirror, 0.0))))


def noise_model(mechanism: Mechanism | str) -> NoiseModel:
    """The model of ``mechanism``; ``ValueError`` for an unknown one."""
    if mechanism == DiscreteLaplace.name:
        return DiscreteLaplace()
    if mechanism == DiscreteGaussian.name:
        return DiscreteGaussian()
    msg = f"No noise model for mechanism {mechanism!r}; known: discrete_laplace, discrete_gaussian."
    raise ValueError(msg)
