"""`fieldsync device …` against the real app served over HTTP on a local port."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from mobile_schema.local_store import LocalStore
from server import demo as demo_data
from server.cli import cli
from tests.device.conftest import PASSWORDS
from tests.device.harness import open_device
from tests.device.replica_server import ReplicaServer


@pytest.fixture
def served(app, database):
    with database.session() as session:
        demo_data.load(session)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


def device(store, *args: str, password: str | None = None):
    env = {"FIELDSYNC_DEVICE_STORE": str(store)}
    if password:
        env["FIELDSYNC_DEVICE_PASSWORD"] = password
    return CliRunner().invoke(cli, ["device", *args], env=env, catch_exceptions=False)


def test_register_edit_sync_show_and_inbox(served, tmp_path):
    phone, leader = tmp_path / "phone.db", tmp_path / "leader.db"
    result = device(
        phone,
        "register",
        "--server",
        served,
        "--username",
        "worker1",
        password=PASSWORDS["worker1"],
    )
    assert result.exit_code == 0, result.output
    assert "registered" in result.output
    assert device(phone, "sync").exit_code == 0
    assert json.loads(device(phone, "show", "--json").output) == []
    status = device(phone, "show").output
    assert "unsent 0" in status
    with LocalStore(phone) as store:
        grid = store.state().grid_ids[0]
    result = device(
        phone,
        "edit",
        "--new",
        "hazard_check",
        "--grid",
        str(grid),
        "--set",
        "severity=high",
        "--set",
        "categories=fire,gas",
        "--set",
        "description=电线老化",
    )
    assert result.exit_code == 0, result.output
    record_id = result.output.strip()
    result = device(phone, "edit", "--record", record_id, "--remove", "categories=fire")
    assert "ops waiting to sync" in result.output
    result = device(phone, "sync", "--batch", "2")
    assert result.exit_code == 0, result.output
    assert "pushed 5 ops (5 applied" in result.output

    device(
        leader, "register", "--server", served, "--username", "leader", password=PASSWORDS["leader"]
    )
    device(leader, "sync")
    shown = json.loads(device(leader, "show", record_id).output)
    assert shown["values"] == {"severity": "high", "categories": ["gas"], "description": "电线老化"}
    device(phone, "edit", "--record", record_id, "--set", "severity=low")
    device(leader, "edit", "--record", record_id, "--set", "severity=critical")
    device(phone, "sync")
    device(leader, "sync")
    device(phone, "sync")
    inbox = device(phone, "inbox").output
    assert "[conflict]" in inbox
    assert "field severity edited at once" in inbox


def test_errors_are_one_line_and_status_2(served, tmp_path):
    phone = tmp_path / "phone.db"
    result = device(phone, "show")
    assert (result.exit_code, result.output.count("\n")) == (2, 1)
    assert "run `fieldsync device register" in result.output
    result = device(
        phone, "register", "--server", served, "--username", "worker1", password="wrong"
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: registration refused")
    device(
        phone,
        "register",
        "--server",
        served,
        "--username",
        "worker1",
        password=PASSWORDS["worker1"],
    )
    device(phone, "sync")
    result = device(phone, "edit", "--new", "household", "--grid", "999999", "--set", "notes=x")
    assert result.exit_code == 2
    assert result.output == "error: grid_out_of_scope: grid 999999 is not yours\n"
    result = device(
        phone, "register", "--server", "ftp://nowhere", "--username", "worker1", password="x"
    )
    assert result.exit_code == 2
    dead = tmp_path / "dead.db"
    device(
        dead, "register", "--server", served, "--username", "worker1", password=PASSWORDS["worker1"]
    )
    with LocalStore(dead) as store, store.transaction("move") as connection:
        connection.execute("UPDATE device SET server_url = 'http://127.0.0.1:9'")
    result = device(dead, "sync")
    assert result.exit_code == 2
    assert result.output.startswith("error: no reply from http://127.0.0.1:9")


def offline_store(path, username: str, grid_ids: list[int] | None) -> str:
    """A registered store holding the forms and one record; its id."""
    server = ReplicaServer()
    password = server.add_user(username, grid_ids, role="admin" if grid_ids is None else "worker")
    phone = open_device(path, server)
    phone.register(username, password)
    phone.sync()
    record_id = phone.create("hazard_check", 11, {"severity": "low"})
    phone.close()
    return record_id


@pytest.fixture
def offline(tmp_path):
    """A worker's store, for commands that stay offline, and the id of its record."""
    return tmp_path / "phone.db", offline_store(tmp_path / "phone.db", "worker1", [11, 12])


