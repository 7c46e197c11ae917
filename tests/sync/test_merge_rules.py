"""The per-field merge rules: winner, add-wins sets, tombstones; order never matters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.merge import Merged, fold
from sync.ops import ADD, REMOVE, SET, OpStatus
from tests.sync.world import RECORD_ID, choices_by_definition, op_logs, stored


def snapshot_of(merged: Merged) -> tuple:
    heads = {
        rid: (head.form_id, head.form_version, head.grid_id) for rid, head in merged.records.items()
    }
    return merged.fields(), heads


@given(op_logs(), st.randoms(use_true_random=False))
def test_any_order_and_any_duplication_give_the_same_state(log, rnd) -> None:
    shuffled = log + rnd.sample(log, k=len(log) // 2)
    rnd.shuffle(shuffled)
    assert snapshot_of(fold(shuffled)) == snapshot_of(fold(log))


@given(op_logs(), st.randoms(use_true_random=False))
def test_applying_in_batches_equals_the_fold(log, rnd) -> None:
    merged = Merged()
    order = list(log)
    rnd.shuffle(order)
    while order:
        cut = rnd.randint(1, len(order))
        batch, order = order[:cut], order[cut:]
        for entry in batch + batch[:1]:  # a retried op inside a batch changes nothing
            if entry.applied:
                merged.apply(entry)
    assert snapshot_of(merged) == snapshot_of(fold(log))


@given(op_logs())
def test_the_winner_is_the_highest_hlc_then_device(log) -> None:
    merged = fold(log)
    for slot, value in merged.fields().items():
        ops = [s.op for s in log if s.applied and (s.op.record_id, s.op.field) == slot]
        if ops[0].kind != SET:
            continue
        best = max(ops, key=lambda op: (op.hlc, op.device_id, op.seq))
        assert (value.value, value.hlc, value.device_id) == (best.value, best.hlc, best.device_id)


@given(op_logs())
def test_a_choice_is_present_while_one_of_its_adds_is_uncovered(log) -> None:
    merged = fold(log)
    for record_id in {s.op.record_id for s in log}:
        expected = choices_by_definition(log, record_id, "tags")
        actual = merged.fields().get((record_id, "tags"))
        assert set(actual.value if actual else []) == expected


@given(op_logs())
def test_quarantined_ops_change_nothing(log) -> None:
    applied_only = [s for s in log if s.applied]
    assert snapshot_of(fold(log)) == snapshot_of(fold(applied_only))


@given(op_logs())
def test_record_head_follows_its_winning_op(log) -> None:
    merged = fold(log)
    for rid, head in merged.records.items():
        ops = [s.op for s in log if s.applied and s.op.record_id == rid]
        best = max(ops, key=lambda op: op.key)
        assert (head.form_version, head.grid_id) == (best.form_version, best.grid_id)


def test_concurrent_add_beats_remove() -> None:
    add = stored("d1", 1, 2, "tags", ADD, "a", hlc=5, base=0)
    remove_before = stored("d2", 1, 1, "tags", REMOVE, "a", hlc=9, base=0)
    remove_after_unseen = stored("d2", 2, 3, "tags", REMOVE, "a", hlc=10, base=1)
    state = fold([add, remove_before, remove_after_unseen]).fields()
    assert state[(RECORD_ID, "tags")].value == ["a"]


def test_remove_covers_the_adds_it_had_seen_and_its_own_earlier_adds() -> None:
    other_add = stored("d1", 1, 1, "tags", ADD, "a", hlc=1)
    own_add = stored("d2", 1, 2, "tags", ADD, "a", hlc=2)
    remove = stored("d2", 2, 3, "tags", REMOVE, "a", hlc=3, base=1)
    assert fold([other_add, own_add, remove]).fields()[(RECORD_ID, "tags")].value == []
    # had it not pulled d1's add, d1's add would survive
    blind = stored("d2", 2, 3, "tags", REMOVE, "a", hlc=3, base=0)
    assert fold([other_add, own_add, blind]).fields()[(RECORD_ID, "tags")].value == ["a"]


def test_remove_covers_a_released_add_it_had_seen_by_position() -> None:
    # the add arrived first but applies last (released from quarantine)
    add = stored("d1", 1, 1, "tags", ADD, "b", hlc=1)
    remove = stored("d2", 1, 2, "tags", REMOVE, "b", hlc=2, base=1)
    merged = Merged()
    merged.apply(remove)
    merged.apply(add)
    assert merged.fields()[(RECORD_ID, "tags")].value == []


def test_an_add_after_a_remove_brings_the_choice_back() -> None:
    log = [
        stored("d1", 1, 1, "tags", ADD, "c", hlc=1),
        stored("d2", 1, 2, "tags", REMOVE, "c", hlc=2, base=1),
        stored("d2", 2, 3, "tags", ADD, "c", hlc=3, base=2),
    ]
    assert fold(log).fields()[(RECORD_ID, "tags")].value == ["c"]


def test_tombstone_and_revive() -> None:
    name = stored("d1", 1, 1, "head_name", SET, "wang", hlc=1)
    delete = stored("d2", 1, 2, "_deleted", SET, True, hlc=5, base=1)
    edit_after = stored("d1", 2, 3, "head_name", SET, "li", hlc=6, base=1)
    merged = fold([name, delete, edit_after])
    assert merged.deleted(RECORD_ID)
    assert merged.fields()[(RECORD_ID, "head_name")].value == "li"  # edits still merge
    revive = stored("d1", 3, 4, "_deleted", SET, False, hlc=7, base=3)
    assert not fold([name, delete, edit_after, revive]).deleted(RECORD_ID)
    stale_revive = stored("d3", 1, 4, "_deleted", SET, False, hlc=4, base=0)
    assert fold([name, delete, stale_revive]).deleted(RECORD_ID)


def test_equal_hlc_is_settled_by_device_then_seq() -> None:
    a = stored("d1", 1, 1, "size", SET, 1, hlc=7)
    b = stored("d2", 1, 2, "size", SET, 2, hlc=7)
    assert fold([b, a]).fields()[(RECORD_ID, "size")].value == 2
    c = stored("d2", 2, 3, "size", SET, 3, hlc=7)  # a faulty device repeating its HLC
    assert fold([c, b, a]).fields()[(RECORD_ID, "size")].value == 3


def test_effective_base_never_reaches_the_op_itself() -> None:
    entry = stored("d1", 1, 5, "size", SET, 1, hlc=1, base=99)
    assert entry.base == 4
    held = stored("d1", 1, 5, "size", SET, 1, hlc=1, status=OpStatus.QUARANTINED)
    assert not held.applied
