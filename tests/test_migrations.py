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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_from_empty_is_repeatable(backend, tmp_path, request):
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    else:
        database = request.getfixturevalue("empty_postgres")
    assert current_revisions(database.engine) == set()
    upgrade(database.engine)
    upgrade(database.engine)
    assert current_revisions(database.engine) == head_revisions()
    assert schema_differences(database.engine) == []
    database.dispose()


def test_the_migrations_have_one_head():
    assert len(head_revisions()) == 1