def queued(store) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(store) as connection:
        return connection.execute(
            "SELECT field, kind, value, grid_id FROM ops ORDER BY id"
        ).fetchall()


def test_an_edit_refused_in_part_queues_nothing(offline):
    store, record_id = offline
    before = queued(store)
    result = device(
        store, "edit", "--record", record_id, "--set", "description=x", "--set", "severity=bogus"
    )
    assert (result.exit_code, result.output) == (
        2,
        "error: unknown_choice: 'bogus' is not a choice of 'severity'\n",
    )
    result = device(
        store, "edit", "--record", record_id, "--add", "categories=fire", "--remove", "x=y"
    )
    assert result.exit_code == 2
    assert queued(store) == before


def test_grid_moves_the_record_with_every_kind_of_edit(offline):
    store, record_id = offline
    before = queued(store)
    for args in (
        ["--grid", "12", "--add", "categories=fire"],
        ["--grid", "11", "--remove", "categories=fire"],
        ["--grid", "12", "--delete"],
    ):
        assert device(store, "edit", "--record", record_id, *args).exit_code == 0
    assert queued(store)[len(before) :] == [
        ("categories", "add", '"fire"', 12),
        ("categories", "remove", '"fire"', 11),
        ("_deleted", "set", "true", 12),
    ]
    shown = json.loads(device(store, "show", record_id).output)
    assert (shown["grid_id"], shown["deleted"]) == (12, True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "12"], "error: --grid moves a record together with an edit"),
        ([], "error: nothing to change"),
        (["--grid", "0", "--set", "description=x"], "error: grid_out_of_scope"),
        (["--parent", "p", "--set", "description=x"], "error: --parent and --group go with"),
    ],
)
def test_an_edit_that_cannot_be_made_says_why(offline, args, message):
    store, record_id = offline
    before = queued(store)
    result = device(store, "edit", "--record", record_id, *args)
    assert result.exit_code == 2
    assert result.output.startswith(message)
    assert result.output.count("\n") == 1
    assert queued(store) == before


def test_a_new_record_takes_its_choices_in_set(offline):
    store, _ = offline
    before = queued(store)
    result = device(store, "edit", "--new", "hazard_check", "--grid", "11", "--add", "x=y")
    assert (result.exit_code, result.output.startswith("error: --add, --remove")) == (2, True)
    assert queued(store) == before


@pytest.mark.parametrize("url", ["htp://typo", "http://127.0.0.1:9"])
def test_a_failed_register_keeps_the_server_url(offline, url):
    store, record_id = offline
    result = device(store, "register", "--server", url, "--username", "worker1", password="x")
    assert (result.exit_code, result.output.count("\n")) == (2, 1)
    status = device(store, "show")
    assert status.exit_code == 0
    assert "server http://fieldsync.test" in status.output
    assert record_id in status.output


def test_a_store_sqlite_cannot_use_is_one_error_line(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("a text file, not a device store\n" * 20)
    (tmp_path / "folder.db").mkdir()
    for store, args in [
        (text, ["show"]),
        (text, ["register", "--server", "http://127.0.0.1:9", "--username", "worker1"]),
        ("/dev/null", ["show"]),
        ("/dev/null", ["register", "--server", "http://127.0.0.1:9", "--username", "worker1"]),
        (tmp_path / "folder.db" / "sub" / "device.db", ["show"]),
    ]:
        result = device(store, *args, password="x")
        assert result.exit_code == 2, (store, args, result.output)
        assert result.output.startswith("error: ")
        assert result.output.count("\n") == 1


def test_show_on_an_empty_file_leaves_it_empty(tmp_path):
    store = tmp_path / "device.db"
    store.touch()
    result = device(store, "show")
    assert result.output == f"error: {store} is a new store: give the server URL\n"
    assert store.stat().st_size == 0


def test_a_grid_beyond_any_integer_is_one_error_line(tmp_path):
    store = tmp_path / "admin.db"
    offline_store(store, "admin", None)
    result = device(store, "edit", "--new", "household", "--grid", str(10**20), "--set", "notes=x")
    assert (result.exit_code, result.output.count("\n")) == (2, 1)
    assert result.output.startswith("error: schema_violation: /grid_id must be at most")
