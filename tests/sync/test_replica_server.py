"""The reference server replica: one push, exactly as docs/sync.md states it."""

from __future__ import annotations

import pytest

from sync import hlc
from sync.device_replica import DeviceReplica
from sync.merge import fold
from sync.messages import CursorExpired, ReleaseRefused, SeqGap, SeqReuse
from sync.ops import ADD, SET
from sync.reasons import Reason
from sync.replica import ServerReplica
from tests.sync.world import RECORDS, check_field, lookup_form

NOW = 1_700_000_000_000
R1, R2, R3 = (rid for rid, _ in RECORDS)


@pytest.fixture
def server() -> ServerReplica:
    return ServerReplica(lookup_form, check_field, wall=lambda: NOW)


def device(name: str, offset_ms: int = 0) -> DeviceReplica:
    return DeviceReplica(name, wall=lambda: NOW + offset_ms)


def household(dev: DeviceReplica, field: str, value, *, kind=SET, record=R1, grid=1, version=1):
    return dev.edit(record, "household", version, grid, field, kind, value)


def test_a_first_push_applies_in_seq_order_with_consecutive_positions(server) -> None:
    d1 = device("d1")
    ops = [household(d1, "head_name", "wang"), household(d1, "size", 3)]
    result = server.push("d1", reversed(ops))
    assert (result.acked_seq, result.applied, result.duplicate, result.quarantined) == (2, 2, 0, [])
    assert [(s.op.seq, s.position) for s in result.stored] == [(1, 1), (2, 2)]
    page = server.pull(None, 0, 10)
    assert [(c.field, c.value, c.position) for c in page.changes] == [
        ("head_name", "wang", 1),
        ("size", 3, 2),
    ]
    assert (page.cursor, page.more) == (2, False)
    assert result.server_hlc > max(op.hlc for op in ops)


def test_a_retry_counts_duplicates_and_stores_nothing_twice(server) -> None:
    d1 = device("d1")
    first = [household(d1, "head_name", "wang"), household(d1, "size", 3)]
    server.push("d1", first)
    more = [*first, household(d1, "size", 4)]
    result = server.push("d1", more + more[:1])  # the same op twice in one request, too
    assert (result.acked_seq, result.applied, result.duplicate) == (3, 1, 3)
    assert [s.position for s in result.stored] == [3]
    again = server.push("d1", more)
    assert (again.applied, again.duplicate, again.stored) == (0, 3, [])
    assert server.position == 3


def test_a_gap_is_refused_whole_with_the_expected_seq(server) -> None:
    d1 = device("d1")
    ops = [household(d1, "size", n) for n in (1, 2, 3)]
    with pytest.raises(SeqGap) as caught:
        server.push("d1", [ops[0], ops[2]])
    assert caught.value.expected_seq == 1
    assert server.ops == {}
    assert server.position == 0
    server.push("d1", ops[:1])
    with pytest.raises(SeqGap) as caught:
        server.push("d1", ops[2:])
    assert caught.value.expected_seq == 2


def test_a_reused_seq_is_refused_before_a_gap(server) -> None:
    d1 = device("d1")
    op1 = household(d1, "size", 1)
    server.push("d1", [op1])
    later = household(d1, "size", 2)
    with pytest.raises(SeqReuse) as caught:
        server.push("d1", [op1.with_(value=9), later.with_(seq=5)])
    assert caught.value.seq == 1
    with pytest.raises(SeqReuse):
        server.push("d1", [later, later.with_(value=7)])
    assert server.acked["d1"] == 1


def test_quarantined_ops_are_stored_counted_and_without_effect(server) -> None:
    d1 = device("d1")
    good = household(d1, "size", 3)
    bad = household(d1, "size", 99)
    result = server.push("d1", [good, bad])
    assert (result.applied, result.duplicate) == (1, 0)
    assert [(q.seq, q.reason) for q in result.quarantined] == [(2, Reason.OUT_OF_RANGE)]
    assert result.acked_seq == 2
    assert server.state()[(R1, "size")].value == 3
    assert [s.op.seq for s in server.quarantined()] == [2]


