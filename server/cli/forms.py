"""`fieldsync forms`: import, export, list, diff, publish and retire form versions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from server.cli.context import ROW_ID, TEXT, Context, fail, pass_context
from server.errors import ApiError

if TYPE_CHECKING:
    from server.form_store import StoredDiff


@click.group()
def forms() -> None:
    """Form definitions and their versions."""


@forms.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--publish", is_flag=True, help="Publish the version once imported.")
@click.option(
    "--form-id", type=TEXT, default=None, help="Store under this form id instead of the file's."
)
@pass_context
def forms_import(context: Context, file: Path, publish: bool, form_id: str | None) -> None:
    """Import an XLSForm (.xlsx, .xls), XForm (.xml) or JSON definition as a draft."""
    from server import form_store

    if not file.exists():
        fail(f"{file}: no such file")
    try:
        with context.database.session() as session:
            row = form_store.import_file(session, file, form_id, publish)
            summary = f"{row.form_id} v{row.version} {row.status}"
    except ApiError as error:
        fail(error.detail)
    click.echo(f"imported {summary}")


@forms.command("export")
@click.argument("form_id", type=TEXT)
@click.option("--version", "version", type=ROW_ID, default=None, help="Default: newest published.")
@click.option("--format", "fmt", type=click.Choice(["xlsform", "xform", "json"]), default="json")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@pass_context
def forms_export(
    context: Context, form_id: str, version: int | None, fmt: str, output: Path | None
) -> None:
    """Write a version as XLSForm (.xlsx), XForm or JSON (to a file, or text to stdout)."""
    from forms.io import SUFFIXES
    from server import form_store

    try:
        with context.database.session() as session:
            row = form_store.stored_version(session, form_id, version)
            data = form_store.export_file(row, fmt)
            file_name = f"{row.form_id}-v{row.version}{SUFFIXES[fmt]}"
    except ApiError as error:
        fail(error.detail)
    if output is None and fmt == "xlsform":
        output = Path(file_name)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error.__class__.__name__}")
    click.echo(f"wrote {output}")


@forms.command("list")
@pass_context
def forms_list(context: Context) -> None:
    """Every stored version with its status."""
    from server import form_store

    with context.database.session() as session:
        rows = [form_store.version_summary(row) for row in form_store.list_versions(session)]
    for row in rows:
        title = " / ".join(row["title"].values())
        click.echo(f"{row['form_id']:<24} v{row['version']:<4} {row['status']:<10} {title}")
    if not rows:
        click.echo("no forms")


@forms.command("diff")
@click.argument("form_id", type=TEXT)
@click.argument("old", type=ROW_ID, metavar="FROM")
@click.argument("new", type=ROW_ID, metavar="TO")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@pass_context
def forms_diff(context: Context, form_id: str, old: int, new: int, as_json: bool) -> None:
    """What changed from version FROM to version TO: fields and choices."""
    from server import form_store

    try:
        with context.database.session() as session:
            found = form_store.diff_stored(session, form_id, old, new)
            body = found.as_dict()
            lines = _diff_lines(found)
    except ApiError as error:
        fail(error.detail)
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    for line in lines:
        click.echo(line)


def _diff_lines(found: StoredDiff) -> list[str]:
    """One line per change, marked + (added), - (removed) or ~ (retyped)."""
    old, new, changes = found.old, found.new, found.changes
    lines = [f"{found.form_id} v{old.version} ({old.status}) -> v{new.version} ({new.status})"]
    lines += [f"+ field {name} ({found.after.fields[name].type})" for name in changes.added]
    lines += [f"- field {name} ({found.before.fields[name].type})" for name in changes.removed]
    lines += [f"~ field {name}: {was} -> {now}" for name, was, now in changes.retyped]
    for name, choices in changes.choices_added.items():
        lines += [f"+ choice {name}: {choice}" for choice in choices]
    for name, choices in changes.choices_removed.items():
        lines += [f"- choice {name}: {choice}" for choice in choices]
    if changes.empty:
        lines.append("no changes to fields or choices")
    return lines


def _change(context: Context, action, form_id: str, version: int, verb: str) -> None:
    try:
        with context.database.session() as session:
            row = action(session, form_id, version)
            summary = f"{row.form_id} v{row.version}"
    except ApiError as error:
        fail(error.detail)
    click.echo(f"{verb} {summary}")


@forms.command("publish")
@click.argument("form_id", type=TEXT)
@click.argument("version", type=ROW_ID)
@pass_context
def forms_publish(context: Context, form_id: str, version: int) -> None:
    """Publish a draft version: it becomes immutable and devices receive it."""
    from server.form_store import publish_version

    _change(context, publish_version, form_id, version, "published")


@forms.command("retire")
@click.argument("form_id", type=TEXT)
@click.argument("version", type=ROW_ID)
@pass_context
def forms_retire(context: Context, form_id: str, version: int) -> None:
    """Retire a published version: devices stop receiving it; its records keep it."""
    from server.form_store import retire_version

    _change(context, retire_version, form_id, version, "retired")
