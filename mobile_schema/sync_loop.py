"""One sync: push what is pending in batches, then pull pages, then inbox and forms.

Every reply is checked against its JSON Schema before anything is stored, and every
reply is stored in one local transaction together with the progress it makes (the
acknowledged seq, the cursor, the inbox position). A kill between any two steps
therefore loses nothing: the next sync starts again from what was committed, and the
server's idempotence (a re-sent op is a duplicate, a re-pulled page rewrites the same
rows) does the rest. Refusals are handled as docs/device.md describes; a server that
lost the device's registration (401 device_unknown) gets every op of it again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mobile_schema.errors import NeedsRegistration, ProtocolError, ServerBusy, SyncFailed
from mobile_schema.local_store import LocalStore
from mobile_schema.schemas import validate
from mobile_schema.transport import Reply, Request, Transport

PUSH_PATH = "/api/v1/sync/push"
PULL_PATH = "/api/v1/sync/pull"
SNAPSHOT_PATH = "/api/v1/sync/snapshot"
INBOX_PATH = "/api/v1/sync/inbox"
FORMS_PATH = "/api/v1/forms/bundle"
MAX_PUSH_OPS = 5000


@dataclass
class SyncReport:
    """What one sync did, for the UI."""

    pushed: int = 0
    applied: int = 0
    duplicate: int = 0
    quarantined: int = 0
    conflicts: int = 0
    pulled: int = 0
    pages: int = 0
    snapshot: bool = False
    inbox_new: int = 0
    forms_updated: bool = False
    registered_again: bool = False
    push_batch: int = 0


def problem_of(reply: Reply) -> dict[str, Any]:
    """The problem document of a refusal (a bare one when the body is not problem+json)."""
    body = reply.body
    if isinstance(body, dict) and not validate("problem", body):
        return body
    return {"status": reply.status, "code": f"http_{reply.status}", "detail": "no problem body"}


def checked(name: str, reply: Reply) -> Any:
    """The reply's body once it matches schema `name`; ProtocolError otherwise."""
    errors = validate(name, reply.body)
    if errors:
        shown = "; ".join(f"{e.path or '/'} {e.message}" for e in errors[:3])
        raise ProtocolError(f"the server's {name} does not match its schema: {shown}")
    return reply.body


def apply_changes(connection: sqlite3.Connection, changes: list[dict[str, Any]]) -> None:
    """Store pulled field states and record heads (one statement per table per page).

    The position guard makes re-applying an older page harmless.
    """
    connection.executemany(
        "INSERT INTO server_fields (record_id, field, value, hlc, device_id, position)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (record_id, field) DO UPDATE SET value = excluded.value,"
        " hlc = excluded.hlc, device_id = excluded.device_id, position = excluded.position"
        " WHERE excluded.position >= server_fields.position",
        [
            (
                c["record_id"],
                c["field"],
                json.dumps(c["value"], ensure_ascii=False),
                c["hlc"],
                c["device_id"],
                c["position"],
            )
            for c in changes
        ],
    )
    heads: dict[str, dict[str, Any]] = {}
    for change in changes:  # oldest first, so the last one per record is its head
        heads[change["record_id"]] = change
    connection.executemany(
        "INSERT INTO server_records (record_id, form_id, form_version, grid_id, position)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (record_id) DO UPDATE SET form_id = excluded.form_id,"
        " form_version = excluded.form_version, grid_id = excluded.grid_id,"
        " position = excluded.position WHERE excluded.position >= server_records.position",
        [
            (h["record_id"], h["form_id"], h["form_version"], h["grid_id"], h["position"])
            for h in heads.values()
        ],
    )


def observe_hlc(connection: sqlite3.Connection, *stamps: str) -> None:
    """Catch the device's HLC up with what the server sent (hex text orders as the clock)."""
    if stamps:
        connection.execute("UPDATE device SET hlc = max(hlc, ?)", (max(stamps),))


class Reregistered(Exception):
    """The device registered again mid-request; rebuild the request and send it anew."""


class RegistrationLost(Exception):
    """The server lost the device (401 device_unknown): its whole journal is queued again."""


