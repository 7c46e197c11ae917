"""`fieldsync db`: the database schema."""

from __future__ import annotations

import click

from server.cli.context import Context, fail, pass_context


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Create or migrate the database to the newest schema (an `admin.changed` event)."""
    from server.audit import Action, record_event
    from server.migrate import current_revisions, head_revisions, upgrade

    before = sorted(current_revisions(context.database.engine))
    upgrade(context.database.engine)
    after = sorted(current_revisions(context.database.engine))
    if after != before:
        with context.database.session() as session:
            details = {"schema": {"old": before, "new": after}}
            record_event(session, Action.ADMIN_CHANGED, "database", None, details)
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
