"""The reference client against the in-memory server: edits, sync, and every refusal."""

from __future__ import annotations

import copy
import shutil

import pytest

from mobile_schema.client import DeviceClient
from mobile_schema.errors import DeviceError, EditRejected, NeedsRegistration, ProtocolError
from mobile_schema.local_store import LocalStore
from mobile_schema.transport import Reply
from sync import hlc
from tests.device.conftest import GRID_A, GRID_B, GRID_C
from tests.device.harness import SERVER_URL, journal, open_device, view


def test_an_offline_edit_reaches_a_second_device(make_device, server):
    phone, other = make_device("phone"), make_device("other", "worker2")
    record_id = phone.create(
        "household", GRID_A, {"head_name": "王芳", "housing_type": "rented", "notes": "二楼"}
    )
    assert phone.record(record_id).values["head_name"] == "王芳"
    assert phone.unsent_count() == 3
    report = phone.sync()
    assert (report.pushed, report.applied, phone.unsent_count()) == (3, 3, 0)
    other.sync()
    assert other.record(record_id).values == {
        "head_name": "王芳",
        "housing_type": "rented",
        "notes": "二楼",
    }
    assert other.record(record_id).form_id == "household"


def test_edits_go_through_the_forms_validator_and_scope(make_device):
    phone = make_device("phone")
    record_id = phone.create("household", GRID_A, {"head_name": "李"})
    before = journal(phone)
    cases = [
        (lambda: phone.set(record_id, "housing_type", "castle"), "unknown_choice"),
        (lambda: phone.set(record_id, "no_such_field", 1), "unknown_field"),
        (lambda: phone.set(record_id, "head_name", 42), "wrong_type"),
        (lambda: phone.set(record_id, "head_name", "a\ud800"), "wrong_type"),  # no text
        (lambda: phone.set(record_id, "head_name", "a\x00"), "wrong_type"),
        (lambda: phone.create("household", GRID_C, {"head_name": "x"}), "grid_out_of_scope"),
        (lambda: phone.create("no_such_form", GRID_A, {}), "unknown_form"),
        (lambda: phone.set("00000000-0000-4000-8000-000000000000", "notes", "x"), "unknown_record"),
        # One bad value refuses the whole edit: the good one beside it is not queued either.
        (
            lambda: phone.create("household", GRID_A, {"head_name": "x", "housing_type": "?"}),
            "unknown_choice",
        ),
    ]
    for edit, reason in cases:
        with pytest.raises(EditRejected) as refused:
            edit()
        assert refused.value.reason == reason
    assert journal(phone) == before


@pytest.mark.parametrize("grid_id", [0, -1, 2**53, 10**20])
def test_an_op_outside_the_wire_schema_is_refused_before_it_is_queued(make_device, server, grid_id):
    server.add_user("admin", None, role="admin")  # every grid: no scope check to stop it
    phone = make_device("phone", "admin")
    with pytest.raises(EditRejected) as refused:
        phone.create("household", grid_id, {"head_name": "typo"})
    assert refused.value.reason == "schema_violation"
    assert "/grid_id" in refused.value.detail
    assert journal(phone) == []
    record_id = phone.create("household", GRID_A, {"head_name": "valid"})
    assert phone.sync().applied == 1
    assert server.state.replica.state()[(record_id, "head_name")].value == "valid"


def test_a_record_id_outside_the_wire_schema_is_refused(make_device):
    phone = make_device("phone")
    with pytest.raises(EditRejected) as refused:
        phone.create("household", GRID_A, {"notes": "x"}, record_id="NOT-A-UUID")
    assert (refused.value.reason, journal(phone)) == ("schema_violation", [])


def test_ops_are_numbered_stamped_and_based_on_the_cursor(make_device):
    phone, other = make_device("phone"), make_device("other", "worker2")
    other.create("household", GRID_A, {"head_name": "A"})
    other.sync()
    phone.sync()
    cursor = phone.state().cursor
    assert cursor > 0
    record_id = phone.create("household", GRID_B, {"head_name": "B", "notes": "n"})
    phone.set(record_id, "notes", "m")
    rows = phone.store.query("SELECT seq, hlc, base FROM ops ORDER BY id")
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert [r["base"] for r in rows] == [cursor] * 3
    stamps = [r["hlc"] for r in rows]
    assert stamps == sorted(set(stamps))


