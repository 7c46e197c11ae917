"""The SQL store and the reference replica agree on every generated history.

Unlike the device state machine, the histories here are written op by op: any base
(also one past the op's own position), HLCs that tie across devices, seq gaps and
reused seqs that must be refused, batches with retried ops, releases of several ops
at once, pulls and snapshots from any cursor. Every answer and every refusal must be
the same on both servers, and so must the log, state, conflicts and positions.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.messages import CursorExpired, SyncRefused
from sync.ops import Op
from tests.sync.backends import Agreeing, quick_engine
from tests.sync.world import BAD_EDITS, GRIDS, RECORDS, VALID_EDITS

START_MS = 1_700_000_000_000
DEVICES = [f"00000000-0000-4000-b000-00000000000{n}" for n in range(1, 4)]
SCOPES = [None, frozenset({1, 2}), frozenset({2})]


@st.composite
def op_content(draw: st.DrawFn) -> tuple:
    """Record, form, version, grid, field, kind and value of one op."""
    record_id, form_id = draw(st.sampled_from(RECORDS))
    if form_id == "household" and draw(st.integers(0, 5)) == 0:
        field, kind, value, version, _ = draw(st.sampled_from(BAD_EDITS))
    else:
        field, kind, values = draw(st.sampled_from(VALID_EDITS[form_id]))
        value, version = draw(st.sampled_from(values)), 1
    if draw(st.integers(0, 15)) == 0:
        form_id = "hazard" if form_id == "household" else "household"  # form mismatch
    return record_id, form_id, version, draw(st.sampled_from(GRIDS)), field, kind, value


class History:
    """The generating side's memory: what each device has sent, and its clock."""

    def __init__(self) -> None:
        self.sent: dict[str, list[Op]] = {device: [] for device in DEVICES}
        self.clock: dict[str, int] = dict.fromkeys(DEVICES, START_MS << 16)


def push_step(data: st.DataObject, server: Agreeing, history: History, now: int) -> None:
    n = data.draw(st.integers(0, len(DEVICES) - 1), label="device")
    device = DEVICES[n]
    made = history.sent[device]
    ops = []
    for offset in range(data.draw(st.integers(1, 6), label="ops")):
        # HLCs may tie across devices, and a faulty device may repeat one
        history.clock[device] = max(history.clock[device], now << 16) + data.draw(st.integers(0, 3))
        content = data.draw(op_content())
        base = data.draw(st.integers(0, server.newest() + 2), label="base")
        ahead = data.draw(st.sampled_from([0] * 9 + [(11 * 60_000) << 16]), label="ahead")
        stamp = history.clock[device] + ahead
        ops.append(Op(device, len(made) + 1 + offset, *content, stamp, base))
    retried = made[-data.draw(st.integers(0, 3), label="retried") :] if made else []
    batch = retried + ops
    mistake = data.draw(st.sampled_from(["none"] * 8 + ["gap", "reuse"]), label="mistake")
    if mistake == "reuse" and not retried:
        mistake = "none"
    if mistake == "gap":
        batch = [op.with_(seq=op.seq + 1) for op in ops]
    elif mistake == "reuse" and retried:
        batch = [retried[0].with_(value="other"), *ops]
    try:
        server.push(device, batch, SCOPES[n])
    except SyncRefused:
        assert mistake != "none"
        return
    if mistake == "none":
        made.extend(ops)


def release_step(data: st.DataObject, server: Agreeing) -> None:
    held = [s.op.op_id for s in server.log() if not s.applied]
    if held:
        chosen = data.draw(st.lists(st.sampled_from(held), min_size=1, max_size=3))
        try:
            server.release(chosen)
        except SyncRefused:
            return


def read_step(data: st.DataObject, server: Agreeing) -> None:
    scope = data.draw(st.sampled_from(SCOPES), label="scope")
    cursor = data.draw(st.integers(0, server.newest() + 1), label="cursor")
    limit = data.draw(st.integers(1, 6), label="limit")
    if data.draw(st.booleans(), label="snapshot"):
        server.snapshot(scope, cursor, limit)
        return
    if cursor > server.newest():
        with pytest.raises(CursorExpired, match="ahead of the newest"):
            server.pull(scope, cursor, limit)
        return
    try:
        server.pull(scope, cursor, limit)
    except CursorExpired:  # a record left the scope after the cursor: both refused
        assert scope is not None
        assert cursor > 0


@pytest.fixture
def engine(database):
    engine = quick_engine(database)
    yield engine
    engine.dispose()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_store_and_replica_agree(engine, data: st.DataObject) -> None:
    now = [START_MS]
    server = Agreeing(engine, lambda: now[0])
    history = History()
    try:
        for _ in range(data.draw(st.integers(1, 8), label="steps")):
            now[0] += data.draw(st.sampled_from([0, 5, 60_000]), label="tick")
            step = data.draw(st.sampled_from(["push"] * 4 + ["release", "read"]), label="step")
            if step == "push":
                push_step(data, server, history, now[0])
            elif step == "release":
                release_step(data, server)
            else:
                read_step(data, server)
        server.verify()
        for scope in SCOPES:
            server.snapshot(scope, 0, 1000)
    finally:
        server.close()