class SyncLoop:
    """Drives one sync of one device; `register_again` re-registers after a 401."""

    def __init__(
        self,
        store: LocalStore,
        transport: Transport,
        register_again: Callable[[], bool],
        push_batch: int = 500,
        page_limit: int | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.register_again = register_again
        self.batch = max(1, min(push_batch, MAX_PUSH_OPS))
        self.page_limit = page_limit
        self.report = SyncReport()

    def run(self) -> SyncReport:
        """Push, pull, inbox, forms; each step resumes where a killed one stopped."""
        if not self.store.state().registered:
            raise NeedsRegistration("this device is not registered yet")
        try:
            self.exchange()
        except RegistrationLost:
            # Registered again with every op queued anew: push them before anything else.
            self.exchange()
        self.report.push_batch = self.batch
        return self.report

    def exchange(self) -> None:
        self.push_all()
        self.pull_all()
        if self.report.snapshot and self.probe():
            self.push_all()
            self.pull_all()
        self.fetch_inbox()
        self.fetch_forms()

    # -- transport ---------------------------------------------------------------

    def send(self, build: Callable[[str | None], Request], *, retry: bool = True) -> Reply:
        """Send a request with the current token; on 401 register again once.

        With `retry` the same request goes again with the new token; without it the
        caller gets `Reregistered` and rebuilds the request (a push must renumber).
        After `device_unknown` the sync starts over (`RegistrationLost`).
        """
        reply = self.transport.send(build(self.store.state().token))
        if reply.status == 401:
            problem = problem_of(reply)
            lost = problem.get("code") == "device_unknown"
            if lost:
                self.registration_lost()
            self.renumber_or_fail("the server refused this device's token", problem)
            if lost:
                raise RegistrationLost
            if not retry:
                raise Reregistered
            reply = self.transport.send(build(self.store.state().token))
        if reply.status == 429 or reply.status >= 500:
            raise ServerBusy(
                f"the server answered {reply.status}; sync again later", problem_of(reply)
            )
        if reply.status == 401:
            raise NeedsRegistration("the server refused the new token", problem_of(reply))
        return reply

    def refused(self, what: str, reply: Reply) -> SyncFailed:
        problem = problem_of(reply)
        return SyncFailed(
            f"{what} refused: {reply.status} {problem.get('code')}: {problem.get('detail')}",
            problem,
        )

    # -- push --------------------------------------------------------------------

    def unsent(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM unsent_ops ORDER BY seq LIMIT ?", (self.batch,))
        return [wire_op(row) for row in rows]

    def push_all(self) -> None:
        gaps_seen: set[int] = set()
        while ops := self.unsent():
            try:
                reply = self.send(
                    lambda token, ops=ops: Request(
                        "POST", PUSH_PATH, body={"ops": ops}, token=token
                    ),
                    retry=False,
                )
            except Reregistered:
                continue  # the unsent ops were renumbered under the new device id
            if reply.status == 200:
                self.pushed(ops, checked("push_response", reply))
                continue
            problem = problem_of(reply)
            code = problem.get("code")
            if reply.status == 413:
                if len(ops) == 1:
                    raise self.refused("a single op is too large; push", reply)
                self.batch = max(1, len(ops) // 2)
            elif reply.status == 409 and code == "seq_gap":
                expected = problem["expected_seq"]
                if expected in gaps_seen:
                    raise ProtocolError(f"seq_gap at {expected} again after resending", problem)
                gaps_seen.add(expected)
                self.seq_gap(expected, problem)
            elif reply.status == 409 and code == "seq_reuse":
                self.renumber_or_fail("seq_reuse", problem)
            else:
                raise self.refused("push", reply)

    def pushed(self, ops: list[dict[str, Any]], body: dict[str, Any]) -> None:
        self.store_push_reply(ops, body)
        self.report.pushed += len(ops)
        self.report.applied += body["applied"]
        self.report.duplicate += body["duplicate"]
        self.report.quarantined += len(body["quarantined"])
        self.report.conflicts += len(body["conflicts"])

    def store_push_reply(self, ops: list[dict[str, Any]], body: dict[str, Any]) -> None:
        """Check a push reply against the ops sent, then store what it says in one step."""
        last = ops[-1]["seq"]
        if body["acked_seq"] < last:
            raise ProtocolError(f"acked_seq {body['acked_seq']} is below the last seq sent {last}")
        counted = body["applied"] + body["duplicate"] + len(body["quarantined"])
        if counted != len(ops):
            raise ProtocolError(f"the push reply accounts for {counted} ops of {len(ops)} sent")
        device_id = self.store.state().device_id
        # The server holds seqs 1..n, so the duplicates are the first ops sent, and the
        # rest were stored just now: the reply's verdict on them replaces any earlier
        # quarantine report, which came from a timeline the server lost (a restore).
        stored_now = [(device_id, op["seq"]) for op in ops[body["duplicate"] :]]
        with self.store.transaction("push") as connection:
            connection.execute("UPDATE device SET acked_seq = max(acked_seq, ?)", (last,))
            if stored_now:
                # No pull has brought them back yet (a no-op unless the probe's op
                # was lost): they show over the pulled state until one does.
                connection.execute(
                    "UPDATE device SET reflected_op = min(reflected_op,"
                    " (SELECT id - 1 FROM ops WHERE device_id = ? AND seq = ?))",
                    stored_now[0],
                )
            observe_hlc(connection, body["server_hlc"])
            connection.executemany(
                "DELETE FROM quarantined_ops WHERE device_id = ? AND seq = ?", stored_now
            )
            connection.executemany(
                "INSERT OR REPLACE INTO quarantined_ops"
                " (device_id, seq, record_id, field, reason, detail, reported_at)"
                " VALUES (?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                [
                    (device_id, q["seq"], q["record_id"], q["field"], q["reason"], q["detail"])
                    for q in body["quarantined"]
                ],
            )
            store_conflicts(connection, body["conflicts"])

    def probe(self) -> bool:
        """After a 410, send the last acknowledged op again: True when the server lost ops.

        A server restored from a backup answers 410 to a cursor from before the
        restore; it may also have lost ops it had acknowledged. Re-sending the last
        one is a duplicate if the server still holds it, or a seq_gap naming the
        first seq it lacks, which the next push then resends. When that op is the
        only one lost, the server stores it anew, and the reply is stored as any
        push reply is (its quarantine verdict, its conflicts).
        """
        state = self.store.state()
        rows = self.store.query(
            "SELECT * FROM ops WHERE device_id = ? AND seq = ?", (state.device_id, state.acked_seq)
        )
        if not rows:
            return False
        op = wire_op(rows[0])
        try:
            reply = self.send(
                lambda token: Request("POST", PUSH_PATH, body={"ops": [op]}, token=token),
                retry=False,
            )
        except Reregistered:
            return False
        if reply.status == 200:
            body = checked("push_response", reply)
            self.store_push_reply([op], body)
            return body["duplicate"] == 0  # the server had lost it: pull it back
        problem = problem_of(reply)
        if reply.status == 409 and problem.get("code") == "seq_gap":
            self.seq_gap(problem["expected_seq"], problem)
            return True
        if reply.status == 409 and problem.get("code") == "seq_reuse":
            self.renumber_or_fail("seq_reuse", problem)
            return True
        raise self.refused("push", reply)

    def seq_gap(self, expected: int, problem: dict[str, Any]) -> None:
        """The server needs ops from `expected` on: resend them, or start a new numbering."""
        state = self.store.state()
        if expected >= state.next_seq:
            # The server holds seqs this device never made (its store was restored).
            self.renumber_or_fail("seq_gap beyond this device's journal", problem)
            return
        if expected > state.acked_seq:
            raise ProtocolError(f"seq_gap expects {expected} but {state.acked_seq + 1} was sent")
        with self.store.transaction("seq_gap") as connection:
            # The server lost ops it had acknowledged: it was restored from a backup.
            # Send them again, show them over the pulled state until a pull brings
            # them back, and read a snapshot: the cursor belongs to the lost timeline.
            first = connection.execute(
                "SELECT id FROM ops WHERE device_id = ? AND seq = ?", (state.device_id, expected)
            ).fetchone()
            connection.execute(
                "UPDATE device SET acked_seq = ?, reflected_op = min(reflected_op, ?),"
                " snapshot_cursor = COALESCE(snapshot_cursor, 0)",
                (expected - 1, first["id"] - 1),
            )

    def registration_lost(self) -> None:
        """The server holds nothing of this registration: none of its ops is acknowledged.

        Every op of it becomes unsent again, so the next registration takes them all,
        acknowledged ones too, in journal order with their content and HLC. They show
        over the pulled state again until a pull brings them back, the server's
        reports about them are void, and the pulled state is read afresh: the cursor
        belongs to the timeline the server lost. Safe to repeat after a kill.
        """
        state = self.store.state()
        with self.store.transaction("device_unknown") as connection:
            first = connection.execute(
                "SELECT min(id) FROM ops WHERE device_id = ?", (state.device_id,)
            ).fetchone()[0]
            reflected = state.reflected_op if first is None else min(state.reflected_op, first - 1)
            connection.execute(
                "UPDATE device SET acked_seq = 0, reflected_op = ?, snapshot_cursor = 0",
                (reflected,),
            )
            connection.execute(
                "DELETE FROM quarantined_ops WHERE device_id = ?", (state.device_id,)
            )

    def renumber_or_fail(self, why: str, problem: dict[str, Any]) -> None:
        if self.report.registered_again or not self.register_again():
            raise NeedsRegistration(f"{why}: register this device again", problem)
        self.report.registered_again = True

    # -- pull --------------------------------------------------------------------

    def reflected_marker(self) -> int:
        """The last op a pull started now will bring back: every op before the unsent."""
        row = self.store.query(
            "SELECT COALESCE((SELECT min(id) - 1 FROM unsent_ops), (SELECT max(id) FROM ops), 0)"
        )
        return row[0][0]

    def page(self, path: str, cursor: int) -> Reply:
        query = {"cursor": cursor}
        if self.page_limit:
            query["limit"] = self.page_limit
        return self.send(lambda token: Request("GET", path, query=query, token=token))

    def pull_all(self) -> None:
        marker = self.reflected_marker()
        state = self.store.state()
        if state.snapshot_cursor is not None:
            self.snapshot(marker)
            return
        cursor = state.cursor
        while True:
            reply = self.page(PULL_PATH, cursor)
            if reply.status == 410:
                with self.store.transaction("snapshot_start") as connection:
                    connection.execute("UPDATE device SET snapshot_cursor = 0")
                self.snapshot(marker)
                return
            if reply.status != 200:
                raise self.refused("pull", reply)
            body = checked("pull_response", reply)
            check_page(body, cursor)
            with self.store.transaction("pull_page") as connection:
                apply_changes(connection, body["changes"])
                observe_hlc(connection, body["server_hlc"], *(c["hlc"] for c in body["changes"]))
                connection.execute("UPDATE device SET cursor = ?", (body["cursor"],))
                if not body["more"]:
                    connection.execute(
                        "UPDATE device SET reflected_op = max(reflected_op, ?)", (marker,)
                    )
            self.report.pages += 1
            self.report.pulled += len(body["changes"])
            if not body["more"]:
                return
            cursor = body["cursor"]

    def snapshot(self, marker: int) -> None:
        """Replace the pulled state with the scope's; unsent ops stay queued.

        A 410 in the middle (the scope changed, or a record sent already left it)
        starts the snapshot over from its first page.
        """
        self.report.snapshot = True
        cursor = self.store.state().snapshot_cursor or 0
        while True:
            reply = self.page(SNAPSHOT_PATH, cursor)
            if reply.status == 410 and cursor > 0:
                with self.store.transaction("snapshot_start") as connection:
                    connection.execute("UPDATE device SET snapshot_cursor = 0")
                cursor = 0
                continue
            if reply.status != 200:
                raise self.refused("snapshot", reply)
            body = checked("snapshot_response", reply)
            check_page(body, cursor)
            with self.store.transaction("snapshot_page") as connection:
                if cursor == 0:
                    connection.execute("DELETE FROM server_fields")
                    connection.execute("DELETE FROM server_records")
                apply_changes(connection, body["changes"])
                observe_hlc(connection, body["server_hlc"], *(c["hlc"] for c in body["changes"]))
                if body["more"]:
                    connection.execute("UPDATE device SET snapshot_cursor = ?", (body["cursor"],))
                else:
                    connection.execute(
                        "UPDATE device SET snapshot_cursor = NULL, cursor = ?,"
                        " reflected_op = max(reflected_op, ?)",
                        (body["cursor"], marker),
                    )
            self.report.pages += 1
            self.report.pulled += len(body["changes"])
            if not body["more"]:
                return
            cursor = body["cursor"]

    # -- inbox and forms ---------------------------------------------------------

    def fetch_inbox(self) -> None:
        after = self.store.state().inbox_after
        while True:
            reply = self.send(
                lambda token, after=after: Request(
                    "GET", INBOX_PATH, query={"after": after}, token=token
                )
            )
            if reply.status != 200:
                raise self.refused("inbox", reply)
            body = checked("inbox_response", reply)
            items = body["items"]
            ids = [item["id"] for item in items]
            if ids != sorted(set(ids)) or (ids and ids[0] <= after):
                raise ProtocolError(f"inbox items after {after} are not in ascending order")
            with self.store.transaction("inbox_page") as connection:
                connection.executemany(
                    "INSERT OR IGNORE INTO inbox (id, kind, record_id, created_at, payload)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            i["id"],
                            i["kind"],
                            i["record_id"],
                            i["created_at"],
                            json.dumps(i["payload"], ensure_ascii=False),
                        )
                        for i in items
                    ],
                )
                store_conflicts(
                    connection, [i["payload"] for i in items if i["kind"] == "conflict"]
                )
                if ids:
                    connection.execute("UPDATE device SET inbox_after = ?", (ids[-1],))
            self.report.inbox_new += len(items)
            if not body["more"] or not ids:
                return
            after = ids[-1]

    def fetch_forms(self) -> None:
        etag = self.store.state().forms_etag
        headers = {"If-None-Match": etag} if etag else {}
        reply = self.send(lambda token: Request("GET", FORMS_PATH, token=token, headers=headers))
        if reply.status == 304:
            return
        if reply.status != 200:
            raise self.refused("forms bundle", reply)
        body = checked("forms_bundle", reply)
        with self.store.transaction("forms") as connection:
            store_forms(connection, body["forms"])
            connection.execute("UPDATE device SET forms_etag = ?", (reply.header("ETag"),))
        self.report.forms_updated = True


