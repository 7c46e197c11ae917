"""The reference device client: register, edit offline through the forms validator, sync.

    client = DeviceClient.open("device.db", "https://fieldsync.example", transport)
    client.register("worker1", password)
    record_id = client.create("household", grid_id=14, values={"head_name": "王芳"})
    client.sync()

Each edit becomes ops (one per field) stamped with the device's HLC and with `base`
= the pull cursor applied when it was made, queued in the local store in one
transaction. Android and iOS clients implement the same steps (docs/device.md).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forms.unicode import unstorable_path
from mobile_schema.errors import DeviceError, EditRejected, NeedsRegistration, ServerBusy
from mobile_schema.form_catalog import FormCatalog
from mobile_schema.local_store import DeviceState, LocalStore
from mobile_schema.records import RecordView, load_record, load_records
from mobile_schema.schemas import validate
from mobile_schema.sync_loop import SyncLoop, SyncReport, problem_of, store_forms
from mobile_schema.transport import Request, Transport, UrlTransport, checked_server_url
from sync import hlc
from sync.ops import ADD, DELETED, GROUP, ORDER, PARENT, REMOVE, SET

REGISTER_PATH = "/api/v1/devices/register"

Credentials = Callable[[], tuple[str, str] | None]


@dataclass(frozen=True)
class Edit:
    """One field edit asked for by the user, before it is numbered and stamped."""

    record_id: str
    form_id: str
    form_version: int
    grid_id: int
    field: str
    kind: str
    value: Any


@dataclass(frozen=True)
class InboxEntry:
    """One thing to show the user: a conflict, a quarantined op, a review, a comment."""

    kind: str
    record_id: str | None
    created_at: str
    payload: dict[str, Any]
    source: str  # "inbox" (sent by the server) or "push" (reported by a push reply)


class DeviceClient:
    """One device: its local store, a transport to the server, and the sync loop."""

    def __init__(
        self,
        store: LocalStore,
        transport: Transport,
        *,
        credentials: Credentials | None = None,
        device_name: str = "",
        push_batch: int = 500,
        page_limit: int | None = None,
        wall: Callable[[], int] = hlc.wall_millis,
        server_url: str | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        # The server the transport reaches; stored with the next successful registration.
        self.server_url = server_url or store.state().server_url
        self.credentials = credentials
        self.device_name = device_name
        self.push_batch = push_batch
        self.page_limit = page_limit
        self.wall = wall
        self.forms = FormCatalog(store.connection)

    @classmethod
    def open(
        cls,
        path: str | Path,
        server_url: str | None = None,
        transport: Transport | None = None,
        **options: Any,
    ) -> DeviceClient:
        """Open (or create) the store at `path`; the transport defaults to urllib.

        `server_url` is the server to register with: it seeds a new store, and a
        registered store keeps its own until `register` succeeds with the new one.
        """
        if server_url is not None:
            server_url = checked_server_url(server_url)
        store = LocalStore(path, server_url)
        try:
            url = server_url or store.state().server_url
            transport = transport or UrlTransport(url)
        except BaseException:
            store.close()
            raise
        return cls(store, transport, server_url=url, **options)

    def close(self) -> None:
        self.store.close()

    def state(self) -> DeviceState:
        return self.store.state()

    # -- registration ------------------------------------------------------------

    def register(self, username: str, password: str, device_name: str | None = None) -> DeviceState:
        """Sign in; unsent ops of an earlier registration move to the new device id."""
        body = {
            "username": username,
            "password": password,
            "device_name": device_name if device_name is not None else self.device_name,
        }
        reply = self.transport.send(Request("POST", REGISTER_PATH, body=body))
        if reply.status == 429 or reply.status >= 500:
            raise ServerBusy(f"registration answered {reply.status}", problem_of(reply))
        if reply.status != 201:
            problem = problem_of(reply)
            raise NeedsRegistration(f"registration refused: {problem.get('detail')}", problem)
        errors = validate("register_response", reply.body)
        if errors:
            raise DeviceError(f"registration reply does not match its schema: {errors[0]}")
        with self.store.transaction("register") as connection:
            _adopt_registration(connection, self.store.state(), reply.body)
            connection.execute("UPDATE device SET server_url = ?", (self.server_url,))
        return self.store.state()

    def _register_again(self) -> bool:
        """After a 401 or seq_reuse: sign in again when credentials are at hand."""
        found = self.credentials() if self.credentials else None
        if found is None:
            return False
        self.register(*found)
        return True

    # -- edits -------------------------------------------------------------------

    def create(
        self,
        form_id: str,
        grid_id: int,
        values: dict[str, Any] | None = None,
        *,
        parent: str | None = None,
        group: str | None = None,
        order: float | None = None,
        record_id: str | None = None,
    ) -> str:
        """A new record (or repeat row, with parent and group) and its first values."""
        version = self.forms.latest_version(form_id)
        if version is None:
            raise EditRejected("unknown_form", f"this device holds no form {form_id!r}")
        record_id = record_id or str(uuid.uuid4())
        if self.record(record_id) is not None:
            raise EditRejected("record_exists", f"record {record_id} exists already")
        edits = []
        for name, value in ((PARENT, parent), (GROUP, group), (ORDER, order)):
            if value is not None:
                edits.append(Edit(record_id, form_id, version, grid_id, name, SET, value))
        for name, value in (values or {}).items():
            edits.extend(self._edits_for(record_id, form_id, version, grid_id, name, value, []))
        self.save(edits)
        return record_id

    def set(self, record_id: str, field: str, value: Any, *, grid_id: int | None = None) -> None:
        """Set a field (a select_multiple takes the whole list: the difference is queued)."""
        self.save(self.set_edits(record_id, field, value, grid_id=grid_id))

    def add(self, record_id: str, field: str, choice: str, *, grid_id: int | None = None) -> None:
        """Tick one choice of a select_multiple."""
        self.save([self.choice_edit(record_id, field, ADD, choice, grid_id=grid_id)])

    def remove(
        self, record_id: str, field: str, choice: str, *, grid_id: int | None = None
    ) -> None:
        """Untick one choice of a select_multiple."""
        self.save([self.choice_edit(record_id, field, REMOVE, choice, grid_id=grid_id)])

    def delete(self, record_id: str, *, grid_id: int | None = None) -> None:
        """Tombstone the record (a later `restore` revives it)."""
        self.set(record_id, DELETED, True, grid_id=grid_id)

    def restore(self, record_id: str) -> None:
        self.set(record_id, DELETED, False)

    def set_edits(
        self, record_id: str, field: str, value: Any, *, grid_id: int | None = None
    ) -> list[Edit]:
        """The edits of setting a field, for `save`; `grid_id` moves the record with them."""
        view = self._existing(record_id)
        current = view.values.get(field)
        return self._edits_for(
            record_id,
            view.form_id,
            self._edit_version(view),
            _grid_of(view, grid_id),
            field,
            value,
            current if isinstance(current, list) else [],
        )

    def choice_edit(
        self, record_id: str, field: str, kind: str, choice: str, *, grid_id: int | None = None
    ) -> Edit:
        """Ticking (`add`) or unticking (`remove`) one choice, for `save`."""
        if kind not in (ADD, REMOVE):
            raise ValueError(f"a choice is ticked with add or unticked with remove, not {kind!r}")
        view = self._existing(record_id)
        version = self._edit_version(view)
        return Edit(record_id, view.form_id, version, _grid_of(view, grid_id), field, kind, choice)

    def _existing(self, record_id: str) -> RecordView:
        view = self.record(record_id)
        if view is None:
            raise EditRejected("unknown_record", f"this device holds no record {record_id}")
        return view

    def _edit_version(self, view: RecordView) -> int:
        # Edits are made under the newest version the device holds: the one its UI shows.
        return self.forms.latest_version(view.form_id) or view.form_version

    def _edits_for(
        self,
        record_id: str,
        form_id: str,
        version: int,
        grid_id: int,
        name: str,
        value: Any,
        current: list[Any],
    ) -> list[Edit]:
        built = self.forms.version(form_id, version)
        definition = built.field(name) if built else None
        if definition is not None and definition.type == "select_multiple":
            if not isinstance(value, list):
                raise EditRejected("wrong_type", f"{name!r} takes a list of choices")
            added = [
                Edit(record_id, form_id, version, grid_id, name, ADD, c)
                for c in value
                if c not in current
            ]
            removed = [
                Edit(record_id, form_id, version, grid_id, name, REMOVE, c)
                for c in current
                if c not in value
            ]
            return added + removed
        return [Edit(record_id, form_id, version, grid_id, name, SET, value)]

    def save(self, edits: list[Edit]) -> None:
        """Check every edit, then number, stamp and store them all in one transaction.

        One save is all or nothing: an edit refused anywhere in it queues none of them.
        """
        state = self.store.state()
        if not state.registered:
            raise EditRejected("not_registered", "register the device before collecting")
        for edit in edits:
            if state.grid_ids is not None and edit.grid_id not in state.grid_ids:
                raise EditRejected("grid_out_of_scope", f"grid {edit.grid_id} is not yours")
            refusal = self.forms.check(
                edit.form_id, edit.form_version, edit.field, edit.kind, edit.value
            )
            if refusal is not None:
                raise EditRejected(refusal.reason, refusal.detail)
            if unstorable_path(edit.value) is not None:  # the server refuses the whole push
                raise EditRejected("wrong_type", f"{edit.field!r}: NUL or a lone surrogate")
        if not edits:
            return
        with self.store.transaction("edit") as connection:
            _append_ops(connection, edits, self.wall)

    # -- reading -----------------------------------------------------------------

    def record(self, record_id: str) -> RecordView | None:
        with self.store.reading() as connection:
            return load_record(connection, record_id)

    def records(
        self, form_id: str | None = None, include_deleted: bool = False
    ) -> list[RecordView]:
        with self.store.reading() as connection:
            views = load_records(connection).values()
        return sorted(
            (
                v
                for v in views
                if (form_id is None or v.form_id == form_id) and (include_deleted or not v.deleted)
            ),
            key=lambda v: v.record_id,
        )

    def unsent_count(self) -> int:
        return self.store.query("SELECT count(*) FROM unsent_ops")[0][0]

    def inbox(self) -> list[InboxEntry]:
        """The inbox, plus quarantined ops and conflicts reported by pushes, oldest first."""
        entries = [
            InboxEntry(
                r["kind"], r["record_id"], r["created_at"], json.loads(r["payload"]), "inbox"
            )
            for r in self.store.query("SELECT * FROM inbox ORDER BY id")
        ]
        announced = {
            (e.payload.get("seq"), e.payload.get("record_id"))
            for e in entries
            if e.kind == "quarantine"
        }
        for row in self.store.query("SELECT * FROM quarantined_ops ORDER BY reported_at, seq"):
            if (row["seq"], row["record_id"]) not in announced:
                payload = {k: row[k] for k in ("seq", "record_id", "field", "reason", "detail")}
                entries.append(
                    InboxEntry("quarantine", row["record_id"], row["reported_at"], payload, "push")
                )
        in_inbox = {e.payload.get("conflict_id") for e in entries if e.kind == "conflict"}
        for row in self.store.query("SELECT * FROM conflicts ORDER BY conflict_id"):
            if row["conflict_id"] not in in_inbox:
                entries.append(
                    InboxEntry(
                        "conflict",
                        row["record_id"],
                        row["reported_at"],
                        json.loads(row["body"]),
                        "push",
                    )
                )
        return entries

    # -- sync --------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Push pending ops in batches, pull every page, fetch the inbox and forms."""
        loop = SyncLoop(
            self.store, self.transport, self._register_again, self.push_batch, self.page_limit
        )
        report = loop.run()
        if report.forms_updated:
            self.forms.forget()
        with self.store.transaction("synced") as connection:
            connection.execute(
                "UPDATE device SET last_sync_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
            )
        return report

    def install_forms(self, forms: list[dict[str, Any]]) -> None:
        """Store form versions given out of band (a bundle file from the admin)."""
        errors = validate("forms_bundle", {"forms": forms})
        if errors:
            raise DeviceError(f"not a forms bundle: {errors[0].path} {errors[0].message}")
        with self.store.transaction("forms") as connection:
            store_forms(connection, forms)
        self.forms.forget()