def test_an_op_too_far_ahead_is_quarantined_and_does_not_move_the_server_clock(server) -> None:
    fast = device("fast", offset_ms=3_600_000)
    op = household(fast, "size", 3)
    result = server.push("fast", [op])
    assert result.quarantined[0].reason == Reason.CLOCK_AHEAD
    assert result.server_hlc < op.hlc
    released = server.release([op.op_id])
    assert [s.op.seq for s in released.released] == [1]
    assert server.clock.peek() >= op.hlc


def test_out_of_scope_grid_is_quarantined(server) -> None:
    d1 = device("d1")
    result = server.push("d1", [household(d1, "size", 3, grid=3)], scope={1, 2})
    assert result.quarantined[0].reason == Reason.GRID_OUT_OF_SCOPE


def test_naming_ones_own_grid_does_not_take_a_record_from_another_scope(server) -> None:
    owner, outsider = device("owner"), device("outsider")
    server.push("owner", [household(owner, "head_name", "wang", grid=1)], scope={1})
    taken = household(outsider, "size", 3, grid=2)
    result = server.push("outsider", [taken], scope={2})
    assert [(q.seq, q.reason) for q in result.quarantined] == [(1, Reason.GRID_OUT_OF_SCOPE)]
    assert result.quarantined[0].detail == f"record {R1} is in a grid outside your grids"
    assert server.merged.records[R1].grid_id == 1
    assert server.pull({2}, 0, 100).changes == []
    assert [c.field for c in server.pull({1}, 0, 100).changes] == ["head_name"]


def test_a_record_moves_only_for_a_scope_holding_both_grids(server) -> None:
    owner, both = device("d1"), device("d2")
    server.push("d1", [household(owner, "head_name", "wang", grid=1)], scope={1})
    move = household(both, "size", 3, grid=2)
    assert server.push("d2", [move], scope={1, 2}).applied == 1
    assert server.merged.records[R1].grid_id == 2
    # the owner's next edit is held, not a silent move back into grid 1
    back = household(owner, "head_name", "li", grid=1)
    assert back.key > move.key
    result = server.push("d1", [back], scope={1})
    assert [q.reason for q in result.quarantined] == [Reason.GRID_OUT_OF_SCOPE]
    assert server.merged.records[R1].grid_id == 2
    # releasing it is the admin's decision, and gives the state as if it had applied:
    # being the record's highest-keyed op, it moves the record back
    released = server.release([back.op_id])
    assert [s.position for s in released.released] == [result.stored[0].position]
    assert server.merged.records[R1].grid_id == 1
    assert server.state() == fold(server.log()).fields()
    assert sorted(c.field for c in server.pull({1}, 0, 100).changes) == ["head_name", "size"]


def test_earlier_ops_of_the_same_push_give_the_record_its_grid(server) -> None:
    d1 = device("d1")
    stray = household(d1, "size", 3, grid=3)  # quarantined: the record stays new
    made = household(d1, "head_name", "wang", grid=2)  # makes the record, in grid 2
    more = household(d1, "size", 4, grid=2)
    result = server.push("d1", [stray, made, more], scope={1, 2})
    assert [q.seq for q in result.quarantined] == [1]
    assert result.applied == 2
    # a record whose ops are all quarantined has no grid: the next op is checked alone
    d2 = device("d2")
    first = household(d2, "size", 5, record=R2, grid=3)
    assert server.push("d2", [first], scope={1}).quarantined
    assert server.push("d2", [household(d2, "size", 6, record=R2, grid=1)], scope={1}).applied


def test_a_record_keeps_the_form_it_was_made_with(server) -> None:
    d1 = device("d1")
    first = household(d1, "size", 3)
    other_form = d1.edit(R1, "hazard", 1, 1, "severity", SET, "low")
    result = server.push("d1", [first, other_form])
    assert result.quarantined[0].reason == Reason.FORM_MISMATCH
    with pytest.raises(ReleaseRefused):
        server.release([other_form.op_id])


