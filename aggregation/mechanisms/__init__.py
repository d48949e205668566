"""DP mechanisms: the OpenDP measurements that add noise to bounded aggregates, and what they cost.

Every published number passes through one of these OpenDP core measurements; nothing here samples
noise itself (no ``numpy.random``, no home-made sampler):

- **Public key sets** (every zone or zone pair is published, whether or not anyone was seen
  there): the whole vector of exact bounded integer aggregates goes through one measurement,
  ``dp.m.make_laplace`` over ``vector_domain(atom_domain(T="i64"))`` with ``l1_distance`` (discrete
  Laplace, pure ε-DP, the default) or ``dp.m.make_gaussian`` with ``l2_distance`` (discrete
  Gaussian, ρ-zCDP). See :mod:`.vector`.
- **Private key sets** (the keys themselves reveal something: fine geographies, tower pairs): DP
  partition selection with ``dp.m.make_laplace_threshold`` / ``dp.m.make_gaussian_threshold``
  over a map of key → count; a key is published only if its noisy count reaches the threshold, and
  the δ of that test is accounted. See :mod:`.partitions`.

Each constructor picks the noise scale for the declared :class:`~schemas.privacy.Sensitivity` and
the requested budget, builds the measurement, and records the cost that the measurement's
privacy map returns (``meas.map(d_in)``), checked against the request. The resulting
:class:`VectorMechanism` / :class:`PartitionMechanism` explains itself (``.spec``: scale, cost,
expected error, CI half-width, from :mod:`.accuracy`) without touching data, and ``.release(...)``
invokes the very same measurement on the data: ``explain`` and the release share everything but
the invocation. :mod:`.opendp_maps` holds the OpenDP plumbing both kinds share.

Bounded sums (``mobility_distance``): each subscriber-day's distance is clipped to [0, U] as an
integer (metres or km) *before* aggregation, and each subscriber-day contributes to one home zone,
so adding or removing one privacy unit moves one cell by at most U: l1 = l2 = linf = U
(``schemas.indicators``). The sums then go through the same vector mechanism; a mean is
the post-processed ratio of the noisy sum and a separately released noisy count, and the two
releases' costs add up.
"""

from aggregation.mechanisms.accuracy import (
    CONFIDENCE,
    EXACT_GAUSSIAN_SCALE_LIMIT,
    ci_half_width,
    expected_abs_error,
    noise_std,
)
from aggregation.mechanisms.partitions import (
    PartitionMechanism,
    gaussian_threshold_for_epsilon,
    laplace_threshold,
    plan_partitions,
)
from aggregation.mechanisms.vector import (
    VectorMechanism,
    discrete_gaussian_for_epsilon,
    discrete_laplace,
    plan_vector,
)

__all__ = [
    "CONFIDENCE",
    "EXACT_GAUSSIAN_SCALE_LIMIT",
    "PartitionMechanism",
    "VectorMechanism",
    "ci_half_width",
    "discrete_gaussian_for_epsilon",
    "discrete_laplace",
    "expected_abs_error",
    "gaussian_threshold_for_epsilon",
    "laplace_threshold",
    "noise_std",
    "plan_partitions",
    "plan_vector",
]