def _grid_of(view: RecordView, grid_id: int | None) -> int:
    """The grid an edit of the record carries: the one asked for (a move), else its own."""
    return view.grid_id if grid_id is None else grid_id


def _append_ops(connection: sqlite3.Connection, edits: list[Edit], wall: Callable[[], int]) -> None:
    """Number and stamp the edits as ops, continuing the device's seq and clock.

    Each op is checked against the op schema exactly as it will be pushed: the server
    refuses a push holding one bad op (422), which would hold back every later op of
    the device for good. A failing op raises, so the caller's transaction stores none.
    """
    row = connection.execute(
        "SELECT device_id, next_seq, hlc, cursor FROM device WHERE id = 1"
    ).fetchone()
    clock = hlc.Clock(wall, hlc.from_wire(row["hlc"]))
    ops = [
        {
            "seq": row["next_seq"] + offset,
            "record_id": edit.record_id,
            "form_id": edit.form_id,
            "form_version": edit.form_version,
            "grid_id": edit.grid_id,
            "field": edit.field,
            "kind": edit.kind,
            "value": edit.value,
            "hlc": hlc.to_wire(clock.now()),
            "base": row["cursor"],
        }
        for offset, edit in enumerate(edits)
    ]
    for op in ops:
        errors = validate("op", op)
        if errors:
            first = errors[0]
            detail = f"{first.path} {first.message} (the op of {op['field']!r})"
            raise EditRejected("schema_violation", detail)
    made_at = connection.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchone()[0]
    connection.executemany(
        "INSERT INTO ops (device_id, seq, record_id, form_id, form_version, grid_id, field,"
        " kind, value, hlc, base, made_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                row["device_id"],
                op["seq"],
                op["record_id"],
                op["form_id"],
                op["form_version"],
                op["grid_id"],
                op["field"],
                op["kind"],
                json.dumps(op["value"], ensure_ascii=False),
                op["hlc"],
                op["base"],
                made_at,
            )
            for op in ops
        ],
    )
    connection.execute(
        "UPDATE device SET next_seq = ?, hlc = ?",
        (row["next_seq"] + len(edits), hlc.to_wire(clock.peek())),
    )


