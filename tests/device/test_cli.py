"""`fieldsync device …` against the real app served over HTTP on a local port."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from mobile_schema.local_store import LocalStore
from server import demo as demo_data
from server.cli import cli

PASSWORDS = {login.username: login.password for login in demo_data.DEMO_LOGINS}


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
