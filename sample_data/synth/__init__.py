"""The synthetic country generator: a realistic operator export with its ground truth.

Modules:
    config      -- :class:`SynthConfig`, every parameter of a synthetic export.
    country     -- geography: shape, cities, nested zones, cell sites and sectors.
    population  -- subscribers: ids, homes, work places, anchors, activity, relocations.
    itinerary   -- each subscriber-day's true stays (commutes, visits, scenarios).
    events      -- CDR events and app GPS fixes along the itineraries.
    corruption  -- error injection, recorded in the truth.
    generate    -- :func:`generate`: writes everything, day by day.
"""

from sample_data.synth.config import SynthConfig
from sample_data.synth.generate import Summary, generate

__all__ = ["Summary", "SynthConfig", "generate"]
