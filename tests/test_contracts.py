"""The data contracts: documented, self-consistent, and strict when validating."""

from __future__ import annotations

import pyarrow as pa
import pytest

from schemas import geography, raw, staged, truth
from schemas.contract import Column, Contract, ContractError

ALL_CONTRACTS = [
    raw.RAW_CDR,
    raw.RAW_GPS,
    geography.ZONES,
    geography.CELLS,
    staged.STAGED_EVENTS,
    truth.TRUE_SUBSCRIBERS,
    truth.TRUE_STAYS,
    truth.TRUE_SUBSCRIBER_DAYS,
    truth.INJECTED_ERRORS,
]


@pytest.mark.parametrize("contract", ALL_CONTRACTS, ids=lambda c: c.name)
def test_every_column_is_documented_in_the_arrow_schema(contract: Contract) -> None:
    schema = contract.schema
    assert schema.metadata[b"contract"] == contract.name.encode()
    for f in schema:
        assert f.metadata[b"description"].strip()
        col = contract.column(f.name)
        assert f.nullable == col.nullable


@pytest.mark.parametrize("contract", ALL_CONTRACTS, ids=lambda c: c.name)
def test_empty_table_conforms(contract: Contract) -> None:
    contract.validate(contract.empty())


def test_timestamps_state_their_time_zone() -> None:
    assert raw.RAW_GPS.column("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert raw.RAW_CDR.column("event_time").type.tz is None  # operator local wall-clock time
    assert staged.STAGED_EVENTS.column("event_time").type.tz == "UTC"


def test_validation_names_the_source_and_every_problem() -> None:
    table = pa.table(
        {
            "record_id": ["1", "2"],
            "msisdn": ["999000001", None],
            "event_time": pa.array([0, 1], pa.timestamp("ms")),
            "cell_id": ["a", "b"],
            "event_type": ["call", "fax"],
            "direction": ["in", None],
            "duration_s": pa.array([1, None], pa.int32()),
            "volume_bytes": pa.array([None, None], pa.int64()),
        }
    )
    with pytest.raises(ContractError) as err:
        raw.RAW_CDR.validate(table, source="cdr_2026-03-02.csv")
    text = str(err.value)
    assert "cdr_2026-03-02.csv" in text
    assert "'msisdn' holds 1 nulls" in text
    assert "'fax'" in text


def test_wrong_type_and_missing_and_extra_columns_are_reported() -> None:
    table = pa.table({"device_id": ["x"], "timestamp": ["2026-01-01"], "junk": [1]})
    problems = raw.RAW_GPS.problems(table)
    assert any("'timestamp' has type string" in p for p in problems)
    assert any("missing column 'lat'" in p for p in problems)
    assert any("unexpected columns ['junk']" in p for p in problems)


def test_contract_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a description"):
        Column("x", pa.int8(), "  ")
    with pytest.raises(ValueError, match="duplicate column names"):
        Contract("c", "d", (Column("x", pa.int8(), "a"), Column("x", pa.int8(), "b")))
    with pytest.raises(ValueError, match="key columns"):
        Contract("c", "d", (Column("x", pa.int8(), "a"),), key=("y",))


def test_markdown_lists_every_column() -> None:
    md = raw.RAW_CDR.markdown()
    for name in raw.RAW_CDR.names:
        assert f"`{name}`" in md