def test_release_equals_having_applied_from_the_start(server) -> None:
    d1, d2 = device("d1"), device("d2")
    add = household(d1, "tags", "a", kind=ADD)
    held = household(d1, "head_name", "far-too-long")
    server.push("d1", [add, held])
    d2.apply_page(server.pull(None, 0, 100))
    remove = household(d2, "tags", "a", kind="remove")
    name = household(d2, "head_name", "li")
    server.push("d2", [remove, name])
    result = server.release([held.op_id])
    assert [s.position for s in result.released] == [2]  # arrival position kept
    applied_from_start = fold(
        s if s.op.op_id != held.op_id else result.released[0] for s in server.log()
    )
    assert {k: v for k, v in server.state().items()} == applied_from_start.fields()
    # d2 had pulled up to `held`'s position: as if applied from the start, it saw it
    assert result.conflicts == []
    with pytest.raises(ReleaseRefused):
        server.release([held.op_id])
    with pytest.raises(ReleaseRefused):
        server.release([("d9", 1)])


def test_a_released_op_finds_the_conflicts_it_would_have_found(server) -> None:
    d1, d2 = device("d1"), device("d2")
    blind = household(d2, "head_name", "li")  # made before anything was pulled
    held = household(d1, "head_name", "far-too-long")
    server.push("d1", [held])
    assert server.push("d2", [blind]).conflicts == []
    result = server.release([held.op_id])
    assert [c.ident[2:] for c in result.conflicts] == [(("d1", 1), ("d2", 1))]
    (row,) = server.conflicts.values()
    assert not row.resolved


def test_conflicts_come_in_position_order_whenever_their_ops_applied(server) -> None:
    # The SQL store reports (second, first) position order; a released op, applied
    # after a later one, must not change the order the next push reports.
    d1, d2, d3 = device("d1"), device("d2"), device("d3")
    held = household(d1, "head_name", "far-too-long")
    server.push("d1", [held])
    server.push("d2", [household(d2, "head_name", "li")])
    server.release([held.op_id])
    result = server.push("d3", [household(d3, "head_name", "zhao")])
    assert [(c.first_position, c.second_position) for c in result.conflicts] == [(1, 3), (2, 3)]


def test_a_restarted_replica_answers_as_the_one_it_was_rebuilt_from(server) -> None:
    d1, d2, d3 = device("d1"), device("d2"), device("d3", offset_ms=700_000)
    held = household(d1, "size", 99)
    server.push("d1", [household(d1, "head_name", "wang"), held, household(d1, "size", 2)])
    server.push("d1", [household(d1, "tags", "a", kind=ADD, record=R2)])
    server.push("d2", [household(d2, "head_name", "li")])  # blind: a conflict
    server.release([held.op_id])
    d1.apply_page(server.pull(None, 0, 100))
    server.push("d1", [household(d1, "size", 3, record=R2, grid=2)])  # R2 moves
    ahead = household(d3, "head_name", "zhao")
    server.push("d3", [ahead])  # clock_ahead: the server's HLC stays behind
    again = server.restarted()
    assert again.merged is not server.merged
    assert (again.position, again.clock.peek(), again.log()) == (
        server.position,
        server.clock.peek(),
        server.log(),
    )
    assert again.state() == server.state()
    assert again.conflicts == server.conflicts
    for scope in (None, {1}, {2}):
        assert again.snapshot(scope, 0, 100) == server.snapshot(scope, 0, 100)
    with pytest.raises(CursorExpired):
        again.pull({1}, 5, 100)  # R2 left grid 1 after position 5
    # the same calls afterwards get the same answers from both
    later = [household(d2, "head_name", "wu"), household(d2, "tags", "a", kind="remove")]
    assert again.push("d2", later) == server.push("d2", later)
    assert again.release([ahead.op_id]) == server.release([ahead.op_id])
    resolving = [household(d1, "head_name", "qian")]
    assert again.push("d1", resolving) == server.push("d1", resolving)
    assert (again.state(), again.conflicts) == (server.state(), server.conflicts)


def test_a_refused_release_changes_nothing(server) -> None:
    d1 = device("d1")
    held = household(d1, "size", 99)
    ok = household(d1, "size", 2)
    server.push("d1", [held, ok])
    before = (server.position, server.state(), [s.status for s in server.log()])
    with pytest.raises(ReleaseRefused):
        server.release([held.op_id, ok.op_id])
    assert (server.position, server.state(), [s.status for s in server.log()]) == before


