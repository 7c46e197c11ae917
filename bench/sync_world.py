"""What the sync benches share: a fresh store on either backend, a 30-field form, a grid,
and a user with devices."""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from server.db import Database, make_engine
from server.devices import register_device
from server.form_store import publish_version, save_draft
from server.grids import create_grid
from server.migrate import upgrade
from server.models import GridLevel, Role
from server.users import create_user

POSTGRES_URL = os.environ.get(
    "FIELDSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FORM_ID = "bench_visit"
CHOICES = [f"c{n}" for n in range(1, 8)]


def field_kinds(count: int = 30) -> list[tuple[str, str]]:
    """(name, type) of the bench form: a household-visit mix of types."""
    cycle = ["text", "integer", "select_one", "text", "date", "select_multiple", "text", "integer"]
    return [(f"f{n:02d}", cycle[n % len(cycle)]) for n in range(count)]


def definition(count: int = 30) -> dict:
    fields = []
    for name, kind in field_kinds(count):
        field = {"name": name, "type": kind, "label": {"en": name}}
        if kind == "text":
            field["max_length"] = 200
        elif kind == "integer":
            field.update(min=0, max=100000)
        elif kind in ("select_one", "select_multiple"):
            field["choices"] = "opts"
        fields.append(field)
    return {
        "form_id": FORM_ID,
        "version": 1,
        "default_language": "en",
        "title": {"en": "Bench visit"},
        "fields": fields,
        "choices": {"opts": [{"name": c, "label": {"en": c}} for c in CHOICES]},
    }


def value_for(kind: str, n: int):
    """A valid value of the kind; `n` varies it."""
    if kind == "text":
        return f"answer {n}"
    if kind == "integer":
        return n % 100000
    if kind == "select_one":
        return CHOICES[n % len(CHOICES)]
    if kind == "date":
        return f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}"
    return CHOICES[n % len(CHOICES)]  # select_multiple: the choice an add names


@dataclass
class BenchWorld:
    database: Database
    grid_id: int
    user_id: int
    devices: list[str]


@contextmanager
def fresh_database(backend: str) -> Iterator[Database]:
    """A migrated, empty store: a temporary SQLite file or a temporary PostgreSQL schema."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            database = Database(f"sqlite:///{Path(folder) / 'bench.db'}")
            upgrade(database.engine)
            try:
                yield database
            finally:
                database.dispose()
        return
    schema = f"bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    database = Database(url.render_as_string(hide_password=False))
    try:
        upgrade(database.engine)
        yield database
    finally:
        database.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def populate(database: Database, devices: int = 2, fields: int = 30) -> BenchWorld:
    """A grid, a worker in it with `devices` phones, and the published bench form."""
    with database.session() as session:
        grid = create_grid(
            session, f"G{uuid.uuid4().hex[:6]}", "Bench grid", GridLevel.HOUSEHOLD_GRID
        )
        user = create_user(session, "bench", "bench password 1", Role.WORKER, grids=[grid])
        phones = [register_device(session, user, f"phone {n}")[0].id for n in range(devices)]
        save_draft(session, definition(fields), "json", "bench.json")
        publish_version(session, FORM_ID, 1)
        return BenchWorld(database, grid.id, user.id, phones)
