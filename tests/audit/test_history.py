"""A record's history and as_of on one told story, through the domain, the CLI and errors."""

import datetime as dt

import pytest
from click.testing import CliRunner

from server.audit import record_event
from server.audit.chain import format_time
from server.audit.history import load_ops, record_history, state_at
from server.cli import cli
from server.devices import register_device
from server.models import User
from server.scope import Scope
from sync import hlc
from sync.ops import Op
from sync.replica import ServerReplica
from tests.audit.factories import store_release, store_replica_push
from tests.sync.world import check_field, lookup_form

EVERYTHING = Scope(user_id=0, everything=True)
RECORD = "00000000-0000-4000-8000-0000000000aa"
WALL_MS = 1_760_000_000_000
T = [dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=10 * i) for i in range(6)]


def op(device, seq, field, kind, value, *, stamp, base):
    return Op(device, seq, RECORD, "household", 1, 2, field, kind, value, stamp, base)


@pytest.fixture
def story(database):
    """Two workers edit one household; they collide, one sends a bad size, the admin
    releases it, the first worker settles the name, a supervisor approves."""
    with database.session() as session:
        wang = User(username="wang", role="worker", password_hash="-")
        li = User(username="li", role="worker", password_hash="-")
        boss = User(username="boss", role="supervisor", password_hash="-")
        session.add_all([wang, li, boss])
        session.flush()
        phone_a, _ = register_device(session, wang, "Redmi 12")
        phone_b, _ = register_device(session, li, "Honor X9")
        ids = {"wang": wang.id, "li": li.id, "boss": boss.id, "a": phone_a.id, "b": phone_b.id}
    a, b = ids["a"], ids["b"]
    users = {a: ids["wang"], b: ids["li"]}
    replica = ServerReplica(lookup_form, check_field, wall=lambda: WALL_MS)
    stamp = lambda n: hlc.pack(WALL_MS - 60_000 + n * 1000)  # noqa: E731
    pushes = [
        (a, [op(a, 1, "head_name", "set", "wang", stamp=stamp(1), base=0),
             op(a, 2, "tags", "add", "a", stamp=stamp(2), base=0)]),
        (b, [op(b, 1, "head_name", "set", "li", stamp=stamp(3), base=0),
             op(b, 2, "size", "set", "many", stamp=stamp(4), base=0)]),
    ]  # fmt: skip
    for (device, ops), at in zip(pushes, T[:2], strict=True):
        store_replica_push(database, replica.push(device, ops).stored, users, at)
    replica.release([(b, 2)])
    store_release(database, [4], T[2])
    settle = [op(a, 3, "head_name", "set", "zhao", stamp=stamp(5), base=4)]
    store_replica_push(database, replica.push(a, settle).stored, users, T[3])
    with database.session() as session:
        record_event(
            session,
            "review.decided",
            "record",
            RECORD,
            {"decision": "approved", "comment": "好"},
            user_id=ids["boss"],
            grid_ids=[2],
        )
    return database, ids


def test_the_history_tells_who_changed_what_from_where_and_when(story):
    database, ids = story
    with database.engine.connect() as connection:
        history = record_history(connection, RECORD, EVERYTHING)
    steps = [
        (c["kind"], c["username"], c["device_name"], c["field"], c["old"], c["new"], c["status"])
        for c in history["changes"]
    ]
    assert steps == [
        ("arrival", "wang", "Redmi 12", "head_name", None, "wang", "applied"),
        ("arrival", "wang", "Redmi 12", "tags", None, ["a"], "applied"),
        ("arrival", "li", "Honor X9", "head_name", "wang", "li", "applied"),
        ("arrival", "li", "Honor X9", "size", None, None, "quarantined"),
        ("release", "li", "Honor X9", "size", None, "many", "applied"),
        ("arrival", "wang", "Redmi 12", "head_name", "li", "zhao", "applied"),
    ]
    first = history["changes"][0]
    assert first["server_time"] == "2026-03-01T08:00:00.000000Z"
    device_time = dt.datetime.fromtimestamp((WALL_MS - 59_000) / 1000, dt.UTC)
    assert first["device_time"] == format_time(device_time)
    assert first["hlc"] == hlc.to_wire(hlc.pack(WALL_MS - 59_000))
    assert history["changes"][3]["reason"] == "wrong_type"
    release = history["changes"][4]
    assert (release["server_time"], release["released_by"]) == ("2026-03-01T08:20:00.000000Z", 1)
    [conflict] = history["conflicts"]
    assert conflict["field"] == "head_name"
    assert [(v["value"], v["winner"]) for v in conflict["values"]] == [
        ("wang", False),
        ("li", True),
    ]
    assert conflict["status"] == "resolved"
    assert (conflict["resolved_by"]["device_id"], conflict["resolved_by"]["seq"]) == (ids["a"], 3)
    [event] = history["events"]
    assert (event["action"], event["username"]) == ("review.decided", "boss")
    assert event["details"] == {"decision": "approved", "comment": "好", "grid_ids": [2]}


def test_as_of_gives_the_record_at_each_moment(story):
    database, _ = story
    with database.engine.connect() as connection:
        rows = load_ops(connection, RECORD)
    assert state_at(rows, RECORD, T[0] - dt.timedelta(seconds=1)) is None
    fields = [state_at(rows, RECORD, moment)["fields"] for moment in T[:4]]
    assert fields == [
        {"head_name": "wang", "tags": ["a"]},
        {"head_name": "li", "tags": ["a"]},
        {"head_name": "li", "size": "many", "tags": ["a"]},
        {"head_name": "zhao", "size": "many", "tags": ["a"]},
    ]
    assert state_at(rows, RECORD, T[3])["grid_id"] == 2


def run(database, tmp_path, *args):
    env = {
        "FIELDSYNC_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "FIELDSYNC_VAR_DIR": str(tmp_path / "var"),
    }
    return CliRunner().invoke(cli, ["audit", "history", *args], env=env)


def test_the_cli_prints_the_history_and_the_past_state(story, tmp_path):
    database, ids = story
    result = run(database, tmp_path, RECORD)
    assert result.exit_code == 0, result.output
    assert 'wang on Redmi 12 #1: set head_name: null -> "wang"' in result.output
    assert "li on Honor X9 #2: set size: null -> null [quarantined: wrong_type]" in result.output
    assert (
        f'conflict on head_name: "wang" by {ids["a"]}#1, "li" by {ids["b"]}#1 (winner); '
        f'resolved by {ids["a"]}#3 = "zhao"'
    ) in result.output
    assert "boss: review.decided" in result.output
    result = run(database, tmp_path, RECORD, "--as-of", "2026-03-01T08:15:00Z")
    assert result.exit_code == 0, result.output
    assert 'head_name = "li"' in result.output
    assert "size" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["00000000-0000-4000-8000-00000000ffff"], "no record"),
        ([RECORD, "--as-of", "2020-01-01"], "did not exist"),
        ([RECORD, "--as-of", "soon"], "is not an ISO date"),
    ],
)
def test_the_cli_refuses_in_one_line(story, tmp_path, args, message):
    database, _ = story
    result = run(database, tmp_path, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
