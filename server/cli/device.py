"""`fieldsync device`: drive the reference device client against a server URL.

The device keeps its own SQLite store (`--store`, or FIELDSYNC_DEVICE_STORE); the
server is reached over HTTP(S) with urllib, exactly as a phone would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from server.cli.context import fail
from sync.ops import ADD, DELETED, REMOVE

DEFAULT_STORE = os.path.join("var", "device.db")
TEXT_TYPES = frozenset({"text", "barcode", "select_one", "date", "datetime", "time", "reference"})
store_option = click.option(
    "--store",
    envvar="FIELDSYNC_DEVICE_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The device's local SQLite store (env FIELDSYNC_DEVICE_STORE).",
)


@contextmanager
def opened(store: str, server: str | None = None) -> Iterator[Any]:
    """The device client on `store`, closed afterwards; device errors end the command."""
    from mobile_schema.client import DeviceClient
    from mobile_schema.errors import DeviceError, TransportError
    from mobile_schema.local_store import StoreError

    if server is None and not os.path.exists(store):
        fail(f"no device store at {store}; run `fieldsync device register --server URL` first")
    try:
        client = DeviceClient.open(store, server)
    except (StoreError, ValueError) as error:  # an unusable file (named), a bad URL
        fail(str(error))
    except OSError as error:  # the store's folder cannot be made
        fail(f"{store}: {error}")
    password = os.environ.get("FIELDSYNC_DEVICE_PASSWORD")
    username = client.state().username
    if password and username:
        # Lets `sync` sign in again by itself after a 401 or a seq_reuse.
        client.credentials = lambda: (username, password)
    try:
        yield client
    except (DeviceError, TransportError) as error:  # StoreError is a DeviceError
        fail(str(error))
    finally:
        client.close()


@click.group()
def device() -> None:
    """A reference device: register, edit offline, sync, read the inbox."""


@device.command("register")
@store_option
@click.option(
    "--server", "server_url", required=True, help="Server URL, e.g. http://127.0.0.1:8000"
)
@click.option("--username", required=True)
@click.option(
    "--password",
    envvar="FIELDSYNC_DEVICE_PASSWORD",
    prompt=True,
    hide_input=True,
    help="The user's password (env FIELDSYNC_DEVICE_PASSWORD; asked when missing).",
)
@click.option("--name", "device_name", default="fieldsync CLI", show_default=True)
def device_register(store: str, server_url: str, username: str, password: str, device_name: str):
    """Sign in on this device; then `sync` fetches the forms and the scope's records."""
    with opened(store, server_url) as client:
        state = client.register(username, password, device_name)
        scope = "every grid" if state.grid_ids is None else f"grids {state.grid_ids}"
        click.echo(f"registered {state.device_id} for {state.username} ({state.role}), {scope}")


def parse_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        fail(f"expected FIELD=VALUE, got {text!r}")
    return name, value


def coerce(field_type: str | None, raw: str) -> Any:
    """The typed value of `raw` for a field of this type (text stays text)."""
    if field_type in TEXT_TYPES:
        return raw
    if field_type == "select_multiple" and not raw.startswith("["):
        return [choice for choice in raw.split(",") if choice]
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@device.command("edit")
@store_option
@click.option("--new", "new_form", metavar="FORM", help="Create a record of this form.")
@click.option(
    "--grid", "grid_id", type=int, help="The new record's grid, or with --record: move it."
)
@click.option("--record", "record_id", help="The record to edit.")
@click.option("--parent", help="With --new: the parent record of a repeat row.")
@click.option("--group", help="With --new: the repeat the row belongs to.")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="Set a field.")
@click.option("--add", "adds", multiple=True, metavar="FIELD=CHOICE", help="Tick a choice.")
@click.option("--remove", "removes", multiple=True, metavar="FIELD=CHOICE", help="Untick one.")
@click.option("--delete", is_flag=True, help="Delete the record (tombstone).")
def device_edit(
    store, new_form, grid_id, record_id, parent, group, sets, adds, removes, delete
) -> None:
    """Create or edit a record offline: one save, checked by the forms validator.

    Every change of the command is queued together or, when one is refused, none is.
    """
    if bool(new_form) == bool(record_id):
        fail("give either --new FORM --grid ID or --record ID")
    if new_form and (adds or removes or delete):
        fail("--add, --remove and --delete edit a --record; a new record's choices go in --set")
    if record_id and (parent or group):
        fail("--parent and --group go with --new")
    if record_id and not (sets or adds or removes or delete):
        if grid_id is not None:
            fail("--grid moves a record together with an edit: add --set FIELD=VALUE")
        fail("nothing to change: give --set, --add, --remove or --delete")
    with opened(store) as client:
        if new_form:
            if grid_id is None:
                fail("--new needs --grid")
            values = dict(typed_assignments(client, new_form, sets))
            record_id = client.create(new_form, grid_id, values, parent=parent, group=group)
            click.echo(record_id)
            return
        view = client.record(record_id)
        if view is None:
            fail(f"this device holds no record {record_id}")
        edits = []
        for name, value in typed_assignments(client, view.form_id, sets):
            edits += client.set_edits(record_id, name, value, grid_id=grid_id)
        for kind, pairs in ((ADD, adds), (REMOVE, removes)):
            for name, choice in map(parse_assignment, pairs):
                edits.append(client.choice_edit(record_id, name, kind, choice, grid_id=grid_id))
        if delete:
            edits += client.set_edits(record_id, DELETED, True, grid_id=grid_id)
        client.save(edits)
        click.echo(f"{record_id}: {client.unsent_count()} ops waiting to sync")


