"""Attachments end to end, one contract for local storage and S3 (a real moto_server)."""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import urlparse

import flask
import pytest
import requests

from tests.api.problems import assert_problem

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 500


def claim(data: bytes, content_type: str = "image/jpeg") -> dict:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content_type": content_type,
    }


def upload(client, world, who: str, target: dict, data: bytes):
    """Send the bytes where the target says; for S3 also ask the server to check them."""
    sha = target["sha256"]
    if target["url"].startswith("/"):
        return client.put(
            target["url"], data=data, headers={**target["headers"], **world.headers(who)}
        )
    reply = requests.put(target["url"], data=data, headers=target["headers"], timeout=10)
    assert reply.status_code == 200, reply.text
    return client.post(f"/api/v1/attachments/{sha}/complete", headers=world.headers(who))


def download(client, world, who: str, sha: str) -> bytes:
    reply = client.get(f"/api/v1/attachments/{sha}/content", headers=world.headers(who))
    if reply.status_code == 302:
        location = reply.headers["Location"]
        assert urlparse(location).scheme == "http"
        return requests.get(location, timeout=10).content
    assert reply.status_code == 200, reply.get_data(as_text=True)
    data = reply.get_data()
    reply.close()  # the server streams the file; closing the response closes it
    return data


def announce(client, world, who: str, body: dict):
    return client.post("/api/v1/attachments", json=body, headers=world.headers(who))


def test_upload_check_and_download(blob_client, world, blob_backend):
    body = claim(JPEG)
    reply = announce(blob_client, world, "worker", body)
    assert reply.status_code == 201, reply.get_json()
    target = reply.get_json()
    assert target["exists"] is False
    assert target["method"] == "PUT"
    assert target["headers"] == {"Content-Type": "image/jpeg"}
    assert target["url"].startswith("http" if blob_backend == "s3" else "/api/v1/attachments/")
    meta = blob_client.get(f"/api/v1/attachments/{body['sha256']}", headers=world.headers("worker"))
    assert meta.get_json()["stored"] is False
    early = blob_client.get(
        f"/api/v1/attachments/{body['sha256']}/content", headers=world.headers("worker")
    )
    assert_problem(early, 409, "upload_incomplete")
    stored = upload(blob_client, world, "worker", target, JPEG)
    assert stored.status_code == 200, stored.get_json()
    assert stored.get_json()["stored"] is True
    assert download(blob_client, world, "worker", body["sha256"]) == JPEG
    again = announce(blob_client, world, "worker", body).get_json()
    assert again == {"sha256": body["sha256"], "exists": True}


def test_bytes_that_do_not_match_the_hash_are_refused(blob_client, world):
    body = claim(JPEG)
    target = announce(blob_client, world, "worker", body).get_json()
    forged = JPEG[:-1] + b"\x00"
    assert_problem(upload(blob_client, world, "worker", target, forged), 422, "hash_mismatch")
    meta = blob_client.get(f"/api/v1/attachments/{body['sha256']}", headers=world.headers("worker"))
    assert meta.get_json()["stored"] is False
    # The right bytes afterwards still go through.
    target = announce(blob_client, world, "worker", body).get_json()
    assert upload(blob_client, world, "worker", target, JPEG).status_code == 200


def test_the_type_is_sniffed_from_the_bytes(blob_client, world):
    html = b"<html><script>alert(1)</script></html>"
    target = announce(blob_client, world, "worker", claim(html, "image/png")).get_json()
    assert_problem(
        upload(blob_client, world, "worker", target, html), 422, "content_type_not_allowed"
    )
    # Bytes with the announced hash are the attachment: their own type is kept.
    mislabelled = announce(blob_client, world, "worker", claim(PNG, "image/jpeg")).get_json()
    stored = upload(blob_client, world, "worker", mislabelled, PNG)
    assert stored.status_code == 200, stored.get_json()
    assert stored.get_json()["content_type"] == "image/png"


def test_a_later_claim_never_fails_an_earlier_uploaders_bytes(blob_client, world):
    body = claim(JPEG)
    target = announce(blob_client, world, "worker", body).get_json()
    wrong = {**body, "size": len(JPEG) + 1, "content_type": "image/png"}
    assert announce(blob_client, world, "worker2", wrong).status_code == 201
    stored = upload(blob_client, world, "worker", target, JPEG)
    assert stored.status_code == 200, stored.get_json()
    assert (stored.get_json()["size"], stored.get_json()["content_type"]) == (
        len(JPEG),
        "image/jpeg",
    )


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"size": 10**9}, 413, "attachment_too_large"),
        ({"content_type": "text/html"}, 422, "content_type_not_allowed"),
        ({"sha256": "ABC"}, 422, "schema_violation"),
        ({"size": 0}, 422, "schema_violation"),
        ({"content_type": "jpeg"}, 422, "schema_violation"),
        ({"content_type": "image/jpeg; q=1"}, 422, "schema_violation"),
        ({"thumbnail": True}, 422, "schema_violation"),
    ],
)
def test_claims_that_cannot_pass_are_refused_up_front(blob_client, world, change, status, code):
    assert_problem(announce(blob_client, world, "worker", {**claim(JPEG), **change}), status, code)


