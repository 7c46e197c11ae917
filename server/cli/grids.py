"""`fieldsync grids`: import the grid tree from a CSV file."""

from __future__ import annotations

import click

from server.cli.context import Context, fail, pass_context
from server.errors import ApiError


@click.group()
def grids() -> None:
    """The grid tree."""


@grids.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@pass_context
def grids_import(context: Context, path: str) -> None:
    """Import grids from a CSV with columns code,name,level,parent_code: all rows or none."""
    from server.grids import import_grids

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc.__class__.__name__}")
    try:
        with context.database.session() as session:
            imported = import_grids(session, text)
    except ApiError as error:
        for problem in error.errors:
            line = problem["path"].rsplit("/", 1)[-1]
            click.echo(f"{path}:{line}: {problem['message']}", err=True)
        fail(error.detail)
    click.echo(f"imported {len(imported)} grids")
