import json
import secrets

import pytest

from server.db import Database
from server.migrate import current_revisions, head_revisions, schema_differences, upgrade
from tests.conftest import create_schema, drop_schema, postgres_schema_url
from tests.services import require_postgres


def test_models_and_migrations_agree(database):
    assert current_revisions(database.engine) == head_revisions()
    assert schema_differences(database.engine) == []


@pytest.fixture
def empty_postgres():
    base_url = require_postgres()
    schema = f"fs_mig_{secrets.token_hex(4)}"
    create_schema(base_url, schema)
    database = Database(postgres_schema_url(base_url, schema))
    yield database
    database.dispose()
    drop_schema(base_url, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """A database with no tables at all, on each backend."""
    if request.param == "postgresql":
        return request.getfixturevalue("empty_postgres")
    return Database(f"sqlite:///{tmp_path / 'fresh.db'}")


def test_upgrade_from_empty_is_repeatable(empty_database):
    database = empty_database
    assert current_revisions(database.engine) == set()
    upgrade(database.engine)
    upgrade(database.engine)
    assert current_revisions(database.engine) == head_revisions()
    assert schema_differences(database.engine) == []
    database.dispose()


def test_the_migrations_have_one_head():
    assert len(head_revisions()) == 1


def test_attachment_references_are_backfilled_from_stored_ops(empty_database):
    from sqlalchemy import insert, select

    from server.models import AttachmentReference
    from sync.store.tables import ops

    database = empty_database
    upgrade(database.engine, "0007")
    photo = {"sha256": "ab" * 32, "size": 10, "content_type": "image/jpeg"}
    values = [photo, photo, {"sha256": "short"}, "ab" * 32, 3, ["x"], None]
    rows = [
        {
            "position": n,
            "device_id": "d",
            "seq": n,
            "user_id": 1,
            "record_id": f"record-{n % 2}",
            "form_id": "household",
            "form_version": 1,
            "grid_id": 1,
            "field": "photo",
            "kind": "set",
            "value": value,
            "hlc": n,
            "base": 0,
        }
        for n, value in enumerate(values, start=1)
    ]
    with database.engine.begin() as connection:
        connection.execute(insert(ops), rows)
    upgrade(database.engine)
    with database.engine.connect() as connection:
        found = connection.execute(
            select(AttachmentReference.sha256, AttachmentReference.record_id)
        ).all()
    assert sorted(found) == [("ab" * 32, "record-0"), ("ab" * 32, "record-1")]
    database.dispose()


def test_an_upgrade_from_the_command_line_is_on_the_audit_trail(empty_database, tmp_path):
    from click.testing import CliRunner
    from sqlalchemy import select

    from server.cli import cli
    from server.models import AuditEvent

    database = empty_database
    upgrade(database.engine, "0007")
    env = {
        "FIELDSYNC_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "FIELDSYNC_VAR_DIR": str(tmp_path / "var"),
    }
    for _ in range(2):  # the second finds nothing to do and records nothing
        result = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
        assert result.exit_code == 0, result.output
    with database.engine.connect() as connection:
        events = connection.execute(select(AuditEvent.action, AuditEvent.details)).all()
    head = sorted(head_revisions())
    assert [(action, json.loads(details)) for action, details in events] == [
        ("admin.changed", {"schema": {"old": ["0007"], "new": head}})
    ]
    database.dispose()


def test_stored_ops_survive_the_rowid_rebuild(empty_database):
    """0009 rebuilds `ops` on SQLite so that its position is the rowid: every row, value
    and index stays, and the separate primary-key index is gone."""
    from sqlalchemy import insert, select, text

    from sync.store.tables import ops

    database = empty_database
    upgrade(database.engine, "0008")
    rows = [
        {
            "position": position,
            "device_id": "d",
            "seq": position,
            "user_id": 1,
            "record_id": f"record-{position % 3}",
            "form_id": "household",
            "form_version": 1,
            "grid_id": 1,
            "field": "note",
            "kind": "set",
            "value": {"text": f"n{position}"},
            "hlc": 1 << 40 | position,
            "base": 0,
            "reason": "wrong_type" if position == 7 else None,
            "detail": "a detail" if position == 7 else None,
        }
        for position in (1, 2, 7, 2**40)
    ]
    with database.engine.begin() as connection:
        connection.execute(insert(ops), rows)
        before = connection.execute(select(ops).order_by(ops.c.position)).all()
    upgrade(database.engine)
    with database.engine.connect() as connection:
        after = connection.execute(select(ops).order_by(ops.c.position)).all()
        by_seq = connection.execute(
            select(ops.c.position).where(ops.c.device_id == "d", ops.c.seq == 7)
        ).scalar_one()
        if database.engine.dialect.name == "sqlite":
            positions = connection.execute(text("SELECT rowid, position FROM ops")).all()
            indexes = connection.execute(text("PRAGMA index_list(ops)")).all()
    assert after == before
    assert len(after) == 4
    assert by_seq == 7
    if database.engine.dialect.name == "sqlite":
        assert all(rowid == position for rowid, position in positions)
        assert sorted(row[1] for row in indexes) == [
            "ix_ops_device_id_seq",
            "ix_ops_record_id_field_position",
        ]
    assert schema_differences(database.engine) == []
    database.dispose()


def test_values_stored_before_0010_keep_their_numbers_and_audit_lines(empty_database):
    """0010 rebuilds `ops` and `field_state` on SQLite so that a value's JSON text stays
    text. The rows stored before keep their INTEGER or REAL as it is: the same numbers,
    and the same canonical lines the audit chain hashed."""
    from sqlalchemy import text

    from server.audit.covered_ops import op_lines

    database = empty_database
    upgrade(database.engine, "0009")
    sqlite = database.engine.dialect.name == "sqlite"
    numbers = ["2.0", "0.30000000000000004", "12345678901234567891", "-0.0", '"7"']
    op_row = (
        "INSERT INTO ops (position, device_id, seq, user_id, record_id, form_id,"
        " form_version, grid_id, field, kind, value, hlc, base, received_at)"
        " VALUES (:n, 'd', :n, 1, 'r', 'household', 1, 1, :field, 'set', :value, :n, 0,"
        " '2026-11-26 06:00:00.000000')"
    )
    state_row = (
        "INSERT INTO field_state (record_id, field, value, hlc, device_id, seq,"
        " op_position, multi, position) VALUES ('r', :field, :value, :n, 'd', :n, :n,"
        " false, :n)"
    )
    shown = "value, typeof(value)" if sqlite else "value::text, 'json'"

    def stored(connection):
        return [
            connection.execute(text(f"SELECT {shown} FROM {table} ORDER BY position")).all()
            for table in ("ops", "field_state")
        ]

    with database.engine.begin() as connection:
        for n, value in enumerate(numbers, start=1):
            for statement in (op_row, state_row):
                connection.execute(text(statement), {"n": n, "field": f"f{n}", "value": value})
        before = stored(connection)
        lines = op_lines(connection)
    upgrade(database.engine)
    with database.engine.begin() as connection:
        assert stored(connection) == before
        assert op_lines(connection) == lines
        connection.execute(text(op_row), {"n": 9, "field": "f9", "value": "2.0"})
        assert connection.execute(text(f"SELECT {shown} FROM ops WHERE position = 9")).one() == (
            "2.0",
            "text" if sqlite else "json",
        )
    if sqlite:
        kinds = [kind for _value, kind in before[0]]
        assert kinds == ["integer", "real", "real", "integer", "text"]
    assert schema_differences(database.engine) == []
    database.dispose()