def test_select_multiple_sends_adds_and_removes(make_device):
    phone, other = make_device("phone"), make_device("other", "worker2")
    record_id = phone.create(
        "hazard_check", GRID_A, {"severity": "high", "categories": ["fire", "gas"]}
    )
    phone.set(record_id, "categories", ["gas", "flood"])
    kinds = [
        (r["kind"], r["value"])
        for r in phone.store.query(
            "SELECT kind, value FROM ops WHERE field = 'categories' ORDER BY id"
        )
    ]
    assert kinds == [("add", '"fire"'), ("add", '"gas"'), ("add", '"flood"'), ("remove", '"fire"')]
    assert phone.record(record_id).values["categories"] == ["flood", "gas"]
    phone.sync()
    other.sync()
    assert other.record(record_id).values["categories"] == ["flood", "gas"]
    other.remove(record_id, "categories", "gas")
    other.add(record_id, "categories", "fire")
    other.sync()
    phone.sync()
    assert phone.record(record_id).values["categories"] == ["fire", "flood"]


def test_every_kind_of_edit_moves_the_record_to_the_grid_given(make_device):
    phone, other = make_device("phone"), make_device("other", "worker2")
    record_id = phone.create("hazard_check", GRID_A, {"severity": "low"})
    phone.add(record_id, "categories", "fire", grid_id=GRID_B)
    phone.remove(record_id, "categories", "fire", grid_id=GRID_A)
    phone.delete(record_id, grid_id=GRID_B)
    grids = [r["grid_id"] for r in phone.store.query("SELECT grid_id FROM ops ORDER BY id")]
    assert grids == [GRID_A, GRID_B, GRID_A, GRID_B]
    phone.sync()
    other.sync()
    assert other.record(record_id).grid_id == GRID_B


def test_grid_0_is_refused_not_taken_for_the_records_own(make_device):
    phone = make_device("phone")
    record_id = phone.create("household", GRID_A, {"notes": "n"})
    before = journal(phone)
    for edit in (
        lambda: phone.set(record_id, "notes", "m", grid_id=0),
        lambda: phone.delete(record_id, grid_id=0),
    ):
        with pytest.raises(EditRejected, match="grid_out_of_scope"):
            edit()
    assert journal(phone) == before


def test_one_save_is_all_or_nothing(make_device):
    phone = make_device("phone")
    record_id = phone.create("hazard_check", GRID_A, {"severity": "low"})
    before = journal(phone)
    edits = [
        *phone.set_edits(record_id, "description", "first visit"),
        phone.choice_edit(record_id, "categories", "add", "fire"),
        *phone.set_edits(record_id, "severity", "bogus"),
    ]
    with pytest.raises(EditRejected, match="unknown_choice"):
        phone.save(edits)
    assert journal(phone) == before
    phone.save(edits[:2])
    assert [j[1] for j in journal(phone)] == [1, 2, 3]


def test_repeat_rows_and_tombstones(make_device):
    phone, other = make_device("phone"), make_device("other", "worker2")
    household = phone.create("household", GRID_A, {"head_name": "张"})
    member = phone.create(
        "household",
        GRID_A,
        {"member_name": "张三", "birth_year": 1950},
        parent=household,
        group="members",
        order=1,
    )
    phone.sync()
    other.sync()
    row = other.record(member).values
    assert (row["_parent"], row["_group"], row["member_name"]) == (household, "members", "张三")
    other.delete(member)
    other.sync()
    phone.sync()
    assert phone.record(member).deleted
    assert member not in {r.record_id for r in phone.records()}
    phone.restore(member)
    assert not phone.record(member).deleted


def test_the_device_clock_catches_up_with_the_server(make_device, server):
    slow = 1_000_000
    phone = make_device("phone", wall=lambda: slow)  # a phone whose clock is years behind
    other = make_device("other", "worker2")
    record_id = other.create("household", GRID_A, {"notes": "server time"})
    other.sync()
    phone.sync()
    assert hlc.from_wire(phone.state().hlc) >= server.state.replica.clock.peek()
    assert hlc.from_wire(phone.state().hlc) > hlc.pack(slow)
    # An edit made after seeing another wins, however slow the phone's clock.
    phone.set(record_id, "notes", "seen and corrected")
    phone.sync()
    other.sync()
    assert other.record(record_id).values["notes"] == "seen and corrected"


def test_a_clock_far_ahead_is_quarantined_and_shown(make_device, server):
    phone = make_device("phone", wall=lambda: server.wall_ms + 3_600_000)
    record_id = phone.create("household", GRID_A, {"notes": "from the future"})
    report = phone.sync()
    assert report.quarantined == 1
    assert phone.record(record_id) is None  # the server left it out, so does the device
    kinds = [(entry.kind, entry.payload["reason"]) for entry in phone.inbox()]
    assert kinds == [("quarantine", "clock_ahead")]


