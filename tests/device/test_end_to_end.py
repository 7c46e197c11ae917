"""The reference client against the real app, on SQLite and PostgreSQL.

Every reply is checked against its JSON Schema (AppTransport). The scenarios are the
issue's: edit offline and sync to a second device; a kill between any two steps;
seq_gap, 410, 401 and 413; the inbox.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3

import pytest
from sqlalchemy import func, select

from mobile_schema.client import DeviceClient
from mobile_schema.errors import NeedsRegistration
from server import create_app, sync_service
from server.devices import register_device, revoke_device
from server.models import Device, Grid, User
from server.users import assign_grids
from sync.store.tables import ops as server_ops
from tests.device.app_transport import AppTransport
from tests.device.conftest import PASSWORDS
from tests.device.faults import Faults, Killed, open_faulty
from tests.device.harness import journal, open_device, view


@pytest.fixture
def transport(app, world) -> AppTransport:
    return AppTransport(app)


@pytest.fixture
def devices(tmp_path, transport):
    opened: list[DeviceClient] = []

    def make(name: str, username: str = "worker1", transport=transport, **options):
        credentials = (username, PASSWORDS[username])
        client = open_device(tmp_path / f"{name}.db", transport, credentials, **options)
        client.register(*credentials, name)
        client.sync()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def server_op_count(database, device_id: str) -> int:
    with database.session() as session:
        return session.scalar(
            select(func.count()).select_from(server_ops).where(server_ops.c.device_id == device_id)
        )


def test_an_offline_edit_reaches_a_second_device(devices, world):
    phone, leader = devices("phone"), devices("leader", "leader")
    grid = phone.state().grid_ids[0]
    assert phone.forms.latest_version("household") is not None
    record_id = phone.create("household", grid, {"head_name": "王芳", "housing_type": "rented"})
    member = phone.create(
        "household",
        grid,
        {"member_name": "王小明", "birth_year": 2015},
        parent=record_id,
        group="members",
        order=1,
    )
    phone.add(member, "categories", "left_behind_child")
    report = phone.sync()
    assert (report.pushed, report.applied, report.quarantined) == (8, 8, 0)
    assert server_op_count(world, phone.state().device_id) == 8
    leader.sync()
    assert leader.record(record_id).values == {"head_name": "王芳", "housing_type": "rented"}
    assert leader.record(member).values["categories"] == ["left_behind_child"]
    assert view(leader) == view(phone)


def test_seq_gap_is_answered_by_resending(devices, world):
    phone = devices("phone")
    grid = phone.state().grid_ids[0]
    record_id = phone.create("household", grid, {"notes": "one"})
    phone.set(record_id, "notes", "two")
    phone.set(record_id, "notes", "three")
    with phone.store.transaction("pretend") as connection:
        # As if the server had acknowledged seqs 1-2 and then lost them in a restore.
        connection.execute("UPDATE device SET acked_seq = 2")
    report = phone.sync()
    assert report.snapshot  # a seq_gap below acked_seq means the server lost ops
    assert report.pushed == 3
    assert server_op_count(world, phone.state().device_id) == 3
    assert phone.record(record_id).values == {"notes": "three"}


def test_410_means_a_snapshot_that_keeps_unsent_ops(devices):
    phone, other = devices("phone"), devices("other", "leader")
    grid = phone.state().grid_ids[0]
    shared = other.create("household", grid, {"notes": "theirs"})
    other.sync()
    with phone.store.transaction("pretend") as connection:
        connection.execute("UPDATE device SET cursor = 999999999")  # from a lost timeline
    mine = phone.create("household", grid, {"notes": "mine"})
    report = phone.sync()
    assert report.snapshot
    assert phone.state().cursor < 999999999
    assert phone.record(shared).values == {"notes": "theirs"}
    assert phone.record(mine).values == {"notes": "mine"}
    other.sync()
    assert other.record(mine).values == {"notes": "mine"}


def test_401_registers_again(devices, world):
    phone, other = devices("phone"), devices("other", "leader")
    grid = phone.state().grid_ids[0]
    record_id = phone.create("household", grid, {"notes": "before"})
    phone.sync()
    old = phone.state().device_id
    phone.set(record_id, "notes", "after revocation")
    with world.session() as session:
        revoke_device(session, session.get(Device, old))
    report = phone.sync()
    assert report.registered_again
    assert phone.state().device_id != old
    assert server_op_count(world, phone.state().device_id) == 1
    other.sync()
    assert other.record(record_id).values == {"notes": "after revocation"}


def test_401_without_credentials_stops_and_keeps_ops(tmp_path, transport, world):
    phone = open_device(tmp_path / "phone.db", transport)
    phone.register("worker1", PASSWORDS["worker1"])
    phone.sync()
    phone.create("household", phone.state().grid_ids[0], {"notes": "kept"})
    with world.session() as session:
        revoke_device(session, session.get(Device, phone.state().device_id))
    with pytest.raises(NeedsRegistration):
        phone.sync()
    assert phone.unsent_count() == 1
    phone.close()


def test_413_halves_the_batch(devices, settings, world):
    small = create_app(dataclasses.replace(settings, max_push_ops=3), world)
    transport = AppTransport(small)
    phone = devices("phone", transport=transport, push_batch=16)
    grid = phone.state().grid_ids[0]
    for n in range(7):
        phone.create("household", grid, {"notes": f"visit {n}"})
    report = phone.sync()
    assert (report.pushed, phone.unsent_count(), report.push_batch) == (7, 0, 3)
    statuses = [
        reply.status for request, reply in transport.replies if request.path.endswith("push")
    ]
    assert statuses == [413, 200, 200, 200]  # 7 refused, then 3 + 3 + 1
    assert server_op_count(world, phone.state().device_id) == 7


def test_pull_pages_and_forms_etag(devices, settings, world):
    paged = AppTransport(create_app(dataclasses.replace(settings, pull_page_size=2), world))
    writer = devices("writer")
    grid = writer.state().grid_ids[0]
    for n in range(3):
        writer.create("household", grid, {"notes": f"n{n}", "head_name": f"h{n}"})
    writer.sync()
    reader = devices("reader", "leader", transport=paged)
    assert reader.sync().forms_updated is False  # the ETag still matches: 304
    assert len([r for r in reader.records() if r.form_id == "household"]) == 3
    pulls = [q for q, _ in paged.replies if q.path.endswith("/pull")]
    assert len(pulls) >= 3


def test_the_inbox_shows_conflicts_and_quarantine(devices):
    phone, other = devices("phone"), devices("other", "leader")
    grid = phone.state().grid_ids[0]
    record_id = phone.create("hazard_check", grid, {"severity": "low"})
    phone.sync()
    other.sync()
    phone.set(record_id, "severity", "high")
    other.set(record_id, "severity", "medium")
    phone.sync()
    assert other.sync().conflicts == 1
    phone.sync()
    conflicts = [e for e in phone.inbox() if e.kind == "conflict"]
    assert len(conflicts) == 1
    assert sorted(v["value"] for v in conflicts[0].payload["values"]) == ["high", "medium"]
    future = devices("future", wall=lambda: 4_000_000_000_000)  # a clock decades ahead
    future.create("household", grid, {"notes": "from the future"})
    assert future.sync().quarantined == 1
    reasons = [e.payload["reason"] for e in future.inbox() if e.kind == "quarantine"]
    assert reasons[:1] == ["clock_ahead"]


def run_killable(path, transport, faults: Faults, record_id: str) -> DeviceClient:
    """A phone edits and syncs in small batches and pages; killed once at step `at`."""
    credentials = ("worker1", PASSWORDS["worker1"])
    options = {"push_batch": 2, "page_limit": 2}
    phone = open_faulty(path, transport, faults, credentials, **options)
    grid = phone.state().grid_ids[0]

    def restart():
        phone.close()
        return open_faulty(path, transport, faults, credentials, **options)

    script = [
        lambda c: c.create(
            "household", grid, {"head_name": "王", "notes": "a"}, record_id=record_id
        ),
        lambda c: c.set(record_id, "housing_type", "owned"),
        None,
        lambda c: c.set(record_id, "notes", "b"),
        None,
    ]
    faults.armed = True
    for edit in script:
        if edit is not None:
            made = len(journal(phone))
            try:
                edit(phone)
            except Killed:
                phone = restart()
                if len(journal(phone)) == made:
                    edit(phone)
            continue
        while True:
            try:
                phone.sync()
                break
            except Killed:
                phone = restart()
    faults.armed = False
    phone.sync()
    return phone


def run_id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


class PhoneFactory:
    """Fresh phones that have synced up to now, without a sign-in (and its scrypt) each.

    A scout device keeps pulling; each new phone starts as a copy of its store with
    a device registered through `server.devices.register_device`.
    """

    def __init__(self, tmp_path, transport, world) -> None:
        self.tmp_path, self.world = tmp_path, world
        self.scout = open_device(tmp_path / "scout.db", transport, ("worker1", "-"))
        self.scout.register("worker1", PASSWORDS["worker1"])

    def phone(self, name: str):
        self.scout.sync()
        path = self.tmp_path / f"{name}.db"
        target = sqlite3.connect(path)
        self.scout.store.connection.backup(target)
        with self.world.session() as session:
            user = session.scalar(select(User).where(User.username == "worker1"))
            device, token = register_device(session, user, name)
            device_id = device.id
        target.execute(
            "UPDATE device SET device_id = ?, token = ?, next_seq = 1, acked_seq = 0",
            (device_id, token),
        )
        target.commit()
        target.close()
        return path

    def close(self) -> None:
        self.scout.close()


def test_a_kill_between_any_two_steps_loses_and_doubles_nothing(tmp_path, transport, world):
    factory = PhoneFactory(tmp_path, transport, world)
    faults = Faults()
    phone = run_killable(factory.phone("reference"), transport, faults, run_id(0))
    expected = phone.record(run_id(0)).values
    steps, made = faults.count, len(journal(phone))
    phone.close()
    assert (steps, made) == (23, 4)
    for offset, mode in ((0, "before"), (steps, "after")):
        for at in range(1, steps + 1):
            faults = Faults(at=at, mode=mode)
            record_id = run_id(offset + at)
            phone = run_killable(factory.phone(f"{mode}{at}"), transport, faults, record_id)
            try:
                mine = journal(phone)
                where = (mode, faults.steps[at - 1])
                assert [seq for _, seq, _ in mine] == list(range(1, made + 1)), where
                assert phone.state().acked_seq == made, where
                assert server_op_count(world, phone.state().device_id) == made, where
                assert phone.record(record_id).values == expected, where
            finally:
                phone.close()
    factory.scout.sync()
    runs = [r for r in factory.scout.records() if r.record_id.startswith(run_id(0)[:24])]
    assert len(runs) == 2 * steps + 1
    assert all(r.values == expected for r in runs)
    factory.close()


def test_review_decisions_and_comments_reach_the_inbox(devices, world):
    from server.review import add_comment, decide

    phone = devices("phone")
    record_id = phone.create("household", phone.state().grid_ids[0], {"head_name": "赵"})
    phone.sync()
    with world.session() as session:
        supervisor = session.scalar(select(User).where(User.username == "supervisor"))
        decide(session, record_id, supervisor, "needs_revision", "门牌号缺失")
        add_comment(session, record_id, supervisor, "请核对户主姓名", "head_name")
    assert phone.sync().inbox_new == 2
    entries = [(e.kind, e.record_id, e.source) for e in phone.inbox()]
    assert entries == [("review", record_id, "inbox"), ("comment", record_id, "inbox")]
    review, comment = (e.payload for e in phone.inbox())
    assert (review["decision"], review["comment"]) == ("needs_revision", "门牌号缺失")
    assert (comment["field"], comment["body"]) == ("head_name", "请核对户主姓名")
    assert phone.sync().inbox_new == 0


def test_an_attachment_announcement_matches_its_schema(devices, transport):
    from mobile_schema.transport import Request

    phone = devices("phone")
    photo = b"\xff\xd8\xff\xe0" + b"\x00" * 60
    digest = hashlib.sha256(photo).hexdigest()
    body = {"sha256": digest, "size": len(photo), "content_type": "image/jpeg"}
    reply = transport.send(
        Request("POST", "/api/v1/attachments", body=body, token=phone.state().token)
    )  # AppTransport checks the reply against attachment_target.json
    assert reply.status == 201
    assert (reply.body["sha256"], reply.body["exists"]) == (digest, False)
    assert reply.body["method"] == "PUT"


def _grid(database, code: str) -> int:
    with database.session() as session:
        return session.scalar(select(Grid.id).where(Grid.code == code))


def test_a_record_that_leaves_the_scope_leaves_the_phone(devices, world, settings):
    phone, other = devices("phone"), devices("other", "worker2")
    mine, theirs = _grid(world, "HP-C1-R1-G1"), _grid(world, "HP-C2-R1-G1")
    moving = phone.create("household", mine, {"head_name": "王芳"})
    staying = phone.create("household", mine, {"head_name": "李娜"})
    phone.sync()
    assert phone.record(moving) is not None
    with world.session() as session:  # the admin moves the household to worker2's grid
        admin = session.scalar(select(User).where(User.username == "admin"))
        edit = sync_service.Edit(moving, "household", 1, theirs, "notes", "set", "搬家")
        sync_service.submit_edits(session, admin, [edit], sync_service.rules_for(session, settings))
        session.commit()
    report = phone.sync()
    assert report.snapshot  # the cursor was refused: a record it held left its scope
    assert phone.record(moving) is None
    assert phone.record(staying).values == {"head_name": "李娜"}
    other.sync()
    assert other.record(moving).values == {"head_name": "王芳", "notes": "搬家"}
    assert not phone.sync().snapshot  # once is enough


def test_a_change_of_grids_brings_the_new_grid_and_drops_the_old(devices, world):
    phone, other = devices("phone"), devices("other", "worker2")
    mine, theirs = _grid(world, "HP-C1-R1-G1"), _grid(world, "HP-C2-R1-G1")
    old = phone.create("household", mine, {"head_name": "王芳"})
    new = other.create("household", theirs, {"head_name": "李娜"})
    phone.sync()
    other.sync()
    unsent = phone.create("household", mine, {"head_name": "张伟"})
    with world.session() as session:
        worker = session.scalar(select(User).where(User.username == "worker1"))
        assign_grids(session, worker, [session.get(Grid, theirs)])
        session.commit()
    report = phone.sync()
    assert report.snapshot
    assert phone.record(new).values == {"head_name": "李娜"}
    assert phone.record(old) is None
    assert phone.record(unsent) is None  # pushed first, quarantined: no longer its grid
    assert phone.unsent_count() == 0
    assert not phone.sync().snapshot
