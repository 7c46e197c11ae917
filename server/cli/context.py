"""What every command shares: settings and database, built lazily, and one way to fail."""

from __future__ import annotations

import sys

import click

from forms.unicode import UNSTORABLE
from server.db import Database
from server.models.base import MAX_ROW_ID
from server.settings import Settings, SettingsError, from_env

EXIT_USAGE = 2


class Context:
    """Settings and database, built lazily so `--help` needs neither."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._database: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = from_env()
            except SettingsError as exc:
                fail(str(exc))
        return self._settings

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = Database(self.settings.resolved_database_url)
        return self._database

    def close(self) -> None:
        """Release the database's connections when the command ends."""
        if self._database is not None:
            self._database.dispose()
            self._database = None


pass_context = click.make_pass_decorator(Context, ensure=True)


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


class StorableText(click.ParamType):
    """Text the database can take: an argument that is not valid UTF-8 arrives with
    surrogate escapes, which no database driver can encode."""

    name = "text"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and UNSTORABLE.search(value):
            self.fail("not valid UTF-8 text, or holds NUL", param, ctx)
        return value


TEXT = StorableText()
# A user or grid id or a form version: PostgreSQL refuses to compare a larger number
# with an INTEGER column.
ROW_ID = click.IntRange(1, MAX_ROW_ID)
