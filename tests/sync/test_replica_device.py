"""The reference device replica: stamping edits, the queue, pulled state and its view."""

from __future__ import annotations

from sync import hlc
from sync.device_replica import DeviceReplica
from sync.messages import Change, Page, PushResult, QuarantinedOp
from sync.ops import ADD, REMOVE, SET
from tests.sync.world import RECORDS

NOW = 1_700_000_000_000
R1 = RECORDS[0][0]


def change(field: str, value, *, stamp: int, position: int, device: str = "d9") -> Change:
    return Change(R1, "household", 1, 1, field, value, stamp, device, position)


def edit(dev: DeviceReplica, field: str, value, kind=SET):
    return dev.edit(R1, "household", 1, 1, field, kind, value)


def test_edits_take_the_next_seq_a_rising_hlc_and_the_cursor_as_base() -> None:
    dev = DeviceReplica("d1", wall=lambda: NOW)
    first = edit(dev, "size", 1)
    dev.apply_page(Page([change("size", 2, stamp=hlc.pack(NOW + 5000), position=7)], 7, False, 0))
    second = edit(dev, "size", 3)
    assert (first.seq, second.seq) == (1, 2)
    assert (first.base, second.base) == (0, 7)
    assert second.hlc > hlc.pack(NOW + 5000) > first.hlc
    assert dev.outbox(1) == [first]


def test_a_push_reply_drops_what_the_server_holds() -> None:
    dev = DeviceReplica("d1", wall=lambda: NOW)
    ops = [edit(dev, "size", n) for n in (1, 2, 3)]
    dev.on_pushed(
        PushResult(
            2, 1, 0, [QuarantinedOp(2, R1, "size", "out_of_range", "")], [], hlc.pack(NOW + 1)
        )
    )
    assert dev.pending == ops[2:]
    assert dev.unconfirmed == ops[:1]
    assert [n.seq for n in dev.quarantine_notices] == [2]


def test_the_view_lays_own_ops_over_pulled_state_by_the_winner_rule() -> None:
    dev = DeviceReplica("d1", wall=lambda: NOW)
    dev.apply_page(
        Page(
            [
                change("size", 5, stamp=hlc.pack(NOW - 10), position=1),
                change("tags", ["a", "b"], stamp=hlc.pack(NOW - 10), position=2),
            ],
            2,
            False,
            0,
        )
    )
    edit(dev, "size", 6)
    edit(dev, "tags", "a", REMOVE)
    edit(dev, "tags", "c", ADD)
    assert dev.view() == {(R1, "size"): 6, (R1, "tags"): ["b", "c"]}
    # a newer value from elsewhere outranks a pending edit, as the server will decide
    dev.apply_page(Page([change("size", 9, stamp=hlc.pack(NOW + 60_000), position=3)], 3, False, 0))
    assert dev.view()[(R1, "size")] == 9


def test_a_complete_pull_ends_the_overlay_of_acknowledged_ops() -> None:
    dev = DeviceReplica("d1", wall=lambda: NOW)
    op = edit(dev, "size", 6)
    dev.on_pushed(PushResult(1, 1, 0, [], [], hlc.pack(NOW)))
    assert dev.view() == {(R1, "size"): 6}
    dev.apply_page(Page([], 0, True, 0))
    assert dev.unconfirmed == [op]
    dev.apply_page(Page([change("size", 6, stamp=op.hlc, position=1, device="d1")], 1, False, 0))
    assert dev.unconfirmed == []
    assert dev.view() == {(R1, "size"): 6}


def test_a_snapshot_restart_keeps_unsent_ops() -> None:
    dev = DeviceReplica("d1", wall=lambda: NOW)
    dev.apply_page(Page([change("size", 5, stamp=1, position=4)], 4, False, 0))
    pending = edit(dev, "head_name", "li")
    dev.start_snapshot()
    assert (dev.cursor, dev.confirmed, dev.pending) == (0, {}, [pending])
    assert dev.view() == {(R1, "head_name"): "li"}


def test_a_restarted_device_keeps_its_store_and_its_clock() -> None:
    dev = DeviceReplica("d1", wall=lambda: NOW)
    dev.apply_page(Page([change("size", 5, stamp=hlc.pack(NOW + 90_000), position=4)], 4, False, 0))
    sent = [edit(dev, "size", 6), edit(dev, "size", 99), edit(dev, "tags", "a", ADD)]
    notice = QuarantinedOp(2, R1, "size", "out_of_range", "")
    dev.on_pushed(PushResult(2, 1, 0, [notice], [], hlc.pack(NOW + 90_001)))
    # the wall clock after the restart is behind the HLC the device had reached
    again = dev.restarted(wall=lambda: NOW - 1_000)
    assert (again.cursor, again.last_seq, again.pending, again.unconfirmed) == (
        4,
        3,
        sent[2:],
        sent[:1],
    )
    assert (again.quarantine_notices, again.view()) == ([notice], dev.view())
    later = edit(again, "head_name", "li")
    assert (later.seq, later.base) == (4, 4)
    assert later.hlc > hlc.pack(NOW + 90_001)
    assert dev.pending == sent[2:]  # the two share nothing
