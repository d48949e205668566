"""The privacy ledger: charged before publishing, never overspent, idempotent, atomic, chained.

Noise specs are written out by hand here (the ledger stores them as given); that they come from
OpenDP's privacy maps is tested in ``test_mechanisms.py``.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import multiprocessing
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pytest

from aggregation.ledger import (
    GENESIS_HASH,
    Ledger,
    OutputFile,
    ReleaseRequest,
    canonical_entry_json,
    canonical_json,
    compute_entry_hash,
)
from schemas.budget_policy import BudgetPolicy
from schemas.errors import BudgetExceededError, InternalError, MobilityError
from schemas.privacy import NoiseSpec, PrivacyCost, PrivacyUnit, Sensitivity

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

DAY = date(2024, 3, 5)
OD_TRIPS = Sensitivity(l1=4, l2=4.0, linf=4)
SHA = "ab" * 32


def noise(epsilon: float, *, cost: PrivacyCost | None = None, **extra: Any) -> NoiseSpec:
    """A discrete-Laplace spec for od_trips (l1 = 4, scale = 4/ε), or with the given cost."""
    fields: dict[str, Any] = {
        "mechanism": "discrete_laplace",
        "scale": 4 / epsilon,
        "sensitivity": OD_TRIPS,
        "cost": cost or PrivacyCost(epsilon=epsilon, rho=epsilon * epsilon / 2),
        "confidence": 0.95,
        "ci_half_width": 1,
        "expected_abs_error": 1.0,
        "std_dev": 1.0,
    }
    return NoiseSpec(**(fields | extra))


def request(
    epsilon: float = 0.5,
    windows: tuple[date, ...] = (DAY,),
    *,
    run: int = 0,
    spec: NoiseSpec | None = None,
) -> ReleaseRequest:
    return ReleaseRequest(
        indicator="od_trips",
        parameters={"level": "admin2", "max_trips": 4, "run": run},
        windows=windows,
        unit=PrivacyUnit("subscriber", "day"),
        noise=spec if spec is not None else noise(epsilon),
        input_fingerprint="sha256:feed",
        code_version="0.1.0+test",
        k_threshold=10,
    )


def publish(ledger: Ledger, req: ReleaseRequest) -> None:
    with ledger.charge(req) as tx:
        tx.publish(outputs=[OutputFile("r/od.parquet", SHA)], cells_released=9, cells_suppressed=3)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.duckdb", BudgetPolicy())


# -- recording ------------------------------------------------------------------------------------


def test_a_published_release_records_everything(ledger: Ledger) -> None:
    req = request(0.5)
    with ledger.charge(req) as tx:
        assert not tx.reused
        assert tx.entry.status == "pending"
        # The charge is visible (and counted) while publication is under way.
        assert ledger.window_budgets([DAY])[0].epsilon_spent == 0.5
        final = tx.publish(
            outputs=[OutputFile("r/od.parquet", SHA)], cells_released=9, cells_suppressed=3
        )
    (entry,) = ledger.entries()
    assert entry == final
    assert entry.status == "published"
    assert entry.seq == 2  # seq 1 records the budget policy it was charged under
    (policy,) = ledger.policies()
    assert policy.seq == 1
    assert dict(policy.policy) == BudgetPolicy().as_dict()
    assert entry.publication is not None
    assert entry.publication.seq == 3  # publication is a record of its own
    assert entry.release_key == req.release_key
    assert entry.indicator == "od_trips"
    assert dict(entry.parameters) == {"level": "admin2", "max_trips": 4, "run": 0}
    assert entry.windows == (DAY,)
    assert entry.privacy_unit == "subscriber-day"
    assert entry.composition == "basic"
    assert entry.mechanism == "discrete_laplace"
    assert (entry.l1, entry.l2, entry.linf) == (4, 4.0, 4)
    assert entry.scale == 8.0  # l1 = 4, ε = 0.5
    assert (entry.epsilon, entry.delta, entry.rho) == (0.5, 0.0, 0.125)
    assert entry.k_threshold == 10
    assert (entry.cells_released, entry.cells_suppressed) == (9, 3)
    assert entry.outputs == (OutputFile("r/od.parquet", SHA),)
    assert entry.input_fingerprint == "sha256:feed"
    assert entry.code_version == "0.1.0+test"
    assert entry.created_at.tzinfo is UTC
    assert entry.published_at is not None
    assert entry.created_at <= entry.published_at <= datetime.now(UTC)
    assert ledger.entry(entry.entry_id) == entry


def test_a_release_reading_many_windows_charges_each_of_them(ledger: Ledger) -> None:
    month = tuple(date(2024, 3, 1) + timedelta(days=i) for i in range(31))
    publish(ledger, request(0.5, month))
    budgets = ledger.window_budgets()
    assert [b.window for b in budgets] == list(month)
    assert all(b.epsilon_spent == 0.5 and b.epsilon_left == 1.5 for b in budgets)
    assert ledger.rolling_budget(date(2024, 3, 30)).epsilon_spent == 15.0  # 30 days × 0.5


def test_partition_selection_charges_its_delta(ledger: Ledger) -> None:
    spec = noise(1.0, cost=PrivacyCost(epsilon=1.0, delta=9.3e-8), threshold=71, l0=4)
    publish(ledger, request(spec=spec))
    (entry,) = ledger.entries()
    assert entry.partition_threshold == spec.threshold
    assert entry.l0 == 4
    assert entry.delta == spec.cost.delta
    assert ledger.window_budgets([DAY])[0].delta_spent == spec.cost.delta


def test_zcdp_ledger_charges_rho(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "z.duckdb", BudgetPolicy(composition="zcdp"))
    cost = PrivacyCost(epsilon=1.3, delta=1e-7, rho=0.05)
    spec = noise(1.0, cost=cost, mechanism="discrete_gaussian", scale=4 / 0.1**0.5)
    publish(ledger, request(spec=spec))
    (budget,) = ledger.window_budgets([DAY])
    assert budget.rho_spent == spec.cost.rho
    assert ledger.entries()[0].composition == "zcdp"


def test_the_file_is_plain_duckdb_an_auditor_can_query(ledger: Ledger) -> None:
    publish(ledger, request(0.5))
    con = duckdb.connect(str(ledger.path), read_only=True)
    try:
        rows = con.execute(
            "SELECT indicator, epsilon, p.seq IS NOT NULL AS published, unnest(windows) "
            "FROM ledger_entries LEFT JOIN ledger_publications p USING (entry_id)"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("od_trips", 0.5, True, DAY)]


def test_reading_a_ledger_that_does_not_exist_yet_is_empty(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "none" / "ledger.duckdb", BudgetPolicy())
    assert ledger.entries() == []
    assert ledger.refusals() == []
    assert ledger.window_budgets([DAY])[0].epsilon_left == 2.0
    assert not ledger.path.exists()


# -- hash chain -----------------------------------------------------------------------------------


def test_every_record_forms_one_hash_chain(ledger: Ledger) -> None:
    for run in range(3):
        publish(ledger, request(0.25, run=run))
    with pytest.raises(BudgetExceededError):
        publish(ledger, request(1.5, run=9))
    links = ledger.chain()
    kinds = [link.kind for link in links]
    assert kinds == ["policy", *["charge", "publication"] * 3, "refusal"]
    assert [link.seq for link in links] == list(range(1, 9))
    assert links[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(links):
        assert after.prev_hash == before.record_hash
    assert all(link.intact for link in links)
    entries = ledger.entries()
    for entry in entries:
        assert entry.entry_hash == compute_entry_hash(entry)
        content = json.loads(canonical_entry_json(entry))
        assert "entry_hash" not in content
        assert content["prev_hash"] == entry.prev_hash


def test_tampering_with_a_stored_entry_breaks_its_hash(ledger: Ledger) -> None:
    publish(ledger, request(0.5))
    con = duckdb.connect(str(ledger.path))
    try:
        con.execute("UPDATE ledger_entries SET epsilon = 0.05")
    finally:
        con.close()
    (entry,) = ledger.entries()
    assert entry.epsilon == 0.05
    assert compute_entry_hash(entry) != entry.entry_hash


def test_canonical_json_is_the_documented_format() -> None:
    value = {
        "b": [1, 2.5, None, True],
        "a": "ε",
        "d": date(2024, 3, 5),
        "t": datetime(2024, 3, 5, 1, 2, 3, 4, tzinfo=UTC),
        "f": (1e-06, 1.0),
        "o": OutputFile("x.csv", SHA),
    }
    assert (
        canonical_json(value)
        == (
            '{"a":"ε","b":[1,2.5,null,true],"d":"2024-03-05","f":[1e-06,1.0],'
            f'"o":{{"path":"x.csv","sha256":"{SHA}"}},"t":"2024-03-05T01:02:03.000004+00:00"}}'
        ).encode()
    )
    with pytest.raises(ValueError, match="Out of range float"):
        canonical_json({"x": float("nan")})
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_json({"x": datetime(2024, 3, 5)})  # noqa: DTZ001 -- the naive value under test


# -- refusals -------------------------------------------------------------------------------------


def test_over_the_daily_cap_is_refused_and_nothing_is_spent(ledger: Ledger) -> None:
    publish(ledger, request(1.5, run=1))
    with pytest.raises(BudgetExceededError) as caught, ledger.charge(request(0.75, run=2)):
        pytest.fail("a refused release must not reach the publication block")
    message = str(caught.value)
    assert caught.value.exit_code == 3
    assert "Refused by the privacy budget: releasing 'od_trips' for 2024-03-05" in message
    assert (
        "window 2024-03-05: this release costs ε=0.75; the window has already spent ε=1.5 of "
        "its cap ε=2 (left: ε=0.5)"
    ) in message
    assert "Nothing was charged or published" in message
    assert len(ledger.entries()) == 1
    assert ledger.window_budgets([DAY])[0].epsilon_spent == 1.5
    (refusal,) = ledger.refusals()
    assert refusal.release_key == request(0.75, run=2).release_key
    assert refusal.epsilon == 0.75
    assert refusal.windows == (DAY,)
    assert "window 2024-03-05" in refusal.reason
    assert refusal.refusal_id in message


def test_over_the_rolling_cap_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.duckdb", BudgetPolicy(epsilon_rolling=5.0, rolling_days=7))
    for i in range(5):
        publish(ledger, request(1.0, (DAY + timedelta(days=i),)))
    late = (DAY + timedelta(days=6),)
    assert ledger.refusal_reasons(request(0.5, late))  # dry run: refused, writes nothing
    assert ledger.refusals() == []
    with pytest.raises(BudgetExceededError, match=r"7-day span 2024-03-0\d\.\.2024-03-\d\d: "):
        publish(ledger, request(0.5, late))
    assert len(ledger.entries()) == 5
    assert len(ledger.refusals()) == 1
    assert ledger.refusal_reasons(request(0.5, (DAY + timedelta(days=11),))) == []


# -- idempotency ----------------------------------------------------------------------------------


def test_rerunning_the_same_release_returns_it_without_charging(ledger: Ledger) -> None:
    req = request(2.0)
    publish(ledger, req)
    with ledger.charge(request(2.0)) as tx:  # same question, budget now exhausted
        assert tx.reused
        assert tx.entry == ledger.entries()[0]
        with pytest.raises(InternalError, match="reuse its stored files"):
            tx.publish(outputs=[], cells_released=0, cells_suppressed=0)
    assert len(ledger.entries()) == 1
    assert ledger.window_budgets([DAY])[0].epsilon_spent == 2.0
    assert ledger.refusal_reasons(req) == []


def test_a_different_question_gets_a_different_key() -> None:
    base = request(0.5)
    assert request(0.5).release_key == base.release_key
    assert request(0.25).release_key != base.release_key  # other noise
    assert request(0.5, run=1).release_key != base.release_key  # other parameters
    assert request(0.5, (DAY + timedelta(days=1),)).release_key != base.release_key


# -- atomicity ------------------------------------------------------------------------------------


def test_an_exception_before_publication_leaves_no_charge(ledger: Ledger) -> None:
    publish(ledger, request(0.5, run=1))
    spent_meanwhile: list[float] = []

    def fail_while_writing() -> None:
        with ledger.charge(request(1.0, run=2)):
            spent_meanwhile.append(ledger.window_budgets([DAY])[0].epsilon_spent)
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        fail_while_writing()
    assert spent_meanwhile == [1.5]
    assert len(ledger.entries()) == 1
    assert ledger.window_budgets([DAY])[0].epsilon_spent == 0.5
    publish(ledger, request(1.0, run=2))  # the re-run is charged normally, chain intact
    assert len(ledger.entries()) == 2
    links = ledger.chain()
    assert [link.seq for link in links] == list(range(1, len(links) + 1))
    assert all(b.prev_hash == a.record_hash for a, b in itertools.pairwise(links))


def test_a_failure_while_moving_files_into_place_keeps_the_charge(ledger: Ledger) -> None:
    def move() -> None:
        raise OSError("rename failed half-way")

    with pytest.raises(OSError, match="half-way"), ledger.charge(request(0.5)) as tx:
        tx.publish(outputs=[], cells_released=1, cells_suppressed=0, move=move)
    (entry,) = ledger.entries()
    assert entry.status == "pending"  # charged, perhaps published: stays spent
    assert ledger.window_budgets([DAY])[0].epsilon_spent == 0.5
    # A re-run of the same question resumes the pending charge: no second charge.
    with ledger.charge(request(0.5)) as tx:
        assert tx.resumed
        assert not tx.reused
        assert tx.entry == entry
        tx.publish(outputs=[], cells_released=1, cells_suppressed=0)
    (entry,) = ledger.entries()
    assert entry.status == "published"
    assert ledger.window_budgets([DAY])[0].epsilon_spent == 0.5


def test_the_move_runs_after_the_charge_and_before_the_entry_is_published(ledger: Ledger) -> None:
    seen: list[str] = []

    def move() -> None:
        seen.extend(e.status for e in ledger.entries())

    with ledger.charge(request(0.5)) as tx:
        tx.publish(outputs=[], cells_released=1, cells_suppressed=0, move=move)
    assert seen == ["pending"]
    assert ledger.entries()[0].status == "published"


def test_leaving_the_block_without_publishing_is_a_bug_and_rolls_back(ledger: Ledger) -> None:
    with pytest.raises(InternalError, match="without publish"), ledger.charge(request(0.5)):
        pass
    assert ledger.entries() == []


# -- concurrency ----------------------------------------------------------------------------------


def test_a_busy_ledger_times_out_with_a_clear_error(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.duckdb", BudgetPolicy(), lock_timeout=0.2)
    fd = os.open(ledger.writer_lock, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"pid 4242 since earlier\n")
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(MobilityError, match=r"ledger is busy.*writer\.lock.*pid 4242"):
            publish(ledger, request(0.5))
    finally:
        os.close(fd)
    publish(ledger, request(0.5))
    assert len(ledger.entries()) == 1


def _charge_in_child(
    path: str, spec: NoiseSpec, run: int, barrier: Barrier, results: Queue[str]
) -> None:
    ledger = Ledger(Path(path), BudgetPolicy(), lock_timeout=60)
    barrier.wait()
    try:
        publish(ledger, request(spec=spec, run=run))
    except BudgetExceededError:
        results.put("refused")
    else:
        results.put("charged")


@pytest.mark.slow
def test_concurrent_processes_never_overspend(tmp_path: Path) -> None:
    workers = 5
    path = tmp_path / "ledger.duckdb"
    publish(Ledger(path, BudgetPolicy()), request(0.5, run=-1))  # 0.5 of the 2.0 cap spent
    spec = noise(0.5)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    results: Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=_charge_in_child, args=(str(path), spec, run, barrier, results))
        for run in range(workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    outcomes = sorted(results.get(timeout=5) for _ in range(workers))
    assert outcomes == ["charged"] * 3 + ["refused"] * 2  # exactly (2.0 - 0.5) / 0.5 fit
    ledger = Ledger(path, BudgetPolicy())
    assert ledger.window_budgets([DAY])[0].epsilon_spent == 2.0
    entries = ledger.entries()
    assert len(entries) == 4
    assert len(ledger.refusals()) == 2
    links = ledger.chain()  # one policy, 4 charges, 4 publications, 2 refusals: one chain
    assert [link.seq for link in links] == list(range(1, 12))
    for before, after in itertools.pairwise(links):
        assert after.prev_hash == before.record_hash
    assert all(link.intact for link in links)


# -- noise on disk, schema version ----------------------------------------------------------------


def test_a_charge_whose_noise_may_be_on_disk_is_kept_until_the_noise_is_destroyed(
    ledger: Ledger,
) -> None:
    def fail_after_drawing(run: int, *, destroyed: bool) -> None:
        with ledger.charge(request(0.5, run=run)) as tx:
            tx.noise_at_risk()
            if destroyed:
                tx.noise_destroyed()
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full") as kept:
        fail_after_drawing(0, destroyed=False)
    (entry,) = ledger.entries()
    assert entry.status == "pending"  # paid: noise may have reached the disk
    assert any("Run the same release again" in note for note in kept.value.__notes__)
    with pytest.raises(OSError, match="disk full"):
        fail_after_drawing(1, destroyed=True)
    assert ledger.entries() == [entry]  # the destroyed one was rolled back


def test_a_ledger_of_an_older_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE ledger_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
        con.execute("INSERT INTO ledger_meta VALUES ('schema_version', '1')")
    finally:
        con.close()
    ledger = Ledger(path, BudgetPolicy())
    with pytest.raises(MobilityError, match=r"schema version 1; .*re-create"):
        ledger.entries()
    with pytest.raises(MobilityError, match=r"schema version 1; .*re-create"):
        publish(ledger, request(0.5))