def _adopt_registration(
    connection: sqlite3.Connection, state: DeviceState, reply: dict[str, Any]
) -> None:
    """Take the new device id and token; renumber unsent ops under the new id."""
    username = reply["user"]["username"]
    if state.username is not None and state.username != username:
        unsent = connection.execute("SELECT count(*) FROM unsent_ops").fetchone()[0]
        if unsent:
            raise DeviceError(
                f"{unsent} ops of {state.username} are not sent yet; sync them before "
                f"{username} signs in on this device"
            )
        # Another user's scope: the pulled state, cursor and inbox belong to them, and
        # so do the journal's ops (all acknowledged): none shows over the new user's.
        for table in ("server_fields", "server_records", "inbox", "conflicts", "quarantined_ops"):
            connection.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed table names)
        connection.execute(
            "UPDATE device SET cursor = 0, snapshot_cursor = NULL, inbox_after = 0,"
            " reflected_op = (SELECT COALESCE(max(id), 0) FROM ops)"
        )
    # Unsent ops were numbered acked+1, acked+2, …: under the new id they become 1, 2, …
    connection.execute(
        "UPDATE ops SET device_id = ?, seq = seq - ? WHERE device_id = ? AND seq > ?",
        (reply["device_id"], state.acked_seq, state.device_id, state.acked_seq),
    )
    unsent = connection.execute(
        "SELECT count(*) FROM ops WHERE device_id = ?", (reply["device_id"],)
    ).fetchone()[0]
    connection.execute(
        "UPDATE device SET device_id = ?, token = ?, user_id = ?, username = ?, role = ?,"
        " grid_ids = ?, next_seq = ?, acked_seq = 0",
        (
            reply["device_id"],
            reply["token"],
            reply["user"]["id"],
            username,
            reply["user"]["role"],
            None if reply["grid_ids"] is None else json.dumps(reply["grid_ids"]),
            unsent + 1,
        ),
    )
