"""Keyed pseudonyms and the secret: where it comes from, that it is required, never shown."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregation.ingest import Pseudonymiser, Secret, SecretError, load_secret
from aggregation.ingest.pseudonymise import Utf8
from schemas.workspace import PseudonymisationSettings

KEY = b"k" * 32


def reference(key: bytes, namespace: str, raw_id: str) -> str:
    return hmac.new(key, (namespace + raw_id).encode(), hashlib.sha256).hexdigest()[:32]


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30))
def test_pseudonyms_are_the_documented_hmac(ids: list[str]) -> None:
    text = Utf8.of(pl.Series(ids, dtype=pl.String))
    digits, shards = Pseudonymiser(Secret(KEY), shards=7).keys(text.data, text.offsets, "cdr")
    assert len(digits) == len(shards) == len(ids)
    for raw, row, shard in zip(ids, digits, shards.tolist(), strict=True):
        pseudonym = bytes(row).decode()
        assert pseudonym == reference(KEY, "cdr:", raw)
        assert shard == int(pseudonym[:8], 16) % 7


def test_the_secret_never_shows() -> None:
    secret = Secret(KEY)
    assert "k" * 8 not in repr(secret)
    assert "k" * 8 not in str(secret)
    assert "k" * 8 not in repr(Pseudonymiser(secret, 16))
    assert secret.key_id == Secret(KEY).key_id != Secret(b"j" * 32).key_id
    assert "k" * 8 not in secret.key_id


def test_refuses_to_run_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="ingest refuses to run without one") as info:
        load_secret(PseudonymisationSettings(), tmp_path, {})
    assert info.value.exit_code == 2
    assert "MOBILITY_SECRET" in str(info.value)


def test_refuses_a_short_secret_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="5 bytes long") as info:
        load_secret(PseudonymisationSettings(), tmp_path, {"MOBILITY_SECRET": "hunter"[:5]})
    assert "hunte" not in str(info.value)


def test_environment_first_then_the_secret_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("f" * 40 + "\n")
    settings = PseudonymisationSettings("MY_KEY", Path("key.txt"))
    from_file = load_secret(settings, tmp_path, {})
    assert from_file.key_id == Secret(b"f" * 40).key_id  # trailing newline dropped
    from_env = load_secret(settings, tmp_path, {"MY_KEY": "e" * 40})
    assert from_env.key_id == Secret(b"e" * 40).key_id
    assert load_secret(settings, tmp_path, {"MY_KEY": ""}).key_id == from_file.key_id


def test_unreadable_secret_file_names_the_file(tmp_path: Path) -> None:
    settings = PseudonymisationSettings(secret_file=tmp_path / "missing.key")
    with pytest.raises(SecretError, match=r"missing\.key"):
        load_secret(settings, tmp_path, {})
