"""Fixtures shared by the whole suite.

Every test that touches the database runs twice, on SQLite and on PostgreSQL
(`db_backend`). Each test gets a clean store: SQLite tests copy a migrated
template file; PostgreSQL tests share one migrated schema per run and truncate
every table afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, text

from server import create_app
from server.db import Database, all_metadata, make_engine
from server.migrate import upgrade
from server.settings import Settings
from tests.services import in_ci, require_postgres

hypothesis_settings.register_profile(
    "ci", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("ci" if in_ci() else "dev")

REALFORMS = Path(__file__).resolve().parents[2] / "shared" / "realforms"


def postgres_schema_url(base_url: str, schema: str) -> str:
    """The URL with a search_path pinned to one schema."""
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


def create_schema(base_url: str, schema: str) -> None:
    engine = make_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()


def drop_schema(base_url: str, schema: str) -> None:
    engine = make_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def truncate_all(engine: Engine) -> None:
    names = [table.name for metadata in all_metadata() for table in metadata.sorted_tables]
    if not names:
        return
    with engine.begin() as connection:
        quoted = ", ".join(f'"{name}"' for name in names)
        connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("template") / "fieldsync.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # closing the last connection folds the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Database]:
    """One migrated schema for this run, shared by the PostgreSQL tests."""
    base_url = require_postgres()
    schema = f"fs_test_{os.getpid()}_{secrets.token_hex(3)}"
    create_schema(base_url, schema)
    database = Database(postgres_schema_url(base_url, schema))
    upgrade(database.engine)
    yield database
    database.dispose()
    drop_schema(base_url, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request) -> str:
    return request.param


@pytest.fixture
def database(db_backend, request, tmp_path) -> Iterator[Database]:
    """A clean, migrated store on the backend of this test run."""
    if db_backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "fieldsync.db"
        shutil.copyfile(template, path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("postgres_database")
        yield database
        truncate_all(database.engine)


@pytest.fixture
def settings(tmp_path, database) -> Settings:
    return Settings(
        var_dir=str(tmp_path / "var"),
        database_url=database.engine.url.render_as_string(hide_password=False),
        secret_key="test-secret-key",
        log_level="warning",
    )


@pytest.fixture
def app(settings, database):
    return create_app(settings, database)


@pytest.fixture
def client(app):
    return app.test_client()
