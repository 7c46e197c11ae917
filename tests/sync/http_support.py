"""Helpers for the sync HTTP tests: a world with built-in forms, devices that stamp ops,
and calls that check every response against its JSON Schema."""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from mobile_schema.schemas import validate
from server.form_store import install_builtin
from sync import hlc
from tests.api.factories import World, build_world

FORM = "household_visit"
START_MS = 1_700_000_000_000


def make_world(database) -> World:
    """The API tests' grid tree and users, with the built-in forms published."""
    world = build_world(database)
    with database.session() as session:
        install_builtin(session)
    return world


def record_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Phone:
    """A device in a test: its token, next seq, clock and pull cursor."""

    client: Any
    token: str
    seq: int = 0
    cursor: int = 0
    clock: hlc.Clock = field(default_factory=lambda: hlc.Clock(hlc.wall_millis))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def op(
        self,
        record: str,
        name: str,
        value: Any,
        *,
        kind: str = "set",
        grid: int,
        form: str = FORM,
        version: int = 1,
    ) -> dict:
        """The next wire op of this device."""
        self.seq += 1
        return {
            "seq": self.seq,
            "record_id": record,
            "form_id": form,
            "form_version": version,
            "grid_id": grid,
            "field": name,
            "kind": kind,
            "value": value,
            "hlc": hlc.to_wire(self.clock.now()),
            "base": self.cursor,
        }

    def push(self, ops: list[dict], *, compress: bool = False, status: int = 200) -> dict:
        """POST the ops; checks the status and the reply's schema."""
        body = json.dumps({"ops": ops}).encode()
        headers = {**self.headers, "Content-Type": "application/json"}
        if compress:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        response = self.client.post("/api/v1/sync/push", data=body, headers=headers)
        return checked(response, status, "push_response")

    def pull_all(self, limit: int | None = None) -> list[dict]:
        """Pull pages until `more` is false; the changes, in order."""
        changes = []
        while True:
            page = self.pull(limit)
            changes.extend(page["changes"])
            if not page["more"]:
                return changes

    def snapshot_all(self, limit: int | None = None) -> list[dict]:
        """Start over from a snapshot: pages from cursor 0 until `more` is false."""
        self.cursor, changes = 0, []
        while True:
            query = f"cursor={self.cursor}" + (f"&limit={limit}" if limit else "")
            response = self.client.get(f"/api/v1/sync/snapshot?{query}", headers=self.headers)
            page = checked(response, 200, "snapshot_response")
            self.cursor = page["cursor"]
            changes.extend(page["changes"])
            if not page["more"]:
                return changes

    def pull(self, limit: int | None = None, status: int = 200) -> dict:
        query = f"cursor={self.cursor}" + (f"&limit={limit}" if limit else "")
        response = self.client.get(f"/api/v1/sync/pull?{query}", headers=self.headers)
        page = checked(response, status, "pull_response")
        if status == 200:
            self.cursor = page["cursor"]
            for change in page["changes"]:
                self.clock.observe(hlc.from_wire(change["hlc"]))
            self.clock.observe(hlc.from_wire(page["server_hlc"]))
        return page


def checked(response, status: int, schema: str) -> dict:
    """The response's JSON after checking its status and its schema (problem for errors)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json(force=True)
    errors = validate(schema if status < 400 else "problem", body)
    assert errors == [], errors
    if status >= 400:
        assert response.mimetype == "application/problem+json"
    return body


def phone(client, world: World, who: str) -> Phone:
    return Phone(client, world.tokens[who])
