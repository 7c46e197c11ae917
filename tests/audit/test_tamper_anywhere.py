"""Tampering at any place of generated trails: verify names that place."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from server.audit import record_event
from tests.audit.factories import device, op_rows, store_push
from tests.audit.helpers import event_row, execute, verify
from tests.services import in_ci

# A trail: each step is an ordinary event (None) or a push of 1..4 ops by device 1 or 2.
steps = st.lists(
    st.one_of(st.none(), st.tuples(st.sampled_from([1, 2]), st.integers(1, 4))),
    min_size=1,
    max_size=8,
)
tampers = st.sampled_from(["edit_event", "delete_event", "swap_events", "edit_op", "delete_op"])


def clear(database) -> None:
    with database.engine.begin() as connection:
        for table in ("ops", "audit_events", "audit_event_grids", "audit_chain_head"):
            connection.execute(text(f"DELETE FROM {table}"))


def build(database, trail) -> list[tuple[int, str, int, int] | None]:
    """Store the trail; per event, (event id, device, first seq, last seq) for pushes."""
    seqs = {1: 0, 2: 0}
    shape = []
    for step in trail:
        if step is None:
            with database.session() as session:
                record_event(session, "admin.changed", "setting", "x", {"n": len(shape)})
            shape.append(None)
            continue
        number, count = step
        first = seqs[number] + 1
        seqs[number] += count
        store_push(database, op_rows(device(number), range(first, seqs[number] + 1)))
        shape.append((len(shape) + 1, device(number), first, seqs[number]))
    return shape


@settings(
    max_examples=150 if in_ci() else 20,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(trail=steps, tamper=tampers, pick=st.integers(0, 1000))
def test_verify_names_the_place_of_any_tampering(database, trail, tamper, pick):
    clear(database)
    shape = build(database, trail)
    assert verify(database).ok
    events = len(shape)
    pushes = [entry for entry in shape if entry is not None]
    if tamper == "edit_event":
        k = 1 + pick % events
        execute(database, "UPDATE audit_events SET target_id = 'forged' WHERE id = :k", k=k)
        expected = ("hash", k)
    elif tamper == "delete_event":
        k = 1 + pick % events
        execute(database, "DELETE FROM audit_events WHERE id = :k", k=k)
        expected = ("missing", k)
    elif tamper == "swap_events":
        if events < 2:
            return
        k = 1 + pick % (events - 1)
        execute(database, "UPDATE audit_events SET id = -1 WHERE id = :k", k=k)
        execute(database, "UPDATE audit_events SET id = :k WHERE id = :n", k=k, n=k + 1)
        execute(database, "UPDATE audit_events SET id = :n WHERE id = -1", n=k + 1)
        expected = ("link", k)
    else:
        if not pushes:
            return
        event_id, device_id, first, last = pushes[pick % len(pushes)]
        seq = first + pick % (last - first + 1)
        if tamper == "edit_op":
            sql = "UPDATE ops SET value = '\"forged\"' WHERE device_id = :d AND seq = :s"
        else:
            sql = "DELETE FROM ops WHERE device_id = :d AND seq = :s"
        execute(database, sql, d=device_id, s=seq)
        expected = ("ops", event_id)
        recorded = json.loads(event_row(database, event_id)["details"])["ops_hash"]
        assert verify(database).broken.expected == recorded
    broken = verify(database).broken
    assert broken is not None
    assert (broken.kind, broken.event_id) == expected