def test_413_halves_the_batch_until_it_fits(make_device, server):
    phone = make_device("phone", push_batch=16)
    server.max_ops = 3
    for n in range(10):
        phone.create("household", GRID_A, {"notes": f"visit {n}"})
    report = phone.sync()
    assert (report.pushed, report.push_batch, phone.unsent_count()) == (10, 2, 0)
    sizes = [len(r.body["ops"]) for r in server.requests if r.path.endswith("/push")]
    assert sizes == [10, 5, 2, 2, 2, 2, 2]
    assert server.state.replica.acked[phone.state().device_id] == 10


def test_401_registers_again_and_renumbers_unsent_ops(make_device, server):
    phone, other = make_device("phone"), make_device("other", "worker2")
    record_id = phone.create("household", GRID_A, {"notes": "one"})
    phone.sync()
    old_device = phone.state().device_id
    phone.set(record_id, "notes", "two")
    phone.set(record_id, "head_name", "王")
    server.revoke(old_device)
    report = phone.sync()
    assert report.registered_again
    new_device = phone.state().device_id
    assert new_device != old_device
    assert journal(phone)[0][:2] == (old_device, 1)
    assert [j[:2] for j in journal(phone)[1:]] == [(new_device, 1), (new_device, 2)]
    assert server.state.replica.acked[new_device] == 2
    other.sync()
    assert other.record(record_id).values == {"notes": "two", "head_name": "王"}


def test_401_without_credentials_keeps_the_ops_for_a_later_sign_in(tmp_path, server):
    password = server.users["worker1"].password
    phone = open_device(tmp_path / "phone.db", server)
    phone.register("worker1", password)
    phone.sync()
    phone.create("household", GRID_A, {"notes": "kept"})
    server.revoke(phone.state().device_id)
    with pytest.raises(NeedsRegistration):
        phone.sync()
    assert phone.unsent_count() == 1
    phone.register("worker1", password)
    phone.sync()
    assert phone.unsent_count() == 0
    phone.close()


def test_the_server_url_changes_only_with_a_successful_registration(make_device, server):
    phone = make_device("phone")
    before = phone.state()
    moved = DeviceClient(phone.store, server, server_url="http://moved.test")
    with pytest.raises(NeedsRegistration):
        moved.register("worker1", "wrong password")
    assert phone.state() == before
    server.fail = lambda request: "before"
    with pytest.raises(ConnectionError):
        moved.register("worker1", server.users["worker1"].password)
    assert phone.state() == before
    server.fail = lambda request: None
    moved.register("worker1", server.users["worker1"].password)
    assert phone.state().server_url == "http://moved.test"


def test_a_bad_server_url_is_refused_before_the_store_is_touched(make_device, tmp_path):
    phone = make_device("phone")
    phone.close()
    for url in ("htp://typo", "http://", "http://host:port"):
        with pytest.raises(ValueError, match="URL"):
            DeviceClient.open(tmp_path / "phone.db", url)
        with pytest.raises(ValueError, match="URL"):
            DeviceClient.open(tmp_path / "new.db", url)
    assert not (tmp_path / "new.db").exists()
    with LocalStore(tmp_path / "phone.db") as store:
        assert store.state().server_url == SERVER_URL


def stamped_journal(client) -> list[tuple[str, int, str, str, int]]:
    """(device_id, seq, content, hlc, base) of every op, in journal order."""
    rows = client.store.query("SELECT hlc, base FROM ops ORDER BY id")
    return [(*op, row["hlc"], row["base"]) for op, row in zip(journal(client), rows, strict=True)]


def test_a_server_that_lost_the_device_gets_its_whole_journal_again(make_device, server):
    backup = server.backup()  # taken before the phone registers
    phone, other = make_device("phone"), make_device("other", "worker2")
    record_id = phone.create("household", GRID_A, {"head_name": "王芳", "notes": "first visit"})
    phone.sync()
    phone.set(record_id, "notes", "second visit")
    before = stamped_journal(phone)
    old_device = phone.state().device_id
    server.restore(backup)  # the server lost the phone: 401 device_unknown
    report = phone.sync()
    assert (report.registered_again, report.snapshot, report.pushed) == (True, True, 3)
    new_device = phone.state().device_id
    after = stamped_journal(phone)
    assert [op[:2] for op in after] == [(new_device, 1), (new_device, 2), (new_device, 3)]
    assert [op[2:] for op in after] == [op[2:] for op in before]  # same content, HLC, base
    assert {op[0] for op in before} == {old_device}
    assert (phone.state().acked_seq, server.state.replica.acked[new_device]) == (3, 3)
    other.sync()
    expected = {"head_name": "王芳", "notes": "second visit"}
    assert phone.record(record_id).values == other.record(record_id).values == expected


