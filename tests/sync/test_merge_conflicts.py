"""Conflict detection by base: concurrent edits of one field by different devices."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.conflicts import collide, concurrent, find_conflicts, values_differ
from sync.ops import ADD, REMOVE, SET, canonical_json
from tests.sync.world import RECORD_ID, op_logs, stored


def test_two_blind_edits_of_one_field_conflict_and_the_winner_is_marked() -> None:
    x = stored("d1", 1, 1, "size", SET, 1, hlc=10)
    y = stored("d2", 1, 2, "size", SET, 2, hlc=5)
    (conflict, resolved), *rest = find_conflicts([x, y]).items()
    assert rest == []
    assert not resolved
    assert (conflict.first, conflict.second, conflict.winner) == (("d1", 1), ("d2", 1), ("d1", 1))
    assert (conflict.record_id, conflict.field) == (RECORD_ID, "size")


def test_an_edit_made_after_seeing_the_other_is_no_conflict() -> None:
    x = stored("d1", 1, 1, "size", SET, 1, hlc=10)
    y = stored("d2", 1, 2, "size", SET, 2, hlc=11, base=1)
    assert not concurrent(x, y)
    assert find_conflicts([x, y]) == {}


def test_same_value_same_device_other_field_and_sets_never_conflict() -> None:
    x = stored("d1", 1, 1, "size", SET, 1, hlc=10)
    assert not collide(x, stored("d2", 1, 2, "size", SET, 1, hlc=5))
    assert not collide(x, stored("d1", 2, 2, "size", SET, 2, hlc=11))
    assert not collide(x, stored("d2", 1, 2, "head_name", SET, "li", hlc=5))
    add = stored("d1", 3, 3, "tags", ADD, "a", hlc=12)
    remove = stored("d2", 2, 4, "tags", REMOVE, "a", hlc=13)
    assert find_conflicts([add, remove]) == {}
    # 1 and 1.0 and True are different JSON values, compared canonically
    assert collide(x, stored("d2", 1, 2, "size", SET, True, hlc=5))


def test_a_later_edit_that_saw_both_resolves_the_conflict() -> None:
    x = stored("d1", 1, 1, "size", SET, 1, hlc=10)
    y = stored("d2", 1, 2, "size", SET, 2, hlc=5)
    saw_one = stored("d3", 1, 3, "size", SET, 3, hlc=20, base=1)
    saw_all = stored("d3", 2, 4, "size", SET, 3, hlc=21, base=3)
    conflicts = find_conflicts([x, y, saw_one])
    # saw_one is itself concurrent with y, and did not resolve x/y
    assert sorted((c.first, c.second, r) for c, r in conflicts.items()) == [
        (("d1", 1), ("d2", 1), False),
        (("d2", 1), ("d3", 1), False),
    ]
    assert all(find_conflicts([x, y, saw_one, saw_all]).values())


@given(op_logs(), st.randoms(use_true_random=False))
def test_conflicts_do_not_depend_on_order_or_duplication(log, rnd) -> None:
    shuffled = log + rnd.sample(log, k=len(log) // 3)
    rnd.shuffle(shuffled)
    assert find_conflicts(shuffled) == find_conflicts(log)


@given(op_logs())
def test_every_conflict_is_a_concurrent_pair_of_different_applied_sets(log) -> None:
    by_id = {s.op.op_id: s for s in log}
    found = find_conflicts(log)
    for conflict in found:
        x, y = by_id[conflict.first], by_id[conflict.second]
        assert x.applied
        assert y.applied
        assert x.position < y.position
        assert collide(x, y)
        assert collide(y, x)
    applied_sets = [s for s in log if s.applied and s.op.kind == SET]
    pairs = sum(collide(a, b) for i, a in enumerate(applied_sets) for b in applied_sets[i + 1 :])
    assert pairs == len(found)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=6,
)


@given(json_values, json_values)
def test_values_differ_exactly_when_their_canonical_texts_do(a, b) -> None:
    assert values_differ(a, b) == (canonical_json(a) != canonical_json(b))
    assert not values_differ(a, a)
