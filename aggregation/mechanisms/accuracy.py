"""Accuracy of one cell's noise, computed from the noise distribution alone (no data, no budget).

The half-width of the confidence interval stated with every released value (:func:`ci_half_width`),
the mean absolute error and the standard deviation, exact for the discrete Laplace and, up to
:data:`EXACT_GAUSSIAN_SCALE_LIMIT`, for the discrete Gaussian; rigorous bounds above it.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from schemas.privacy import Mechanism

CONFIDENCE = 0.95
"""Default coverage of the CI half-width stated with every release."""

EXACT_GAUSSIAN_SCALE_LIMIT = 10_000.0
"""Up to this scale discrete-Gaussian accuracy figures are exact sums over the pmf; above it
they are rigorous bounds (CI) or continuous limits (mean error, std), see :func:`ci_half_width`."""

_TAIL_SIGMAS = 12
"""Discrete-Gaussian pmf sums stop at 12 σ: the mass beyond is below 1e-32, under float rounding."""


def _laplace_p(scale: float) -> tuple[float, float]:
    """p = exp(-1/scale) and 1 - p, the latter without cancellation."""
    return math.exp(-1.0 / scale), -math.expm1(-1.0 / scale)


def _laplace_tail(scale: float, h: int) -> float:
    """P(|Z| > h) = 2·p^(h+1)/(1+p) for the discrete Laplace P(Z=k) ∝ p^|k|."""
    p, _ = _laplace_p(scale)
    return 2.0 * math.exp(-(h + 1) / scale) / (1.0 + p)


def _laplace_ci(scale: float, confidence: float) -> int:
    p, _ = _laplace_p(scale)
    alpha = 1.0 - confidence
    # Solve 2·p^(h+1)/(1+p) <= α for h, then fix the float rounding of the solution exactly.
    h = max(0, math.ceil(-scale * math.log(alpha * (1.0 + p) / 2.0)) - 1)
    while h > 0 and _laplace_tail(scale, h - 1) <= alpha:
        h -= 1
    while _laplace_tail(scale, h) > alpha:
        h += 1
    return h


def _gaussian_weights(scale: float) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """exp(-k²/(2σ²)) for k = 0 .. 12σ (unnormalised pmf of the discrete Gaussian on k >= 0)."""
    k = np.arange(0, math.ceil(_TAIL_SIGMAS * scale) + 2, dtype=np.float64)
    return np.exp(-(k * k) / (2.0 * scale * scale))


def _gaussian_norm(w: np.ndarray[tuple[int], np.dtype[np.float64]]) -> float:
    """Σ_k exp(-k²/(2σ²)) over all integers k, from the weights of k >= 0."""
    return float(w[0]) + 2.0 * math.fsum(w[1:])


def _gaussian_ci_exact(scale: float, confidence: float) -> int:
    w = _gaussian_weights(scale)
    total = _gaussian_norm(w)
    covered = (w[0] + 2.0 * np.cumsum(w) - 2.0 * w[0]) / total  # P(|Z| <= h) for h = 0, 1, ...
    return int(np.argmax(covered >= confidence))


def _erfcinv(value: float) -> float:
    """The inverse of ``math.erfc`` on (0, 2): erfc(x) = 2·(1 - Φ(x√2))."""
    return -NormalDist().inv_cdf(value / 2.0) / math.sqrt(2.0)


def _gaussian_ci_bound(scale: float, confidence: float) -> int:
    """Smallest h whose *lower bound* on P(|Z| <= h) reaches ``confidence`` (large scales).

    With f(k) = exp(-k²/2σ²) decreasing on k >= 0: the tail sum over k > h is at most
    ∫_h^∞ f = σ·sqrt(π/2)·erfc(h/(σ√2)) and the normaliser 1 + 2·Σ_{k>=1} f(k) is at least
    1 + σ·sqrt(2π)·erfc(1/(σ√2)). The result is never below the exact half-width and, for
    σ > 10 000, exceeds it by at most one unit (the bounds differ by f(h)/normaliser < 1e-4).
    """
    alpha = 1.0 - confidence
    norm_low = 1.0 + scale * math.sqrt(2.0 * math.pi) * math.erfc(1.0 / (scale * math.sqrt(2)))

    def uncovered(h: int) -> float:
        tail = scale * math.sqrt(math.pi / 2.0) * math.erfc(h / (scale * math.sqrt(2.0)))
        return float(2.0 * tail / norm_low)

    target = alpha * norm_low / (scale * math.sqrt(2.0 * math.pi))
    h = max(0, math.ceil(scale * math.sqrt(2.0) * _erfcinv(target)))
    while h > 0 and uncovered(h - 1) <= alpha:
        h -= 1
    while uncovered(h) > alpha:
        h += 1
    return h


def ci_half_width(mechanism: Mechanism, scale: float, confidence: float = CONFIDENCE) -> int:
    """Smallest integer h with P(|Z| <= h) >= ``confidence`` for one cell's noise Z.

    Discrete Laplace (P(Z=k) ∝ exp(-|k|/scale)): exact, from the closed form
    P(|Z| > h) = 2·p^(h+1)/(1+p), p = exp(-1/scale). Discrete Gaussian (P(Z=k) ∝
    exp(-k²/(2·scale²))): an exact sum over the pmf up to :data:`EXACT_GAUSSIAN_SCALE_LIMIT`;
    above it, the rigorous bound of :func:`_gaussian_ci_bound` (never too small).
    """
    if not 0 < confidence < 1:
        msg = f"Confidence must lie strictly between 0 and 1; got {confidence!r}."
        raise ValueError(msg)
    if mechanism == "discrete_laplace":
        return _laplace_ci(scale, confidence)
    if scale <= EXACT_GAUSSIAN_SCALE_LIMIT:
        return _gaussian_ci_exact(scale, confidence)
    return _gaussian_ci_bound(scale, confidence)


def expected_abs_error(mechanism: Mechanism, scale: float) -> float:
    """E|Z| of one cell's noise: 2p/(1-p²) (discrete Laplace); a pmf sum (discrete Gaussian).

    For discrete-Gaussian scales above :data:`EXACT_GAUSSIAN_SCALE_LIMIT` the continuous value
    σ·sqrt(2/π) is returned (relative difference below 1e-8 there).
    """
    if mechanism == "discrete_laplace":
        p, one_minus_p = _laplace_p(scale)
        return 2.0 * p / (one_minus_p * (1.0 + p))
    if scale > EXACT_GAUSSIAN_SCALE_LIMIT:
        return scale * math.sqrt(2.0 / math.pi)
    w = _gaussian_weights(scale)
    k = np.arange(w.size, dtype=np.float64)
    return 2.0 * math.fsum(k * w) / _gaussian_norm(w)


def noise_std(mechanism: Mechanism, scale: float) -> float:
    """Standard deviation of one cell's noise: sqrt(2p)/(1-p) (discrete Laplace); a pmf sum
    (discrete Gaussian, at most ``scale``; ``scale`` itself above the exact limit)."""
    if mechanism == "discrete_laplace":
        p, one_minus_p = _laplace_p(scale)
        return math.sqrt(2.0 * p) / one_minus_p
    if scale > EXACT_GAUSSIAN_SCALE_LIMIT:
        return scale
    w = _gaussian_weights(scale)
    k = np.arange(w.size, dtype=np.float64)
    return math.sqrt(2.0 * math.fsum(k * k * w) / _gaussian_norm(w))
