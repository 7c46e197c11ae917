"""`fieldsync audit`: verify the chain, anchor its head, show a record's history."""

from __future__ import annotations

import datetime as dt
import json

import click

from server.cli.context import Context, fail, pass_context
from server.utc import to_utc


def parse_time(raw: str, option: str) -> dt.datetime:
    """An ISO date or time, in UTC; a date means its midnight UTC, a naive time is UTC."""
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} {raw!r} is not an ISO date or time (2026-05-01 or 2026-05-01T08:00Z)")
    try:
        return to_utc(value)
    except ValueError as exc:
        fail(f"{option} {raw!r}: {exc}")


@click.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@click.option("--from", "since", metavar="DATE", help="Start at the first event of this date.")
@click.option("--anchors", is_flag=True, help="Also check the anchors in blob storage.")
@pass_context
def audit_verify(context: Context, since: str | None, anchors: bool) -> None:
    """Walk the chain and the ops it covers; exit 2 at the first broken link."""
    from server.audit.verify import verify_chain

    start = parse_time(since, "--from") if since else None
    anchor_list = _load_anchors(context) if anchors else ()
    with context.database.engine.connect() as connection:
        report = verify_chain(connection, since=start, anchors=anchor_list)
    if report.broken is not None:
        broken = report.broken
        where = f"event {broken.event_id}" if broken.event_id is not None else "ops"
        click.echo(
            f"BROKEN at {where} ({broken.kind}): {broken.detail}; "
            f"expected {broken.expected or '-'}, found {broken.found or '-'}",
            err=True,
        )
        raise SystemExit(2)
    scope = "from " + start.isoformat() if start else "whole chain"
    checked = f", {report.anchors} anchors" if anchors else ""
    click.echo(
        f"OK: {report.events} events and {report.ops} ops ({scope}{checked}); "
        f"head {report.last_id} {report.head_hash}"
    )


def _load_anchors(context: Context):
    from server.audit.anchors import AnchorError, read_anchors
    from server.blobs import make_blob_store

    store = make_blob_store(context.settings)
    try:
        return read_anchors(store)
    except AnchorError as exc:
        fail(str(exc))
    finally:
        store.close()


@audit.command("anchor")
@pass_context
def audit_anchor(context: Context) -> None:
    """Write the chain head to blob storage."""
    from server.audit.anchors import write_anchor
    from server.blobs import make_blob_store

    store = make_blob_store(context.settings)
    try:
        with context.database.session() as session:
            anchor = write_anchor(session, store)
    finally:
        store.close()
    if anchor is None:
        click.echo("the audit chain is empty; nothing to anchor")
        return
    click.echo(f"anchored event {anchor.event_id} {anchor.hash} at {anchor.name}")


@audit.command("history")
@click.argument("record_id")
@click.option("--as-of", "as_of", metavar="TIME", help="Show the record as it was at TIME.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def audit_history(context: Context, record_id: str, as_of: str | None, as_json: bool) -> None:
    """A record's full history, or the record as it was at a past moment."""
    from server.audit.history import load_ops, record_history, state_at
    from server.scope import Scope

    moment = parse_time(as_of, "--as-of") if as_of else None
    with context.database.engine.connect() as connection:
        if moment is not None:
            result = state_at(load_ops(connection, record_id), record_id, moment)
            if result is None:
                fail(f"record {record_id} did not exist at {moment.isoformat()}")
        else:
            result = record_history(connection, record_id, Scope(user_id=0, everything=True))
            if result is None:
                fail(f"no record {record_id}")
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    elif moment is not None:
        _print_state(result)
    else:
        _print_history(result)


def _show(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _print_state(state: dict) -> None:
    deleted = " (deleted)" if state["deleted"] else ""
    click.echo(
        f"record {state['record_id']} as of {state['as_of']}{deleted}: form "
        f"{state['form_id']} v{state['form_version']}, grid {state['grid_id']}"
    )
    for name, value in state["fields"].items():
        click.echo(f"  {name} = {_show(value)}")


def _print_history(history: dict) -> None:
    click.echo(f"record {history['record_id']}")
    for change in history["changes"]:
        who = change["username"] or f"user {change['user_id']}"
        device = change["device_name"] or change["device_id"]
        status = "" if change["status"] == "applied" else f" [quarantined: {change['reason']}]"
        verb = "released" if change["kind"] == "release" else change["op"]
        click.echo(
            f"  {change['server_time']} (device {change['device_time']}) {who} on {device} "
            f"#{change['seq']}: {verb} {change['field']}: {_show(change['old'])} -> "
            f"{_show(change['new'])}{status}"
        )
    for conflict in history["conflicts"]:
        sides = ", ".join(
            f"{_show(v['value'])} by {v['device_id']}#{v['seq']}" + (" (winner)" * v["winner"])
            for v in conflict["values"]
        )
        resolved = conflict["resolved_by"]
        how = (
            f"resolved by {resolved['device_id']}#{resolved['seq']} = {_show(resolved['value'])}"
            if resolved
            else "open"
        )
        click.echo(f"  conflict on {conflict['field']}: {sides}; {how}")
    for event in history["events"]:
        who = event["username"] or f"user {event['user_id']}"
        click.echo(f"  {event['server_time']} {who}: {event['action']} {_show(event['details'])}")
    if history["children"]:
        click.echo(f"  rows: {', '.join(history['children'])}")
