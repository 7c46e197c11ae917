"""Valid examples of every sync message, shared by the schema tests."""

from __future__ import annotations

import copy
from typing import Any

RECORD = "5b0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a10"
DEVICE = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER_DEVICE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
HLC = "0000018c2f3a4b5c"
SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

OP = {
    "seq": 17,
    "record_id": RECORD,
    "form_id": "household",
    "form_version": 2,
    "grid_id": 14,
    "field": "head_name",
    "kind": "set",
    "value": "王芳",
    "hlc": HLC,
    "base": 1200,
}

CONFLICT = {
    "conflict_id": 7,
    "record_id": RECORD,
    "field": "severity",
    "values": [
        {"device_id": DEVICE, "user_id": 4, "seq": 12, "hlc": HLC, "value": "high", "winner": True},
        {
            "device_id": OTHER_DEVICE,
            "user_id": 5,
            "seq": 3,
            "hlc": HLC,
            "value": "medium",
            "winner": False,
        },
    ],
    "status": "open",
}

QUARANTINED = {
    "seq": 9,
    "record_id": RECORD,
    "field": "age",
    "reason": "out_of_range",
    "detail": "age 230 is above 150",
}

CHANGE = {
    "record_id": RECORD,
    "form_id": "household",
    "form_version": 2,
    "grid_id": 14,
    "field": "head_name",
    "value": "王芳",
    "hlc": HLC,
    "device_id": DEVICE,
    "position": 1201,
}

PAGE = {
    "changes": [CHANGE, dict(CHANGE, field="tags", value=["a", "b"], position=1202)],
    "cursor": 1202,
    "more": False,
    "server_hlc": HLC,
}

VALID: dict[str, list[Any]] = {
    "register_request": [
        {"username": "worker1", "password": "secret", "device_name": "Redmi 12"},
        {"username": "worker1", "password": "secret"},
    ],
    "register_response": [
        {
            "device_id": DEVICE,
            "token": "t" * 43,
            "user": {"id": 3, "username": "worker1", "role": "worker"},
            "grid_ids": [4, 5],
        },
        {
            "device_id": DEVICE,
            "token": "t" * 43,
            "user": {"id": 1, "username": "admin", "role": "admin"},
            "grid_ids": None,
        },
    ],
    "op": [
        OP,
        dict(OP, kind="add", field="services", value="water"),
        dict(OP, field="_deleted", value=True, base=0),
        dict(OP, field="photo", value={"sha256": SHA, "size": 1024, "content_type": "image/jpeg"}),
        dict(OP, field="age", value=None),
        dict(OP, field="route", value=[{"latitude": 40.1, "longitude": 111.6, "accuracy": 5}] * 3),
        dict(OP, field="where", value={"latitude": 40.1, "longitude": 111.6}),
        dict(OP, field="户主", value=3.5),
        # A question whose name repeats in several groups (an XLSForm loop) is keyed by path.
        dict(OP, field="transport/loop/ambulance/frequency", value="daily"),
    ],
    "push_request": [{"ops": [OP, dict(OP, seq=18)]}],
    "push_response": [
        {
            "acked_seq": 17,
            "applied": 15,
            "duplicate": 1,
            "quarantined": [QUARANTINED],
            "conflicts": [CONFLICT],
            "server_hlc": HLC,
        },
        {
            "acked_seq": 0,
            "applied": 0,
            "duplicate": 0,
            "quarantined": [],
            "conflicts": [],
            "server_hlc": HLC,
        },
    ],
    "quarantined_op": [QUARANTINED],
    "conflict": [CONFLICT, dict(CONFLICT, status="resolved", resolved_at="2026-01-02T03:04:05Z")],
    "change": [CHANGE],
    "pull_request": [{"cursor": 0}, {"cursor": 1200, "limit": 500}],
    "pull_response": [PAGE, {"changes": [], "cursor": 0, "more": False, "server_hlc": HLC}],
    "snapshot_request": [{"cursor": 0, "limit": 100}],
    "snapshot_response": [dict(PAGE, more=True)],
    "forms_bundle": [
        {
            "forms": [
                {
                    "form_id": "household",
                    "version": 2,
                    "title": {"zh": "住户", "en": "Household"},
                    "published_at": "2026-01-02T03:04:05.123+08:00",
                    "digest": SHA,
                    "definition": {"fields": []},
                }
            ]
        },
        {"forms": []},
    ],
    "attachment_request": [{"sha256": SHA, "size": 2048, "content_type": "image/jpeg"}],
    "attachment_target": [
        {
            "sha256": SHA,
            "exists": False,
            "method": "PUT",
            "url": "/api/v1/attachments/" + SHA,
            "headers": {"Content-Type": "image/jpeg"},
            "expires_at": "2026-01-02T03:04:05Z",
        },
        {"sha256": SHA, "exists": True},
    ],
    "inbox_request": [{}, {"after": 12, "limit": 50}],
    "inbox_item": [
        {
            "id": 1,
            "kind": "conflict",
            "record_id": RECORD,
            "created_at": "2026-01-02T03:04:05Z",
            "payload": CONFLICT,
        },
        {
            "id": 2,
            "kind": "quarantine",
            "record_id": RECORD,
            "created_at": "2026-01-02T03:04:05Z",
            "payload": QUARANTINED,
        },
        {
            "id": 3,
            "kind": "review",
            "record_id": RECORD,
            "created_at": "2026-01-02T03:04:05Z",
            "payload": {"decision": "needs_revision", "comment": "门牌号缺失", "by": "supervisor"},
        },
        {
            "id": 5,
            "kind": "comment",
            "record_id": RECORD,
            "created_at": "2026-01-02T03:04:05Z",
            "payload": {"comment_id": 2, "field": "head_name", "body": "请核对", "by": "leader"},
        },
        {
            "id": 4,
            "kind": "reminder",
            "record_id": None,
            "created_at": "2026-01-02T03:04:05Z",
            "payload": {"text": "3 households not visited for 30 days"},
        },
    ],
    "inbox_response": [{"items": [], "more": False}],
    "problem": [
        {
            "type": "https://fieldsync.dev/problems/seq_gap",
            "title": "t",
            "status": 409,
            "detail": "send from 5",
            "code": "seq_gap",
            "errors": [],
            "expected_seq": 5,
        },
        {
            "type": "https://fieldsync.dev/problems/schema_violation",
            "title": "t",
            "status": 422,
            "detail": "d",
            "code": "schema_violation",
            "errors": [{"path": "/ops/3/hlc", "message": "must match ^[0-9a-f]{16}$"}],
        },
    ],
}


def changed(base: dict[str, Any], pointer: str, value: Any = ..., *, delete: bool = False) -> Any:
    """A deep copy of `base` with the item at JSON pointer `pointer` replaced or deleted."""
    result = copy.deepcopy(base)
    parts = [int(p) if p.isdigit() else p for p in pointer.strip("/").split("/")]
    target = result
    for part in parts[:-1]:
        target = target[part]
    if delete:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return result
