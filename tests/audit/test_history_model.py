"""History and as_of against the reference replica, on generated histories."""

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from server.audit.history import changes, load_ops, record_history, state_at
from server.scope import Scope
from sync import hlc
from sync.messages import ReleaseRefused
from sync.ops import Op
from sync.replica import ServerReplica
from tests.audit.factories import store_release, store_replica_push
from tests.audit.helpers import verify
from tests.services import in_ci
from tests.sync.world import RECORDS, check_field, edits, lookup_form

EVERYTHING = Scope(user_id=0, everything=True)
DEVICES = ("dev-a", "dev-b", "dev-c")
USERS = {"dev-a": 11, "dev-b": 12, "dev-c": 13}
WALL_MS = 1_760_000_000_000
START = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)

pushes = st.tuples(
    st.just("push"), st.sampled_from(DEVICES), st.lists(edits(), min_size=1, max_size=4)
)
releases = st.tuples(st.just("release"), st.integers(0, 20), st.just(None))
histories = st.lists(st.one_of(pushes, pushes, pushes, releases), min_size=1, max_size=10)


def expected_states(replica: ServerReplica) -> dict[str, dict | None]:
    """What the reference replica holds for each record right now."""
    state = replica.state()
    out: dict[str, dict | None] = {}
    for record_id, _form in RECORDS:
        head = replica.merged.records.get(record_id)
        if head is None:
            out[record_id] = None
            continue
        fields = {f: v.value for (rid, f), v in state.items() if rid == record_id}
        out[record_id] = {
            "grid_id": head.grid_id,
            "form_version": head.form_version,
            "deleted": replica.merged.deleted(record_id),
            "fields": dict(sorted(fields.items())),
        }
    return out


def clear(database) -> None:
    with database.engine.begin() as connection:
        for table in ("ops", "op_releases", "audit_events", "audit_event_grids"):
            connection.execute(text(f"DELETE FROM {table}"))
        connection.execute(text("DELETE FROM audit_chain_head"))


def play(database, history) -> list[tuple[dt.datetime, dict]]:
    """Run the history on the replica and store what it stored; the expected state per step."""
    replica = ServerReplica(lookup_form, check_field, wall=lambda: WALL_MS)
    seqs = dict.fromkeys(DEVICES, 0)
    stamp = 0
    expected = []
    for step, (kind, who, payload) in enumerate(history):
        at = START + dt.timedelta(seconds=10 * (step + 1))
        if kind == "push":
            ops = []
            for edit in payload:
                seqs[who] += 1
                stamp += 1
                base = replica.position // 2 if stamp % 3 else replica.position
                ops.append(Op(who, seqs[who], *edit.args(), hlc.pack(WALL_MS - 5000, stamp), base))
            result = replica.push(who, ops)
            store_replica_push(database, result.stored, USERS, at)
        else:
            held = replica.quarantined()
            if held:
                chosen = held[who % len(held)]
                try:
                    replica.release([chosen.op.op_id])
                except ReleaseRefused:
                    pass  # a form_mismatch op stays held, in the replica as in the store
                else:
                    store_release(database, [chosen.position], at)
        expected.append((at, expected_states(replica)))
    return expected


@settings(
    max_examples=200 if in_ci() else 30,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
def test_as_of_and_history_agree_with_the_reference_replica(database, history):
    clear(database)
    expected = play(database, history)
    with database.engine.connect() as connection:
        rows = {rid: load_ops(connection, rid) for rid, _form in RECORDS}
        histories_now = {rid: record_history(connection, rid, EVERYTHING) for rid, _form in RECORDS}
    assert verify(database).ok
    for rid, _form in RECORDS:
        assert state_at(rows[rid], rid, START) is None
    before = dict.fromkeys((rid for rid, _form in RECORDS), None)
    for at, states in expected:
        for rid, _form in RECORDS:
            just_before = at - dt.timedelta(microseconds=1)
            for moment, want in ((just_before, before[rid]), (at, states[rid])):
                found = state_at(rows[rid], rid, moment)
                if want is None:
                    assert found is None
                    continue
                assert found is not None
                shown = {k: found[k] for k in ("grid_id", "form_version", "deleted", "fields")}
                assert shown == want
        before = states
    final = expected[-1][1]
    for rid, _form in RECORDS:
        entries = changes(rows[rid], rid)
        history = histories_now[rid]
        assert (history is None) == (not entries)
        last_new: dict[str, object] = {}
        for entry in entries:
            # each change starts from where the field's previous change left it
            assert entry["old"] == last_new.get(entry["field"])
            last_new[entry["field"]] = entry["new"]
        if final[rid] is not None:
            assert {f: v for f, v in last_new.items() if f in final[rid]["fields"]} == final[rid][
                "fields"
            ]
