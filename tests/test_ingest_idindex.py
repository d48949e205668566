"""The per-file id index: exact positions, empty ids, refused unknown ids, hash collisions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.ingest import idindex
from aggregation.ingest.idindex import EMPTY, IdIndex
from schemas.errors import InternalError


@settings(deadline=None)  # the first call compiles the lookup
@given(
    st.lists(st.text(max_size=12), min_size=1, max_size=200, unique=True),
    st.lists(st.integers(min_value=-1, max_value=400), max_size=300),
)
def test_positions_are_those_of_a_join(ids: list[str], picks: list[int]) -> None:
    table = pl.Series("id", ids)
    rows = pl.Series("raw", [ids[p % len(ids)] if p >= 0 else None for p in picks], pl.String)
    joined = (
        rows.to_frame()
        .join(table.to_frame().with_row_index("pos"), left_on="raw", right_on="id", how="left")
        .select(pl.col("pos").cast(pl.UInt32))
        .to_series()
    )
    got = IdIndex(table).positions(rows, "pos")
    assert got.dtype == pl.UInt32
    assert got.to_list() == joined.to_list()


def test_an_id_outside_the_table_is_refused() -> None:
    index = IdIndex(pl.Series(["a", "b"]))
    with pytest.raises(InternalError, match="not among the file's ids"):
        index.positions(pl.Series(["a", "c"]), "pos")


def test_repeated_or_empty_ids_are_refused() -> None:
    with pytest.raises(InternalError, match="repeated, or their hashes collide"):
        IdIndex(pl.Series(["a", "b", "a"]))
    with pytest.raises(InternalError, match="non-null"):
        IdIndex(pl.Series(["a", None]))


def test_a_collision_is_detected_and_the_next_seed_used(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = np.zeros(8, dtype=np.uint64)
    slots = np.full(8, EMPTY, dtype=np.int32)
    assert idindex._build(np.array([3, 11, 3], dtype=np.uint64), keys, slots) == 2

    real = IdIndex._hashes

    def colliding_first_seed(ids: pl.Series, seed: int) -> np.ndarray:
        hashes = real(ids, seed).copy()
        if seed == idindex.SEEDS[0]:
            hashes[1] = hashes[0]  # "b" collides with "a" under the first seed only
        return hashes

    monkeypatch.setattr(IdIndex, "_hashes", staticmethod(colliding_first_seed))
    index = IdIndex(pl.Series(["a", "b", "c"]))
    assert index.positions(pl.Series(["c", "b", "a", None]), "p").to_list() == [2, 1, 0, None]
    with pytest.raises(InternalError, match="collide under every seed"):
        IdIndex(pl.Series(["a", "b"]), seeds=idindex.SEEDS[:1])
