"""Each subscriber-day's true itinerary: up to four slots (home, A, B, home) in local time.

Weekdays: most commuters go to work (and sometimes somewhere else on the way back); others may
pay one or two visits. Weekends: fewer commutes, more visits. A ``lockdown`` cuts commutes and
visits from its start. Slots of zero length are kept in the arrays (so everything stays
vectorised) and dropped when the stays are written to the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import datetime as dt

    from numpy.typing import NDArray

    from sample_data.synth.config import SynthConfig
    from sample_data.synth.population import Subscribers

HOUR = 3600
DAY = 86_400
SLOTS = 4
HOME, WORK, OTHER = 0, 1, 2
ANCHOR_NAMES = ("home", "work", "other")
SATURDAY = 5
LOCKDOWN_COMMUTE = 0.35
LOCKDOWN_VISIT = 0.3


@dataclass(frozen=True)
class DayPlan:
    """Slots of one day for a chunk: cell row, start second, anchor kind and position (km)."""

    cell: NDArray[np.int64]
    start: NDArray[np.int64]
    anchor: NDArray[np.int8]
    xy: NDArray[np.float64]
    """Shape (n, SLOTS, 2)."""
    home_cell: NDArray[np.int64]

    def slot_at(self, sub: NDArray[np.int64], second: NDArray[np.int64]) -> NDArray[np.int64]:
        """The slot each (subscriber, second of day) falls in."""
        return np.asarray((second[:, None] >= self.start[sub, 1:]).sum(axis=1), dtype=np.int64)


def plan_day(
    config: SynthConfig, subs: Subscribers, day: int, date: dt.date, rng: np.random.Generator
) -> DayPlan:
    """Draw the day's plan for every subscriber of the chunk."""
    n = subs.size
    weekend = date.weekday() >= SATURDAY
    lockdown = config.scenario == "lockdown" and date >= config.effective_scenario_start
    commute_p = (0.1 if weekend else 0.88) * (LOCKDOWN_COMMUTE if lockdown else 1.0)
    visit_p = (0.7 if weekend else 0.45) * (LOCKDOWN_VISIT if lockdown else 1.0)
    after_work_p = 0.25 * (LOCKDOWN_VISIT if lockdown else 1.0)

    moved = subs.relocation_day <= day
    home_xy = np.where(moved[:, None], subs.new_home_xy, subs.home_xy)
    home_cell = np.where(moved, subs.new_home_cell, subs.home_cell)

    commute = subs.commuter & (rng.random(n) < commute_p)
    visit = ~commute & (rng.random(n) < visit_p)
    after = commute & (rng.random(n) < after_work_p)
    second = visit & (rng.random(n) < 0.3)  # noqa: PLR2004 - share of two-visit days

    go = np.clip(rng.normal(7.75, 0.9, n), 5.0, 11.0) * HOUR
    back = go + np.clip(rng.normal(8.5, 1.2, n), 3.0, 11.0) * HOUR
    visit_at = rng.uniform(8.0, 18.0, n) * HOUR
    d1 = rng.uniform(1.0, 3.5, n) * HOUR
    d2 = rng.uniform(0.5, 2.0, n) * HOUR

    s1 = np.where(commute, go, np.where(visit, visit_at, 0.0))
    s2 = np.where(commute, back, np.where(visit, visit_at + d1, 0.0))
    s3 = np.where(
        commute,
        back + np.where(after, d1 / 2, 0.0),
        np.where(visit, visit_at + d1 + np.where(second, d2, 0.0), 0.0),
    )
    s3 = np.minimum(s3, DAY - HOUR // 4)
    s2 = np.minimum(s2, s3)
    s2 = np.where(commute & ~after, s3, s2)
    s2 = np.where(visit & ~second, s3, s2)
    start = np.column_stack([np.zeros(n), s1, s2, s3]).astype(np.int64)

    a1 = np.where(commute, WORK, np.where(visit, OTHER, HOME))
    a2 = np.where(commute, OTHER, np.where(visit, OTHER, HOME))
    anchor = np.column_stack([np.zeros(n), a1, a2, np.zeros(n)]).astype(np.int8)
    c1 = np.where(commute, subs.work_cell, np.where(visit, subs.other_cell[:, 0], home_cell))
    c2 = np.where(commute, subs.other_cell[:, 0], subs.other_cell[:, 1])
    c2 = np.where(commute | visit, c2, home_cell)
    cell = np.column_stack([home_cell, c1, c2, home_cell])
    x1 = np.where(
        commute[:, None], subs.work_xy, np.where(visit[:, None], subs.other_xy[:, 0], home_xy)
    )
    x2 = np.where(commute[:, None], subs.other_xy[:, 0], subs.other_xy[:, 1])
    x2 = np.where((commute | visit)[:, None], x2, home_xy)
    xy = np.stack([home_xy, x1, x2, home_xy], axis=1)
    return DayPlan(cell=cell, start=start, anchor=anchor, xy=xy, home_cell=home_cell)


@dataclass(frozen=True)
class Stays:
    """Merged stays (consecutive slots at the same place joined, empty slots dropped)."""

    sub: NDArray[np.int64]
    seq: NDArray[np.int64]
    start: NDArray[np.int64]
    end: NDArray[np.int64]
    anchor: NDArray[np.int8]
    cell: NDArray[np.int64]
    xy: NDArray[np.float64]
    """Position of the place (km)."""


def stays(plan: DayPlan) -> Stays:
    """The day's stays: what an ideal observer would record."""
    n = plan.start.shape[0]
    end = np.column_stack([plan.start[:, 1:], np.full(n, DAY)])
    keep = (end > plan.start).ravel()
    sub = np.repeat(np.arange(n), SLOTS)[keep]
    cell = plan.cell.ravel()[keep]
    start = plan.start.ravel()[keep]
    stop = end.ravel()[keep]
    anchor = plan.anchor.ravel()[keep]
    xy = plan.xy.reshape(-1, 2)[keep]
    new = np.ones(sub.size, dtype=bool)
    moved = (xy[1:] != xy[:-1]).any(axis=1)
    new[1:] = (sub[1:] != sub[:-1]) | (cell[1:] != cell[:-1]) | moved
    first = np.flatnonzero(new)
    last = np.append(first[1:], sub.size) - 1
    group_sub = sub[first]
    seq_start = np.flatnonzero(np.append(True, group_sub[1:] != group_sub[:-1]))
    seq = np.arange(first.size) - np.repeat(seq_start, np.diff(np.append(seq_start, first.size)))
    return Stays(
        sub=group_sub,
        seq=seq.astype(np.int64),
        start=start[first],
        end=stop[last],
        anchor=anchor[first],
        cell=cell[first],
        xy=xy[first],
    )
