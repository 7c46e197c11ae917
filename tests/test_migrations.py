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
