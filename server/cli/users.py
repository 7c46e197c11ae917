"""`fieldsync users`: add, list, disable users and reset their passwords."""

from __future__ import annotations

import click
from sqlalchemy import select

from server.cli.context import TEXT, Context, fail, pass_context
from server.errors import ApiError


def _password(given: str | None) -> str:
    if given is not None:
        return given
    return click.prompt("password", type=TEXT, hide_input=True, confirmation_prompt=True)


@click.group()
def users() -> None:
    """People who sign in: admins, supervisors, grid leaders, workers."""


@users.command("add")
@click.argument("username", type=TEXT)
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "supervisor", "grid_leader", "worker"]),
)
@click.option("--name", "display_name", type=TEXT, default="", help="Display name.")
@click.option("--grid", "grid_codes", type=TEXT, multiple=True, help="Code of a grid (repeatable).")
@click.option(
    "--password", type=TEXT, envvar="FIELDSYNC_NEW_PASSWORD", help="Asked for when left out."
)
@pass_context
def users_add(context: Context, username, role, display_name, grid_codes, password) -> None:
    """Add a user, optionally assigned to grids."""
    from server.models import Grid
    from server.users import create_user

    secret = _password(password)
    try:
        with context.database.session() as session:
            grids = list(session.scalars(select(Grid).where(Grid.code.in_(grid_codes))))
            unknown = sorted(set(grid_codes) - {grid.code for grid in grids})
            if unknown:
                fail(f"no grid with code {', '.join(unknown)}")
            retired = sorted(grid.code for grid in grids if grid.retired_at is not None)
            if retired:
                fail(f"retired grids take no new assignments: {', '.join(retired)}")
            user = create_user(session, username, secret, role, display_name, grids)
            click.echo(f"added {user.username} ({user.role}) with id {user.id}")
    except ApiError as error:
        fail(error.detail)


@users.command("list")
@click.option("--role", type=click.Choice(["admin", "supervisor", "grid_leader", "worker"]))
@pass_context
def users_list(context: Context, role) -> None:
    """List users with their role, state and grids."""
    from server.scope import Scope
    from server.users import users_query

    with context.database.session() as session:
        everything = Scope(user_id=0, everything=True)
        for user in session.scalars(users_query(everything, role)):
            state = "disabled" if user.disabled else "active"
            grids = ",".join(sorted(grid.code for grid in user.grids)) or "-"
            click.echo(f"{user.id}\t{user.username}\t{user.role}\t{state}\t{grids}")


@users.command("disable")
@click.argument("username", type=TEXT)
@pass_context
def users_disable(context: Context, username) -> None:
    """Disable a user and revoke all their devices."""
    from server.users import disable_user, find_user

    try:
        with context.database.session() as session:
            disable_user(session, find_user(session, username))
    except ApiError as error:
        fail(error.detail)
    click.echo(f"disabled {username}; their devices are revoked")


@users.command("reset-password")
@click.argument("username", type=TEXT)
@click.option(
    "--password", type=TEXT, envvar="FIELDSYNC_NEW_PASSWORD", help="Asked for when left out."
)
@pass_context
def users_reset_password(context: Context, username, password) -> None:
    """Set a new password (web sessions end, sign-in locks are lifted)."""
    from server.users import find_user, reset_password

    secret = _password(password)
    try:
        with context.database.session() as session:
            reset_password(session, find_user(session, username), secret)
    except ApiError as error:
        fail(error.detail)
    click.echo(f"password of {username} reset")