def typed_assignments(client: Any, form_id: str, sets: tuple[str, ...]) -> list[tuple[str, Any]]:
    """Each --set FIELD=VALUE with its value typed for the field in the newest form version."""
    version = client.forms.latest_version(form_id)
    built = client.forms.version(form_id, version) if version else None
    typed = []
    for name, raw in map(parse_assignment, sets):
        definition = built.field(name) if built else None
        typed.append((name, coerce(definition.type if definition else None, raw)))
    return typed


@device.command("show")
@store_option
@click.argument("record_id", required=False)
@click.option("--form", "form_id", help="Only records of this form.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def device_show(store: str, record_id: str | None, form_id: str | None, as_json: bool) -> None:
    """The device's status and records (or one record) as the device sees them."""
    with opened(store) as client:
        if record_id:
            view = client.record(record_id)
            if view is None:
                fail(f"this device holds no record {record_id}")
            click.echo(json.dumps(view.as_dict(), ensure_ascii=False, indent=2))
            return
        state, records = client.state(), client.records(form_id)
        if as_json:
            click.echo(json.dumps([r.as_dict() for r in records], ensure_ascii=False))
            return
        grids = "every grid" if state.grid_ids is None else f"grids {state.grid_ids}"
        click.echo(
            f"device {state.device_id or '(not registered)'} user {state.username or '-'} "
            f"({grids}) server {state.server_url}\n"
            f"seq {state.next_seq - 1} acked {state.acked_seq} unsent {client.unsent_count()} "
            f"cursor {state.cursor} last sync {state.last_sync_at or 'never'}"
        )
        for view in records:
            shown = ", ".join(
                f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(view.values.items())
            )
            mark = f" [{view.unsent} unsent]" if view.unsent else ""
            click.echo(
                f"{view.record_id} {view.form_id} v{view.form_version} "
                f"grid {view.grid_id}{mark}: {shown[:200]}"
            )


@device.command("sync")
@store_option
@click.option(
    "--batch",
    type=click.IntRange(1, 5000),
    default=500,
    show_default=True,
    help="Ops per push (halved by the device on 413).",
)
def device_sync(store: str, batch: int) -> None:
    """Push pending ops in batches, pull every page, then fetch inbox and forms."""
    with opened(store) as client:
        client.push_batch = batch
        report = client.sync()
        click.echo(
            f"pushed {report.pushed} ops ({report.applied} applied, {report.duplicate} "
            f"duplicate, {report.quarantined} quarantined), {report.conflicts} conflicts; "
            f"pulled {report.pulled} changes in {report.pages} pages"
            + ("; read a snapshot" if report.snapshot else "")
            + ("; registered again" if report.registered_again else "")
            + f"; {report.inbox_new} new in the inbox"
        )


def describe(entry: Any) -> str:
    payload = entry.payload
    if entry.kind == "conflict":
        values = " / ".join(
            f"{json.dumps(v['value'], ensure_ascii=False)}{' (kept)' if v['winner'] else ''}"
            for v in payload["values"]
        )
        return f"field {payload['field']} edited at once: {values} [{payload['status']}]"
    if entry.kind == "quarantine":
        return (
            f"op {payload['seq']} on {payload['field']} not applied: "
            f"{payload['reason']}: {payload['detail']}"
        )
    if entry.kind == "review":
        comment = payload.get("comment")
        by = f" by {payload['by']}" if payload.get("by") else ""
        return payload["decision"] + by + (f": {comment}" if comment else "")
    if entry.kind == "comment":
        on = f" on {payload['field']}" if payload.get("field") else ""
        return f"comment{on} by {payload.get('by', '?')}: {payload['body']}"
    return payload.get("text") or json.dumps(payload, ensure_ascii=False)


@device.command("inbox")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def device_inbox(store: str, as_json: bool) -> None:
    """Conflicts, quarantined ops, review decisions, comments and reminders."""
    with opened(store) as client:
        entries = client.inbox()
        if as_json:
            click.echo(json.dumps([e.__dict__ for e in entries], ensure_ascii=False))
            return
        if not entries:
            click.echo("inbox empty")
        for entry in entries:
            click.echo(
                f"[{entry.kind}] {entry.created_at} record {entry.record_id or '-'}: "
                f"{describe(entry)}"
            )
