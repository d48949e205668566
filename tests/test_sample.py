"""The committed sample is exactly what the generator writes for its documented command."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sample_data.synth import SynthConfig, generate

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "sample"


def test_committed_sample_is_reproducible(tmp_path: Path) -> None:
    config = SynthConfig(
        subscribers=500, days=2, seed=42, error_rate=0.01, start=dt.date(2026, 3, 2)
    )
    generate(config, tmp_path)
    committed = json.loads((SAMPLE / "manifest.json").read_text())
    fresh = json.loads((tmp_path / "manifest.json").read_text())
    assert fresh == committed
