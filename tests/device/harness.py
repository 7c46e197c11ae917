"""Helpers shared by the client tests: devices on a temporary disk, and checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mobile_schema.client import DeviceClient
from mobile_schema.local_store import LocalStore
from mobile_schema.transport import Transport

SERVER_URL = "http://fieldsync.test"


def open_device(
    path: Path, transport: Transport, credentials: tuple[str, str] | None = None, **options: Any
) -> DeviceClient:
    """A client on the store at `path` (created when new), as a restarted app would open it."""
    store = LocalStore(path, SERVER_URL, durable=False)
    return DeviceClient(
        store, transport, credentials=(lambda: credentials) if credentials else None, **options
    )


def journal(client: DeviceClient) -> list[tuple[str, int, str]]:
    """The device's own ops as (device_id, seq, content), in journal order."""
    rows = client.store.query("SELECT * FROM ops ORDER BY id")
    return [
        (r["device_id"], r["seq"], f"{r['record_id']}/{r['field']}/{r['kind']}/{r['value']}")
        for r in rows
    ]


def view(client: DeviceClient) -> dict[tuple[str, str], Any]:
    """What the device shows, field by field."""
    return {
        (record.record_id, name): value
        for record in client.records(include_deleted=True)
        for name, value in record.values.items()
    }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