def test_release_gives_changed_fields_fresh_positions(server) -> None:
    d1 = device("d1")
    held = household(d1, "size", 99)
    server.push("d1", [held, household(d1, "head_name", "wang")])
    server.release([held.op_id])
    assert server.changed_at[(R1, "size")] == 3
    page = server.pull(None, 2, 10)
    assert [(c.field, c.value) for c in page.changes] == [("size", 99)]


def test_a_record_entering_the_scope_is_sent_whole(server) -> None:
    d1 = device("d1")
    server.push("d1", [household(d1, "head_name", "wang"), household(d1, "size", 3)])
    watcher = server.pull({2}, 0, 100)
    assert watcher.changes == []
    move = household(d1, "tags", "a", kind=ADD, grid=2)
    server.push("d1", [move])
    page = server.pull({2}, watcher.cursor, 100)
    assert sorted((c.field, c.grid_id) for c in page.changes) == [
        ("head_name", 2),
        ("size", 2),
        ("tags", 2),
    ]
    # fresh positions after the push's own, in field order; the move takes the next one
    assert [c.position for c in page.changes] == [4, 5, 6]
    assert page.cursor == 7
    # grid 1 held the record before the move: a cursor from before it is refused there,
    # and the snapshot it starts over from leaves the record out
    with pytest.raises(CursorExpired, match="left your scope"):
        server.pull({1}, 3, 100)
    assert server.snapshot({1}, 0, 100).changes == []
    assert server.pull({1}, 7, 100).changes == []
    assert server.pull({1, 2}, 3, 100).changes  # a scope holding both grids keeps it


def test_pull_pages_by_position_and_never_past_the_newest(server) -> None:
    d1 = device("d1")
    server.push(
        "d1", [household(d1, "size", n, record=rid) for n, rid in ((1, R1), (2, R2), (3, R1))]
    )
    first = server.pull(None, 0, 1)
    assert ([c.position for c in first.changes], first.cursor, first.more) == ([2], 2, True)
    second = server.pull(None, first.cursor, 1)
    assert ([c.position for c in second.changes], second.more) == ([3], False)
    empty = server.pull(None, second.cursor, 1)
    assert (empty.changes, empty.cursor, empty.more) == ([], 3, False)
    with pytest.raises(CursorExpired):
        server.pull(None, 4, 1)
    assert server.snapshot(None, 4, 10).cursor == 3


def test_conflicts_are_reported_to_the_push_that_makes_them(server) -> None:
    d1, d2 = device("d1"), device("d2")
    a = household(d1, "size", 1)
    b = household(d2, "size", 2)
    assert server.push("d1", [a]).conflicts == []
    (conflict,) = server.push("d2", [b]).conflicts
    assert (conflict.first, conflict.second) == (("d1", 1), ("d2", 1))
    assert conflict.winner == max(a, b, key=lambda op: op.key).op_id
    d1.apply_page(server.pull(None, 0, 10))
    fix = household(d1, "size", 5)
    assert server.push("d1", [fix]).conflicts == []
    (row,) = server.conflicts.values()
    assert row.resolved


def test_server_hlc_covers_every_applied_op(server) -> None:
    ahead = device("ahead", offset_ms=500_000)  # within the allowed skew
    op = household(ahead, "size", 1)
    result = server.push("ahead", [op])
    assert result.applied == 1
    assert result.server_hlc > op.hlc
    assert hlc.millis_of(result.server_hlc) >= NOW + 500_000


def test_a_field_with_choices_ignores_later_sets_in_what_it_shows(server) -> None:
    d1, d2 = device("d1"), device("d2")
    server.push("d1", [household(d1, "head_name", "wang")])
    held = household(d2, "head_name", "a", kind=ADD)  # not a multi-select: quarantined
    server.push("d2", [held])
    server.release([held.op_id])
    page = server.pull(None, 0, 10)
    assert [(c.value, c.position) for c in page.changes] == [(["a"], 3)]
    late = household(d1, "head_name", "li")
    server.push("d1", [late])
    assert server.pull(None, page.cursor, 10).changes == []
    assert server.state()[(R1, "head_name")].value == ["a"]
