"""The `fieldsync` command line; each command group lives in its own module here."""

from __future__ import annotations

import click

from server.cli.audit import audit
from server.cli.context import Context
from server.cli.db import db
from server.cli.demo import demo
from server.cli.device import device
from server.cli.forms import forms
from server.cli.grids import grids
from server.cli.users import users


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """fieldsync: offline-first field data-collection sync server."""
    context = ctx.ensure_object(Context)
    ctx.call_on_close(context.close)


for group in (audit, db, demo, device, forms, grids, users):
    cli.add_command(group)


def main() -> None:
    cli(standalone_mode=True)
