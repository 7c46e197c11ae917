"""The device's local store: layout version, the migration rule, atomic steps."""

from __future__ import annotations

import sqlite3

import pytest

from mobile_schema.local_store import (
    LAYOUT_VERSION,
    LocalStore,
    StoreError,
    layout_sql,
    migrate,
    split_statements,
    user_version,
)

URL = "http://127.0.0.1:9"


def schema_of(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
    ).fetchall()
    return [(row[0], " ".join(row[1].split())) for row in rows]


def add_journal_op(store: LocalStore, seq: int = 1) -> None:
    with store.transaction("test") as connection:
        connection.execute(
            "INSERT INTO ops (device_id, seq, record_id, form_id, form_version, grid_id, field,"
            " kind, value, hlc, base, made_at) VALUES ('d', ?, 'r', 'f', 1, 1, 'x', 'set', '1',"
            " '0000000000000001', 0, 'now')",
            (seq,),
        )


def test_a_new_store_has_the_current_layout(tmp_path):
    with LocalStore(tmp_path / "device.db", URL) as store:
        assert user_version(store.connection) == LAYOUT_VERSION
        state = store.state()
    assert state.server_url == URL
    assert (state.next_seq, state.acked_seq, state.cursor) == (1, 0, 0)
    assert state.hlc == "0" * 16
    assert not state.registered


def test_a_new_store_needs_the_server_url(tmp_path):
    with pytest.raises(StoreError, match="server URL"):
        LocalStore(tmp_path / "device.db")


def test_a_url_given_to_an_existing_store_does_not_replace_its_own(tmp_path):
    LocalStore(tmp_path / "device.db", URL).close()
    with LocalStore(tmp_path / "device.db", "http://elsewhere.test") as store:
        assert store.state().server_url == URL


def test_reopening_keeps_everything(tmp_path):
    with LocalStore(tmp_path / "device.db", URL) as store:
        add_journal_op(store)
    with LocalStore(tmp_path / "device.db") as store:
        assert store.query("SELECT count(*) FROM ops")[0][0] == 1
        assert store.state().server_url == URL


def test_a_failed_step_leaves_nothing(tmp_path):
    with LocalStore(tmp_path / "device.db", URL) as store:

        def killed_mid_step() -> None:
            with store.transaction("edit") as connection:
                connection.execute("UPDATE device SET next_seq = 9")
                raise RuntimeError("killed")

        with pytest.raises(RuntimeError):
            killed_mid_step()
        assert store.state().next_seq == 1


def test_a_newer_layout_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "device.db"
    LocalStore(path, URL).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LAYOUT_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer than this app"):
        LocalStore(path)
    raw = sqlite3.connect(path)
    assert user_version(raw) == LAYOUT_VERSION + 1
    raw.close()


def test_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE notes (x)")
    raw.close()
    with pytest.raises(StoreError, match="not a device store"):
        LocalStore(path, URL)


@pytest.mark.parametrize("url", [None, URL])
def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path, url):
    path = tmp_path / "notes.db"
    path.write_text("a text file, not a device store\n" * 20)
    with pytest.raises(
        StoreError, match=r"notes\.db: the device store cannot be used: file is not"
    ):
        LocalStore(path, url)


def test_a_path_sqlite_cannot_open_is_a_store_error(tmp_path):
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(StoreError, match="unable to open database file"):
        LocalStore(tmp_path / "folder.db", URL)


def test_an_empty_file_is_left_empty_when_no_url_makes_it_a_store(tmp_path):
    path = tmp_path / "device.db"
    path.touch()
    with pytest.raises(StoreError, match="is a new store: give the server URL"):
        LocalStore(path)
    assert path.stat().st_size == 0


def test_a_failure_inside_a_step_is_a_store_error_and_rolls_back(tmp_path):
    with LocalStore(tmp_path / "device.db", URL) as store:

        def step_breaking_a_check() -> None:
            with store.transaction("edit") as connection:
                connection.execute("UPDATE device SET next_seq = 5")
                connection.execute("UPDATE device SET cursor = -1")

        with pytest.raises(StoreError, match="CHECK constraint failed"):
            step_breaking_a_check()
        assert (store.state().next_seq, store.connection.in_transaction) == (1, False)
        with pytest.raises(StoreError, match="no such table"):
            store.query("SELECT * FROM missing_table")


def test_migration_steps_run_in_order_and_keep_the_journal(tmp_path):
    path = tmp_path / "device.db"
    with LocalStore(path, URL) as store:
        add_journal_op(store)
    steps = {
        LAYOUT_VERSION + 1: "ALTER TABLE ops ADD COLUMN note TEXT NOT NULL DEFAULT '';",
        LAYOUT_VERSION + 2: "-- a comment line\nCREATE INDEX ops_note ON ops (note);",
    }
    raw = sqlite3.connect(path, isolation_level=None)
    assert migrate(raw, steps) == LAYOUT_VERSION + 2
    assert user_version(raw) == LAYOUT_VERSION + 2
    assert raw.execute("SELECT seq, note FROM ops").fetchall() == [(1, "")]
    assert "ops_note" in [name for name, _ in schema_of(raw)]
    raw.close()


def test_a_failing_migration_step_leaves_the_previous_version(tmp_path):
    path = tmp_path / "device.db"
    with LocalStore(path, URL) as store:
        add_journal_op(store)
        before = schema_of(store.connection)
    steps = {LAYOUT_VERSION + 1: "ALTER TABLE ops ADD COLUMN note TEXT;\nCREATE TABLE ops (x);"}
    raw = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(raw, steps)
    assert user_version(raw) == LAYOUT_VERSION
    assert schema_of(raw) == before
    assert raw.execute("SELECT count(*) FROM ops").fetchone()[0] == 1
    raw.close()


def test_a_missing_step_is_refused(tmp_path):
    path = tmp_path / "device.db"
    LocalStore(path, URL).close()
    raw = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(StoreError, match="no migration to layout"):
        migrate(raw, {LAYOUT_VERSION + 2: "SELECT 1;"})
    raw.close()


def test_the_layout_file_is_what_a_fresh_store_holds(tmp_path):
    raw = sqlite3.connect(":memory:")
    for statement in split_statements(layout_sql()):
        raw.execute(statement)
    with LocalStore(tmp_path / "device.db", URL) as store:
        assert schema_of(store.connection) == schema_of(raw)
    raw.close()


def test_split_statements():
    script = "-- note\nCREATE TABLE a (x TEXT DEFAULT ';');\nCREATE VIEW v AS\n  SELECT x FROM a;\n"
    assert split_statements(script) == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "CREATE VIEW v AS\n  SELECT x FROM a;",
    ]
    with pytest.raises(StoreError, match="incomplete"):
        split_statements("CREATE TABLE a (x")


def test_unsent_ops_view_follows_registration_and_ack(tmp_path):
    with LocalStore(tmp_path / "device.db", URL) as store:
        add_journal_op(store, 1)
        add_journal_op(store, 2)
        assert store.query("SELECT count(*) FROM unsent_ops")[0][0] == 0
        with store.transaction("register") as connection:
            connection.execute("UPDATE device SET device_id = 'd', acked_seq = 1")
        assert [r["seq"] for r in store.query("SELECT seq FROM unsent_ops")] == [2]
