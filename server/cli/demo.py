"""`fieldsync demo`: the demo data that `make run` loads."""

from __future__ import annotations

import click

from server.cli.context import Context, pass_context


@click.group()
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
