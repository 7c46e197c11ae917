"""The `fieldsync` command line."""

from __future__ import annotations

import sys

import click

from server.db import Database
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
                raise click.ClickException(str(exc)) from exc
        return self._settings

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = Database(self.settings.resolved_database_url)
        return self._database


pass_context = click.make_pass_decorator(Context, ensure=True)


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """fieldsync: offline-first field data-collection sync server."""
    ctx.ensure_object(Context)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Create or migrate the database to the newest schema."""
    from server.migrate import head_revisions, upgrade

    upgrade(context.database.engine)
    click.echo(f"database at {', '.join(sorted(head_revisions()))}")


@db.command("check")
@pass_context
def db_check(context: Context) -> None:
    """Check that the database is migrated and matches the models."""
    from server.migrate import is_current, schema_differences

    if not is_current(context.database.engine):
        fail("database is not at the newest migration; run `fieldsync db upgrade`")
    differences = schema_differences(context.database.engine)
    if differences:
        fail(f"models and migrations disagree: {differences}")
    click.echo("database schema matches the models")


@cli.group()
def demo() -> None:
    """Demo data."""


@demo.command("load")
@pass_context
def demo_load(context: Context) -> None:
    """Load the demo grids and logins (once), and print the logins."""
    from server import demo as demo_data

    with context.database.session() as session:
        created = demo_data.load(session)
    click.echo("demo data loaded" if created else "demo data already present")
    click.echo("demo logins (username / password / role):")
    for login in demo_data.DEMO_LOGINS:
        click.echo(f"  {login.username:<11} {login.password:<22} {login.role}")


def main() -> None:
    cli(standalone_mode=True)
