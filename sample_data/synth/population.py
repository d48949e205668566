"""Subscribers: identifiers, homes, work places, other anchors, activity, relocations.

Subscribers are generated in fixed chunks, each from its own seed, so any chunk can be rebuilt on
demand (the generator rebuilds them day after day instead of keeping them: memory stays bounded
whatever the number of subscribers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sample_data.synth.config import CHUNK_SUBSCRIBERS

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sample_data.synth.config import SynthConfig
    from sample_data.synth.country import Country

MSISDN_PREFIX = "999"  # E.164 code reserved and unassigned: no real number is ever generated
NO_RELOCATION = 1 << 30
COMMUTER_SHARE = 0.62
LOCAL_WORK_SHARE = 0.35
WORK_DECAY_KM = 25.0
OTHER_ANCHOR_MEAN_KM = 3.5
LOCAL_WORK_MEAN_KM = 2.0
ACTIVITY_MEDIAN_PER_DAY = 10.0
ACTIVITY_LOG_SIGMA = 1.15


@dataclass(frozen=True)
class Subscribers:
    """One chunk of subscribers. Points are plane kilometres; cells are rows of the cell table."""

    index: NDArray[np.int64]
    msisdn: pa.StringArray
    device_id: pa.StringArray
    has_gps: NDArray[np.bool_]
    rate: NDArray[np.float64]
    commuter: NDArray[np.bool_]
    home_xy: NDArray[np.float64]
    new_home_xy: NDArray[np.float64]
    relocation_day: NDArray[np.int64]
    work_xy: NDArray[np.float64]
    other_xy: NDArray[np.float64]
    """Shape (n, 2, 2): two other anchors per subscriber."""
    home_cell: NDArray[np.int64]
    new_home_cell: NDArray[np.int64]
    work_cell: NDArray[np.int64]
    other_cell: NDArray[np.int64]
    """Shape (n, 2)."""

    @property
    def size(self) -> int:
        """Number of subscribers in the chunk."""
        return int(self.index.size)


def msisdns(index: NDArray[np.int64]) -> pa.StringArray:
    """Distinct MSISDN-like numbers for subscriber indices (an affine bijection mod 10^8)."""
    number = (index * 48_271 + 12_345_679) % 100_000_000
    digits = pc.utf8_lpad(pa.array(number).cast(pa.string()), width=8, padding="0")
    return pc.binary_join_element_wise(MSISDN_PREFIX, digits, "")


def _offset(
    rng: np.random.Generator, country: Country, xy: NDArray[np.float64], mean_km: float
) -> NDArray[np.float64]:
    """Points at an exponential distance in a uniform direction; kept inside the country."""
    angle = rng.uniform(0, 2 * np.pi, len(xy))
    dist = rng.exponential(mean_km, len(xy))
    out = xy + np.column_stack([np.cos(angle), np.sin(angle)]) * dist[:, None]
    outside = ~country.contains(out[:, 0], out[:, 1])
    out[outside] = xy[outside]
    return out


def evacuated_zone(country: Country) -> str:
    """The admin3 zone emptied by the ``evacuation`` scenario: the second city's centre."""
    cell = country.serving_cell(country.cities.x[1:2], country.cities.y[1:2])
    return str(country.cell_admin3[cell[0]])


def build_chunk(config: SynthConfig, country: Country, chunk: int) -> Subscribers:
    """Rebuild chunk ``chunk`` of the subscribers (deterministic for the config's seed)."""
    first = chunk * CHUNK_SUBSCRIBERS
    n = min(CHUNK_SUBSCRIBERS, config.subscribers - first)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1, chunk]))
    index = np.arange(first, first + n, dtype=np.int64)

    home = np.column_stack(country.sample_points(rng, n))
    commuter = rng.random(n) < COMMUTER_SHARE
    cities = country.cities
    dist = np.hypot(home[:, :1] - cities.x[None, :], home[:, 1:] - cities.y[None, :])
    attraction = cities.weight[None, :] * np.exp(-dist / WORK_DECAY_KM)
    attraction /= attraction.sum(axis=1, keepdims=True)
    pick = (attraction.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1)
    pick = np.minimum(pick, cities.weight.size - 1)
    city_work = np.column_stack(
        [
            cities.x[pick] + rng.normal(0, 1, n) * cities.sigma_km[pick] * 0.5,
            cities.y[pick] + rng.normal(0, 1, n) * cities.sigma_km[pick] * 0.5,
        ]
    )
    inside = country.contains(city_work[:, 0], city_work[:, 1])
    local_work = _offset(rng, country, home, LOCAL_WORK_MEAN_KM)
    work = np.where(((rng.random(n) < LOCAL_WORK_SHARE) | ~inside)[:, None], local_work, city_work)
    other = np.stack([_offset(rng, country, home, OTHER_ANCHOR_MEAN_KM) for _ in range(2)], axis=1)

    rate = np.clip(
        rng.lognormal(np.log(ACTIVITY_MEDIAN_PER_DAY), ACTIVITY_LOG_SIGMA, n), 0.2, 800.0
    )
    has_gps = rng.random(n) < config.gps_share
    raw = rng.bytes(16 * n)
    device_id = pa.array(
        [raw[16 * i : 16 * i + 16].hex() if has_gps[i] else None for i in range(n)], pa.string()
    )

    relocation_day = np.full(n, NO_RELOCATION, dtype=np.int64)
    if config.days > 1:
        moving = rng.random(n) < config.relocation_share
        relocation_day[moving] = rng.integers(1, config.days, int(moving.sum()))
    new_home = np.column_stack(country.sample_points(rng, n))
    home_cell = country.serving_cell(home[:, 0], home[:, 1])
    if config.scenario == "evacuation":
        zone = evacuated_zone(country)
        evacuees = country.cell_admin3[home_cell] == zone
        relocation_day[evacuees] = (config.effective_scenario_start - config.start).days
        for _ in range(20):
            landing = country.cell_admin3[country.serving_cell(new_home[:, 0], new_home[:, 1])]
            redo = evacuees & (landing == zone)
            if not redo.any():
                break
            new_home[redo] = np.column_stack(country.sample_points(rng, int(redo.sum())))

    return Subscribers(
        index=index,
        msisdn=msisdns(index),
        device_id=device_id,
        has_gps=has_gps,
        rate=rate,
        commuter=commuter,
        home_xy=home,
        new_home_xy=new_home,
        relocation_day=relocation_day,
        work_xy=work,
        other_xy=other,
        home_cell=home_cell,
        new_home_cell=country.serving_cell(new_home[:, 0], new_home[:, 1]),
        work_cell=country.serving_cell(work[:, 0], work[:, 1]),
        other_cell=np.column_stack(
            [country.serving_cell(other[:, k, 0], other[:, k, 1]) for k in range(2)]
        ),
    )
