"""`fieldsync audit`: verify the chain, anchor its head, show a record's history."""

from __future__ import annotations

import datetime as dt

import click

from server.cli.context import Context, fail, pass_context


def parse_time(raw: str, option: str) -> dt.datetime:
    """An ISO date or time; a date means its midnight UTC, a naive time is UTC."""
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} {raw!r} is not an ISO date or time (2026-05-01 or 2026-05-01T08:00Z)")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


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