def test_a_claim_is_checked_against_attachment_request_json(blob_client, world):
    claimed = {**claim(JPEG), "size": "12"}
    body = assert_problem(announce(blob_client, world, "worker", claimed), 422, "schema_violation")
    assert [error["path"] for error in body["errors"]] == ["/size"]


def test_an_upload_larger_than_the_limit_stops(blob_client, world, blob_settings, database):
    from server import create_app

    small = create_app(blob_settings.replace(max_attachment_bytes=1000), database).test_client()
    data = JPEG[:900]
    target = announce(small, world, "worker", claim(data)).get_json()
    assert_problem(upload(small, world, "worker", target, JPEG), 413, "attachment_too_large")
    too_big = announce(small, world, "worker", claim(JPEG))
    assert_problem(too_big, 413, "attachment_too_large")


def test_attachments_are_reachable_only_in_scope(blob_client, world):
    body = claim(JPEG)
    target = announce(blob_client, world, "worker", body).get_json()
    upload(blob_client, world, "worker", target, JPEG)
    for who in ("worker2", "supervisor"):
        meta = blob_client.get(f"/api/v1/attachments/{body['sha256']}", headers=world.headers(who))
        assert_problem(meta, 404, "not_found")
        content = blob_client.get(
            f"/api/v1/attachments/{body['sha256']}/content", headers=world.headers(who)
        )
        assert_problem(content, 404, "not_found")
    assert download(blob_client, world, "admin", body["sha256"]) == JPEG
    # Announcing the same bytes makes them reachable for that uploader, without a new upload.
    assert announce(blob_client, world, "worker2", body).get_json()["exists"] is True
    assert download(blob_client, world, "worker2", body["sha256"]) == JPEG


def test_a_record_holding_an_attachment_opens_it_to_that_records_scope(
    blob_client, world, settings
):
    from tests.api.records_world import add_record, install_forms, push

    install_forms(world)
    body = claim(JPEG)
    target = announce(blob_client, world, "worker", body).get_json()
    upload(blob_client, world, "worker", target, JPEG)
    sha = body["sha256"]
    url = f"/api/v1/attachments/{sha}"
    assert_problem(blob_client.get(url, headers=world.headers("supervisor")), 404, "not_found")
    record_id = add_record(world, settings, "worker", "S-C1-R1-G1")
    grid_id, row = world.grids["S-C1-R1-G1"], str(uuid.uuid4())
    photo_row = {"_parent": record_id, "_group": "photos", "_order": 1, "photo": body}
    reply = push(
        world,
        settings,
        world.devices["worker"],
        [(row, field, grid_id, value) for field, value in photo_row.items()],
    )
    assert reply["applied"] == 4, reply
    assert blob_client.get(url, headers=world.headers("supervisor")).status_code == 200
    assert download(blob_client, world, "leader", sha) == JPEG
    assert_problem(blob_client.get(url, headers=world.headers("worker2")), 404, "not_found")


class WatchedStore:
    """A blob store that notes, whenever uploaded bytes are read, whether the request's
    session is inside a transaction (on SQLite, one holds the database's write lock)."""

    def __init__(self, store) -> None:
        self.store, self.in_transaction = store, []

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def put(self, key: str, data, content_type: str = "application/octet-stream") -> None:
        self.in_transaction.append(flask.g.db_session.in_transaction())
        self.store.put(key, data, content_type)

    def open(self, key: str, **conditions):
        self.in_transaction.append(flask.g.db_session.in_transaction())
        return self.store.open(key, **conditions)


