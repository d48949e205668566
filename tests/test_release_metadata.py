"""The typed ``metadata.json`` (schemas/release_metadata.py): it reads every release's file and
writes it back to the same text, reads files of earlier versions, and names the file and the key
of a file that is not a release's metadata.

``tests/data/release_metadata/`` holds files written by the code before the type existed (an
``od_trips`` release of a public key set with margins and DP totals, one of a private key set,
a GPS release and one made under an agreement)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from aggregation.export.catalog import ReleaseCatalog
from aggregation.release import open_context, release, stored_release
from aggregation.release.publish import METADATA_FILE
from schemas.indicators import Indicator, Period
from schemas.privacy import PrivacyUnit, Sensitivity
from schemas.release import METADATA_JSON_SCHEMA, ReleaseSpec
from schemas.release_metadata import (
    LEGACY_KEYS,
    MetadataError,
    ReleaseMetadata,
)
from tests.conftest import START

FIXTURES = sorted((Path(__file__).parent / "data" / "release_metadata").glob("*.json"))


def _document(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_a_file_written_before_the_type_reads_and_writes_back_the_same(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    meta = ReleaseMetadata.read(path)
    assert meta.as_json() == text
    # key for key, in the file's order (the API and the CLI return to_dict())
    assert list(meta.to_dict().items()) == list(json.loads(text).items())
    assert ReleaseMetadata.parse(meta.to_dict()) == meta
    assert pickle.loads(pickle.dumps(meta)) == meta  # noqa: S301 - our own bytes (Dask, Prefect)
    jsonschema.validate(meta.to_dict(), METADATA_JSON_SCHEMA)


def test_the_fixtures_cover_margins_totals_private_keys_gps_and_agreements() -> None:
    metas = [ReleaseMetadata.read(p) for p in FIXTURES]
    assert any(m.margins is not None and m.totals is not None for m in metas)
    assert any(m.margins is None and m.totals is None for m in metas)
    assert any(m.source == "gps" and m.privacy_unit == PrivacyUnit("device", "day") for m in metas)
    assert any(m.agreement is not None for m in metas)


def test_typed_values_of_a_file() -> None:
    meta = ReleaseMetadata.read(next(p for p in FIXTURES if p.stem == "od_trips_public"))
    assert meta.indicator is Indicator.OD_TRIPS
    assert meta.period == Period(START, START)
    assert meta.scope.days == Period(START, START)
    assert meta.scope.windows_charged == (START,)
    assert meta.privacy_unit == PrivacyUnit("subscriber", "day")
    assert meta.sensitivity == Sensitivity(l1=4, l2=4.0, linf=4)
    assert meta.cells_released + meta.cells_suppressed == meta.cells_total == 870
    assert meta.totals is not None
    assert meta.totals.share == 0.2
    assert meta.margins is not None
    assert meta.margins.margins == ("date", "date×origin", "date×destination")
    assert set(meta.files) == {"data.parquet", "data.csv", "margins.parquet", "margins.csv"}
    assert meta.agreement is None
    assert meta.absent == frozenset()


def _older(document: dict[str, Any], *dropped: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in dropped}


# What releases of earlier versions lacked (git log -p aggregation/release/run.py): the first
# releases (0e01009) also stated their input fingerprint; the reliability bar and margins came
# with 75fe4bd, GPS sources (source, accounting) with cab4d0b, agreements with 73edc43, DP totals
# with d4a4c9e.
ERAS = {
    "first releases": (*LEGACY_KEYS, "margins", "totals"),
    "before GPS": ("source", "accounting", "agreement", "totals"),
    "before agreements": ("agreement", "totals"),
    "before DP totals": ("totals",),
}


@pytest.mark.parametrize("era", list(ERAS))
def test_files_of_earlier_versions_are_read_with_what_they_meant(era: str) -> None:
    current = _document(next(p for p in FIXTURES if p.stem == "od_trips_public"))
    document = _older(current, *ERAS[era])
    if era == "first releases":
        document["input_fingerprint"] = "ab" * 32
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    meta = ReleaseMetadata.parse(json.loads(text))
    assert meta.as_json() == text  # written back as it was: nothing added
    assert meta.absent == frozenset(LEGACY_KEYS) & set(ERAS[era])
    assert meta.totals is None
    if "source" in ERAS[era]:
        assert meta.source == "cdr"
    if "agreement" in ERAS[era]:
        assert meta.agreement is None
    if "reliability" in ERAS[era]:  # k alone
        assert meta.reliability == 0.0
        assert meta.publication_threshold == meta.k
        assert meta.margins is None
        assert meta.input_fingerprint == "ab" * 32


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (lambda d: d.pop("epsilon"), "epsilon", "is missing"),
        (lambda d: d.update(k="10"), "k", "is invalid: '10' (not an integer)"),
        (lambda d: d.update(k=True), "k", "is invalid: True (not an integer)"),
        (lambda d: d.update(level="admin9"), "level", "is invalid: 'admin9'"),
        (lambda d: d["sensitivity"].pop("l1"), "sensitivity.l1", "is missing"),
        (lambda d: d["period"].update(start="2026-13-01"), "period.start", "is invalid"),
        (lambda d: d["columns"][0].pop("type"), "columns.type", "is missing"),
        (lambda d: d["totals"].update(share="a fifth"), "totals.share", "is invalid"),
        (lambda d: d.update(agreement={"id": "transport"}), "agreement.version", "is missing"),
        (lambda d: d.update(privacy_unit="person-day"), "privacy_unit", "is invalid"),
        (lambda d: d.update(surprise=1), "surprise", "is not a key this object may have"),
        (lambda d: d.update(scope=[]), "scope", "is invalid: [] (not a JSON object)"),
    ],
)
def test_a_file_that_is_not_a_releases_metadata_is_named_with_its_key(
    tmp_path: Path, change: Any, key: str, problem: str
) -> None:
    document = _document(next(p for p in FIXTURES if p.stem == "od_trips_public"))
    change(document)
    path = tmp_path / METADATA_FILE
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(MetadataError) as caught:
        ReleaseMetadata.read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: key {key!r} {problem}")
    assert "not a release's metadata" in message
    assert "Restore the file from a backup" in message


def test_a_file_that_is_not_json_or_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / METADATA_FILE
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(MetadataError, match=f"^{path} is not JSON"):
        ReleaseMetadata.read(path)
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(MetadataError, match=f"^{path} is not a JSON object"):
        ReleaseMetadata.read(path)


def test_a_release_writes_its_metadata_through_the_type_and_reads_it_back(
    workspace: Path,
) -> None:
    ctx = open_context(workspace)
    made = release(ctx, ReleaseSpec(Indicator.OD_TRIPS, START, START, epsilon=1.0, k=5))
    path = made.directory / METADATA_FILE
    text = path.read_text(encoding="utf-8")
    assert made.metadata.as_json() == text
    assert list(made.metadata.to_dict().items()) == list(json.loads(text).items())
    assert ReleaseMetadata.read(path) == made.metadata
    (entry,) = ctx.ledger.entries()
    stored = stored_release(ctx, entry)
    assert stored.reused
    assert stored.metadata == made.metadata
    assert stored.metadata.as_json() == text
    # A release folder whose metadata.json is not a release's metadata: the catalog ignores it
    # and says why; the release door names the file and the key.
    # The catalog has read the file once (it keeps what it parsed, per file stamp): a file
    # changed since is read again, never served from what was kept.
    (record,) = ReleaseCatalog.open(workspace).records
    assert record.metadata == made.metadata
    document = json.loads(text)
    del document["epsilon"]
    path.write_text(json.dumps(document), encoding="utf-8")
    catalog = ReleaseCatalog.open(workspace)
    assert catalog.records == ()
    (ignored,) = catalog.ignored
    assert f"{path}: key 'epsilon' is missing" in ignored
    with pytest.raises(MetadataError, match="key 'epsilon' is missing"):
        stored_release(ctx, entry)