def wire_op(row: sqlite3.Row) -> dict[str, Any]:
    """A journal row as the op the server expects."""
    return {
        "seq": row["seq"],
        "record_id": row["record_id"],
        "form_id": row["form_id"],
        "form_version": row["form_version"],
        "grid_id": row["grid_id"],
        "field": row["field"],
        "kind": row["kind"],
        "value": json.loads(row["value"]),
        "hlc": row["hlc"],
        "base": row["base"],
    }


def check_page(body: dict[str, Any], cursor: int) -> None:
    """A page must move forward from the cursor, oldest change first."""
    positions = [change["position"] for change in body["changes"]]
    if positions and (positions != sorted(positions) or positions[0] <= cursor):
        raise ProtocolError(f"the page after cursor {cursor} is not in position order")
    if body["cursor"] < max([cursor, *positions]):
        raise ProtocolError(f"the page's cursor {body['cursor']} is behind what it sent")
    if body["more"] and body["cursor"] == cursor:
        raise ProtocolError(f"the page says more but its cursor stays at {cursor}")


def store_conflicts(connection: sqlite3.Connection, conflicts: list[dict[str, Any]]) -> None:
    connection.executemany(
        "INSERT INTO conflicts (conflict_id, record_id, field, status, body, reported_at)"
        " VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        " ON CONFLICT (conflict_id) DO UPDATE SET status = excluded.status, body = excluded.body",
        [
            (
                c["conflict_id"],
                c["record_id"],
                c["field"],
                c["status"],
                json.dumps(c, ensure_ascii=False),
            )
            for c in conflicts
        ],
    )


def store_forms(connection: sqlite3.Connection, forms: list[dict[str, Any]]) -> None:
    connection.executemany(
        "INSERT OR REPLACE INTO forms (form_id, version, definition) VALUES (?, ?, ?)",
        [
            (f["form_id"], f["version"], json.dumps(f["definition"], ensure_ascii=False))
            for f in forms
        ],
    )
