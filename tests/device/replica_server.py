"""A sync server in memory for the client's unit tests: the protocol around sync.replica.

It speaks docs/protocol.md over the client's Transport interface (no HTTP, no
database), validates every request and every reply against the JSON Schemas, and can
be told to fail: revoke a token (401 token_revoked), cap pushes (413), lose replies,
or roll back to an earlier copy of itself (a server restored from backup: seq_gap and
410, and 401 device_unknown for a device registered after the backup).
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forms.builtin import all_forms, definition
from forms.validate import check_op
from mobile_schema.schemas import validate
from mobile_schema.transport import Reply, Request
from sync import hlc
from sync.messages import CursorExpired, SeqGap, SeqReuse
from sync.ops import Op
from sync.reasons import Verdict
from sync.replica import ServerReplica

FORMS = all_forms()
REQUEST_SCHEMAS = {
    ("POST", "/api/v1/devices/register"): "register_request",
    ("POST", "/api/v1/sync/push"): "push_request",
    ("GET", "/api/v1/sync/pull"): "pull_request",
    ("GET", "/api/v1/sync/snapshot"): "snapshot_request",
    ("GET", "/api/v1/sync/inbox"): "inbox_request",
}


def lookup_form(form_id: str) -> list[int] | None:
    form = FORMS.get(form_id)
    return None if form is None else [form.version]


def check_field(op: Op) -> Verdict | None:
    rejection = check_op(FORMS[op.form_id], op.field, op.kind, op.value)
    return None if rejection is None else Verdict(rejection.reason, rejection.detail)


def problem(status: int, code: str, detail: str, **extra: Any) -> Reply:
    body = {
        "type": f"https://fieldsync.dev/problems/{code}",
        "title": code,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [],
        **extra,
    }
    return Reply(status, body, {"Content-Type": "application/problem+json"})


@dataclass
class User:
    user_id: int
    password: str
    role: str
    grid_ids: list[int] | None


@dataclass
class ServerState:
    """Everything a backup would hold."""

    replica: ServerReplica
    devices: dict[str, str] = field(default_factory=dict)  # token -> device_id
    revoked: set[str] = field(default_factory=set)  # device ids
    owners: dict[str, str] = field(default_factory=dict)  # device_id -> username
    inbox: list[dict[str, Any]] = field(default_factory=list)


class ReplicaServer:
    """The Transport the client under test talks to."""

    def __init__(self, max_ops: int = 5000, page_size: int = 1000) -> None:
        self.wall_ms = hlc.wall_millis()
        self.state = ServerState(ServerReplica(lookup_form, check_field, wall=self.wall))
        self.users: dict[str, User] = {}
        self.max_ops = max_ops
        self.page_size = page_size
        self.requests: list[Request] = []
        self.expired: list[tuple[int, int]] = []  # cursors low < c <= high answer 410
        self.fail: Callable[[Request], str | None] = lambda request: None

    def wall(self) -> int:
        return self.wall_ms

    def add_user(self, username: str, grid_ids: list[int] | None, role: str = "worker") -> str:
        password = f"{username}-password"
        self.users[username] = User(len(self.users) + 1, password, role, grid_ids)
        return password

    def backup(self) -> ServerState:
        return self.copy_of(self.state)

    def restore(self, backup: ServerState) -> None:
        """Go back to a backup, as docs/device.md asks of a restored server: positions
        jump past every one handed out before, and cursors in between answer 410."""
        newest = self.state.replica.position
        self.state = self.copy_of(backup)
        restart = newest + 1000
        self.expired.append((self.state.replica.position, restart))
        self.state.replica.position = restart

    def copy_of(self, state: ServerState) -> ServerState:
        # The replica reads the time through self.wall: the copy keeps reading this
        # server's clock, as a restored server does, instead of a frozen copy of it.
        return copy.deepcopy(state, {id(self): self})

    def revoke(self, device_id: str) -> None:
        self.state.revoked.add(device_id)

    # -- the transport -----------------------------------------------------------

    def send(self, request: Request) -> Reply:
        self.requests.append(request)
        self.wall_ms += 10
        failure = self.fail(request)
        if failure == "before":
            raise ConnectionError("the request never reached the server")
        reply = self.handle(request)
        if reply.status != 304:
            assert not validate(self.reply_schema(request, reply), reply.body), reply.body
        if failure == "after":
            raise ConnectionError("the reply was lost")
        return reply

    @staticmethod
    def reply_schema(request: Request, reply: Reply) -> str:
        if reply.status >= 400:
            return "problem"
        return {
            "/api/v1/devices/register": "register_response",
            "/api/v1/sync/push": "push_response",
            "/api/v1/sync/pull": "pull_response",
            "/api/v1/sync/snapshot": "snapshot_response",
            "/api/v1/sync/inbox": "inbox_response",
            "/api/v1/forms/bundle": "forms_bundle",
        }[request.path]

    def handle(self, request: Request) -> Reply:
        schema = REQUEST_SCHEMAS.get((request.method, request.path))
        message = request.body if request.method == "POST" else dict(request.query)
        pushed = message.get("ops", []) if isinstance(message, dict) else []
        if request.path == "/api/v1/sync/push" and len(pushed) > self.max_ops:
            return problem(413, "payload_too_large", f"at most {self.max_ops} ops")
        if schema is not None:
            errors = validate(schema, message)
            if errors:
                return problem(
                    422, "schema_violation", "bad message", errors=[e.as_dict() for e in errors]
                )
        if request.path == "/api/v1/devices/register":
            return self.register(message)
        device_id = self.state.devices.get(request.token or "")
        if device_id is None:
            return problem(401, "device_unknown", "no device holds this token")
        if device_id in self.state.revoked:
            return problem(401, "token_revoked", "register again")
        user = self.users[self.state.owners[device_id]]
        if request.path == "/api/v1/sync/push":
            return self.push(device_id, user, message["ops"])
        if request.path in ("/api/v1/sync/pull", "/api/v1/sync/snapshot"):
            return self.page(request.path, user, message)
        if request.path == "/api/v1/sync/inbox":
            return self.inbox_page(self.state.owners[device_id], message.get("after", 0))
        if request.path == "/api/v1/forms/bundle":
            return self.forms_bundle(request)
        return problem(404, "not_found", request.path)

    def register(self, body: dict[str, Any]) -> Reply:
        user = self.users.get(body["username"])
        if user is None or user.password != body["password"]:
            return problem(401, "invalid_credentials", "wrong username or password")
        device_id, token = str(uuid.uuid4()), secrets.token_urlsafe(32)
        self.state.devices[token] = device_id
        self.state.owners[device_id] = body["username"]
        return Reply(
            201,
            {
                "device_id": device_id,
                "token": token,
                "user": {"id": user.user_id, "username": body["username"], "role": user.role},
                "grid_ids": user.grid_ids,
            },
        )

    def push(self, device_id: str, user: User, wire_ops: list[dict[str, Any]]) -> Reply:
        ops = [Op.from_wire(op, device_id) for op in wire_ops]
        try:
            result = self.state.replica.push(device_id, ops, user.grid_ids)
        except SeqGap as gap:
            return problem(409, "seq_gap", str(gap), expected_seq=gap.expected_seq)
        except SeqReuse as reuse:
            return problem(409, "seq_reuse", str(reuse), seq=reuse.seq)
        username = self.state.owners[device_id]
        quarantined = [q.to_wire() for q in result.quarantined]
        conflicts = [self.conflict_wire(c) for c in result.conflicts]
        for item in quarantined:
            self.add_item(username, "quarantine", item["record_id"], item)
        for item in conflicts:
            for owner in {self.state.owners[v["device_id"]] for v in item["values"]}:
                self.add_item(owner, "conflict", item["record_id"], item)
        return Reply(
            200,
            {
                "acked_seq": result.acked_seq,
                "applied": result.applied,
                "duplicate": result.duplicate,
                "quarantined": quarantined,
                "conflicts": conflicts,
                "server_hlc": hlc.to_wire(result.server_hlc),
            },
        )

    def conflict_wire(self, conflict) -> dict[str, Any]:
        replica = self.state.replica
        row = replica.conflicts[conflict.ident]
        values = []
        for op_id in (conflict.first, conflict.second):
            op = replica.ops[op_id].op
            values.append(
                {
                    "device_id": op.device_id,
                    "user_id": self.users[self.state.owners[op.device_id]].user_id,
                    "seq": op.seq,
                    "hlc": hlc.to_wire(op.hlc),
                    "value": op.value,
                    "winner": op_id == conflict.winner,
                }
            )
        return {
            "conflict_id": row.conflict_id,
            "record_id": conflict.record_id,
            "field": conflict.field,
            "values": values,
            "status": "resolved" if row.resolved else "open",
        }

    def add_item(self, username: str, kind: str, record_id: str | None, payload: dict) -> None:
        inbox = self.state.inbox
        inbox.append(
            {
                "id": len(inbox) + 1,
                "owner": username,
                "kind": kind,
                "record_id": record_id,
                "created_at": "2026-01-02T03:04:05Z",
                "payload": payload,
            }
        )

    def page(self, path: str, user: User, query: dict[str, Any]) -> Reply:
        limit = min(query.get("limit", self.page_size), self.page_size)
        replica = self.state.replica
        if path.endswith("pull") and any(lo < query["cursor"] <= hi for lo, hi in self.expired):
            return problem(410, "cursor_expired", "the server was restored from a backup")
        try:
            if path.endswith("pull"):
                page = replica.pull(user.grid_ids, query["cursor"], limit)
            else:
                page = replica.snapshot(user.grid_ids, query["cursor"], limit)
        except CursorExpired as expired:
            return problem(410, "cursor_expired", str(expired))
        return Reply(
            200,
            {
                "changes": [c.to_wire() for c in page.changes],
                "cursor": page.cursor,
                "more": page.more,
                "server_hlc": hlc.to_wire(page.server_hlc),
            },
        )

    def inbox_page(self, username: str, after: int) -> Reply:
        mine = [i for i in self.state.inbox if i["owner"] == username and i["id"] > after]
        items = [{k: v for k, v in i.items() if k != "owner"} for i in mine[:2]]
        return Reply(200, {"items": items, "more": len(mine) > 2})

    def forms_bundle(self, request: Request) -> Reply:
        etag = '"builtin-1"'
        if request.headers.get("If-None-Match") == etag:
            return Reply(304, None, {"ETag": etag})
        forms = [
            {"form_id": f.form_id, "version": f.version, "definition": definition(name)}
            for name, f in FORMS.items()
        ]
        return Reply(200, {"forms": forms}, {"ETag": etag})