def test_no_transaction_is_open_while_the_bytes_are_read(blob_client, world):
    from server.attachments import incoming_key
    from server.blobs import EXTENSION_KEY, blob_store

    app = blob_client.application
    with app.app_context():
        watched = WatchedStore(blob_store())
    app.extensions[EXTENSION_KEY] = watched
    body = claim(JPEG)
    announce(blob_client, world, "worker", body)
    url = f"/api/v1/attachments/{body['sha256']}/content"
    reply = blob_client.put(url, data=JPEG, headers=world.headers("worker"))
    assert reply.status_code == 200, reply.get_json()
    body = claim(PNG, "image/png")
    announce(blob_client, world, "worker", body)
    watched.store.put(incoming_key(body["sha256"], world.users["worker"]), PNG)
    complete = f"/api/v1/attachments/{body['sha256']}/complete"
    reply = blob_client.post(complete, headers=world.headers("worker"))
    assert reply.status_code == 200, reply.get_json()
    assert watched.in_transaction == [False, False]


class ResentWhileChecked(WatchedStore):
    """A store on which, as the server finishes reading an upload to check it, the
    device sends other bytes to its still valid presigned URL."""

    def __init__(self, store, target: dict, data: bytes) -> None:
        super().__init__(store)
        self.target, self.data = target, data

    def open(self, key: str, **conditions):
        stream = self.store.open(key, **conditions)
        close = stream.close

        def close_and_resend() -> None:
            close()
            target = self.target
            requests.put(target["url"], data=self.data, headers=target["headers"], timeout=10)

        stream.close = close_and_resend
        return stream


@pytest.mark.parametrize("blob_backend", ["s3"])
def test_only_the_checked_version_of_a_direct_upload_is_stored(blob_client, world):
    from server.blobs import EXTENSION_KEY, blob_store

    body = claim(JPEG)
    target = announce(blob_client, world, "worker", body).get_json()
    assert requests.put(target["url"], data=JPEG, headers=target["headers"], timeout=10).ok
    app = blob_client.application
    with app.app_context():
        store = blob_store()
    forged = JPEG[:-1] + b"\x00"
    app.extensions[EXTENSION_KEY] = ResentWhileChecked(store, target, forged)
    complete = f"/api/v1/attachments/{body['sha256']}/complete"
    assert_problem(
        blob_client.post(complete, headers=world.headers("worker")), 409, "upload_incomplete"
    )
    app.extensions[EXTENSION_KEY] = store
    meta = blob_client.get(f"/api/v1/attachments/{body['sha256']}", headers=world.headers("worker"))
    assert meta.get_json()["stored"] is False
    # Asked again, the server checks what the key holds now.
    assert_problem(
        blob_client.post(complete, headers=world.headers("worker")), 422, "hash_mismatch"
    )
    assert upload(blob_client, world, "worker", target, JPEG).status_code == 200
    assert download(blob_client, world, "worker", body["sha256"]) == JPEG


class SentTwice(WatchedStore):
    """A store on which, as one upload through the server is written, the same user
    sends the same hash again (a device's retry), here with other bytes."""

    def __init__(self, store, send_again) -> None:
        super().__init__(store)
        self.send_again, self.replies = send_again, []

    def put(self, key: str, data, content_type: str = "application/octet-stream") -> None:
        self.store.put(key, data, content_type)
        send_again, self.send_again = self.send_again, None
        if send_again is not None:
            self.replies.append(send_again())


def test_two_uploads_of_one_hash_by_one_user_keep_apart(blob_client, world):
    from server.blobs import EXTENSION_KEY, blob_store

    body = claim(JPEG)
    announce(blob_client, world, "worker", body)
    url = f"/api/v1/attachments/{body['sha256']}/content"
    forged = JPEG[:-1] + b"\x00"
    app = blob_client.application
    with app.app_context():
        store = blob_store()
    retry = SentTwice(
        store, lambda: app.test_client().put(url, data=forged, headers=world.headers("worker"))
    )
    app.extensions[EXTENSION_KEY] = retry
    first = blob_client.put(url, data=JPEG, headers=world.headers("worker"))
    app.extensions[EXTENSION_KEY] = store
    assert_problem(retry.replies[0], 422, "hash_mismatch")
    assert first.status_code == 200, first.get_json()
    assert download(blob_client, world, "worker", body["sha256"]) == JPEG
    assert [key for key in store.keys("incoming/")] == []


def test_an_unreachable_s3_answers_503_with_retry_after(settings, database, world, monkeypatch):
    from server import create_app
    from tests.api.s3 import CREDENTIALS, free_port

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    down = settings.replace(
        blob_backend="s3",
        s3_bucket="fieldsync-down",
        s3_region="us-east-1",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
    )
    client = create_app(down, database).test_client()
    body = claim(JPEG)
    assert announce(client, world, "worker", body).status_code == 201  # presigning is offline
    reply = client.post(
        f"/api/v1/attachments/{body['sha256']}/complete", headers=world.headers("worker")
    )
    assert_problem(reply, 503, "service_unavailable")
    assert reply.headers["Retry-After"] == "30"