def test_a_revoked_device_keeps_its_acknowledged_ops_where_they_are(make_device, server):
    phone = make_device("phone")
    phone.create("household", GRID_A, {"notes": "acknowledged"})
    phone.sync()
    old_device = phone.state().device_id
    server.revoke(old_device)  # 401 token_revoked: the server still holds seq 1
    assert phone.sync().pushed == 0
    assert journal(phone)[0][:2] == (old_device, 1)


def test_a_lost_registration_without_credentials_waits_with_every_op_shown(tmp_path, server):
    password = server.users["worker1"].password
    backup = server.backup()
    phone = open_device(tmp_path / "phone.db", server)
    phone.register("worker1", password)
    phone.sync()
    record_id = phone.create("household", GRID_A, {"notes": "acknowledged"})
    phone.sync()
    server.restore(backup)
    with pytest.raises(NeedsRegistration, match="register this device again"):
        phone.sync()
    assert phone.unsent_count() == 1
    assert phone.record(record_id).values == {"notes": "acknowledged"}
    with pytest.raises(DeviceError, match="not sent yet"):
        phone.register("worker2", server.users["worker2"].password)
    phone.register("worker1", password)
    assert phone.sync().pushed == 1
    assert server.state.replica.state()[(record_id, "notes")].value == "acknowledged"
    phone.close()


def test_registering_another_user_refuses_while_ops_are_unsent(make_device, server):
    phone = make_device("phone")
    phone.create("household", GRID_A, {"notes": "mine"})
    with pytest.raises(Exception, match="not sent yet"):
        phone.register("worker2", server.users["worker2"].password)
    assert phone.state().username == "worker1"
    phone.sync()
    phone.register("worker2", server.users["worker2"].password)
    assert (phone.state().username, phone.state().cursor) == ("worker2", 0)


def test_the_next_user_never_sees_the_previous_users_edits(tmp_path, server):
    server.add_user("worker3", [GRID_C])
    phone = open_device(tmp_path / "phone.db", server)
    phone.register("worker1", server.users["worker1"].password)
    phone.sync()
    phone.create("household", GRID_A, {"notes": "worker1's visit"})
    server.fail = lambda request: "before" if request.path.endswith("/pull") else None
    with pytest.raises(ConnectionError):
        phone.sync()  # pushed and acknowledged, but no pull has brought it back
    server.fail = lambda request: None
    phone.register("worker3", server.users["worker3"].password)
    assert phone.records() == []
    phone.sync()
    assert phone.records() == []
    phone.close()


def test_a_server_restore_means_seq_gap_then_snapshot(make_device, server):
    phone, other = make_device("phone"), make_device("other", "worker2")
    record_id = phone.create("household", GRID_A, {"notes": "before backup"})
    phone.sync()
    other.sync()
    backup = server.backup()
    for n in range(3):
        other.set(record_id, "head_name", f"lost {n}")
    other.sync()
    phone.sync()
    assert phone.record(record_id).values["head_name"] == "lost 2"
    server.restore(backup)  # the server lost the other device's three ops
    phone.set(record_id, "notes", "during restore")
    report = phone.sync()
    assert report.snapshot  # its cursor was ahead of the restored server: 410
    assert phone.record(record_id).values == {"notes": "during restore"}
    report = other.sync()  # seq_gap: the other device sends its lost ops again
    assert (report.pushed, report.applied) == (3, 3)
    phone.sync()
    assert phone.record(record_id).values == {"notes": "during restore", "head_name": "lost 2"}
    assert view(phone) == view(other)


@pytest.mark.parametrize("fields", [1, 2])  # 1: the probe itself resends; 2: a seq_gap
def test_a_quarantine_the_server_lost_is_forgotten_when_the_op_applies_on_resend(
    make_device, server, fields
):
    phone = make_device("phone", wall=lambda: server.wall_ms + 3_600_000)
    device_id = phone.state().device_id
    backup = server.backup()
    values = {"notes": "from the future", "head_name": "未来"}
    record_id = phone.create("household", GRID_A, dict(list(values.items())[:fields]))
    assert phone.sync().quarantined == fields  # clock_ahead
    server.restore(backup)  # the server loses the ops and their quarantine
    server.wall_ms += 7_200_000  # by now their HLCs are in the past

    def once_resent(request) -> str | None:
        held = server.state.replica.acked.get(device_id, 0) == fields
        return "before" if held and request.method == "GET" else None

    server.fail = once_resent
    with pytest.raises(ConnectionError):
        phone.sync()  # 410, snapshot, probe (and resend); no pull has brought them back
    assert server.state.replica.state()[(record_id, "notes")].value == "from the future"
    assert phone.record(record_id).values == dict(list(values.items())[:fields])
    assert [entry for entry in phone.inbox() if entry.source == "push"] == []


def test_a_restored_phone_gets_seq_reuse_and_a_new_registration(make_device, server, tmp_path):
    phone, other = make_device("phone"), make_device("other", "worker2")
    record_id = phone.create("household", GRID_A, {"notes": "one"})
    phone.sync()
    phone.close()
    shutil.copyfile(tmp_path / "phone.db", tmp_path / "phone-backup.db")
    phone = open_device(tmp_path / "phone.db", server)
    phone.set(record_id, "notes", "two")  # reaches the server, then the phone is lost
    phone.sync()
    phone.close()
    credentials = ("worker1", server.users["worker1"].password)
    restored = open_device(tmp_path / "phone-backup.db", server, credentials)
    restored.set(record_id, "head_name", "three")  # the same seq as "two", other content
    report = restored.sync()
    assert report.registered_again
    other.sync()
    assert other.record(record_id).values == {"notes": "two", "head_name": "three"}
    restored.close()


def test_the_inbox_shows_conflicts_and_quarantined_ops(make_device, server):
    phone, other = make_device("phone"), make_device("other", "worker2")
    record_id = phone.create("hazard_check", GRID_A, {"severity": "low"})
    phone.sync()
    other.sync()
    phone.set(record_id, "severity", "high")  # both edit offline, neither seeing the other
    other.set(record_id, "severity", "medium")
    phone.sync()
    assert other.sync().conflicts == 1
    phone.sync()
    entries = [e for e in phone.inbox() if e.kind == "conflict"]
    assert len(entries) == 1
    values = sorted(v["value"] for v in entries[0].payload["values"])
    assert values == ["high", "medium"]
    server.users["worker1"].grid_ids = [GRID_B]  # reassigned, the phone does not know yet
    phone.set(record_id, "severity", "critical")
    phone.sync()
    quarantine = [e.payload["reason"] for e in phone.inbox() if e.kind == "quarantine"]
    assert quarantine == ["grid_out_of_scope"]
    assert phone.record(record_id).values["severity"] in ("high", "medium")


def test_forms_are_fetched_once_then_not_modified(make_device, server):
    phone = make_device("phone")
    assert phone.forms.latest_version("household") == 1
    assert phone.sync().forms_updated is False
    forms_requests = [r for r in server.requests if r.path.endswith("/forms/bundle")]
    assert forms_requests[-1].headers["If-None-Match"] == '"builtin-1"'


class Corrupting:
    """Passes requests on, but spoils the replies to one path."""

    def __init__(self, inner, path: str, spoil) -> None:
        self.inner, self.path, self.spoil = inner, path, spoil

    def send(self, request):
        reply = self.inner.send(request)
        if request.path != self.path or reply.status != 200:
            return reply
        return Reply(reply.status, self.spoil(copy.deepcopy(reply.body)), reply.headers)


def spoil_hlc(body):
    body["changes"][0]["hlc"] = "NOT-AN-HLC"
    return body


def reverse_changes(body):
    body["changes"].reverse()
    return body


def lower_ack(body):
    body["acked_seq"] -= 1
    return body


@pytest.mark.parametrize(
    ("path", "spoil"),
    [
        ("/api/v1/sync/pull", spoil_hlc),
        ("/api/v1/sync/pull", reverse_changes),
        ("/api/v1/sync/push", lower_ack),
    ],
)
def test_a_bad_reply_is_refused_and_nothing_stored(make_device, server, path, spoil):
    phone, other = make_device("phone"), make_device("other", "worker2")
    for n in range(2):
        other.create("household", GRID_A, {"notes": f"n{n}"})
    other.sync()
    phone.create("household", GRID_A, {"notes": "mine"})
    before = (phone.state(), view(phone))
    phone.transport = Corrupting(server, path, spoil)
    with pytest.raises(ProtocolError):
        phone.sync()
    if path.endswith("pull"):  # the push before it went through
        assert phone.state().cursor == before[0].cursor
        assert view(phone) == before[1]
    else:
        assert phone.state().acked_seq == before[0].acked_seq
    phone.transport = server
    phone.sync()
    assert len(phone.records()) == 3
    assert phone.unsent_count() == 0
