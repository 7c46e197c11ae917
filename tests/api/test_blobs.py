"""One contract for every blob backend: local files and S3 (a real moto_server)."""

from __future__ import annotations

import io

import pytest
import requests

from server.blobs import (
    BlobChanged,
    BlobNotFound,
    LocalBlobStore,
    S3BlobStore,
    check_key,
    make_blob_store,
)
from server.settings import Settings


def test_put_read_stat_delete(blobs):
    blobs.put("exports/2026/a.csv", b"id,name\n1,x\n", "text/csv")
    assert blobs.read("exports/2026/a.csv") == b"id,name\n1,x\n"
    info = blobs.stat("exports/2026/a.csv")
    assert info is not None
    assert info.size == 12
    assert info.content_type in {None, "text/csv"}
    blobs.delete("exports/2026/a.csv")
    assert blobs.stat("exports/2026/a.csv") is None
    with pytest.raises(BlobNotFound):
        blobs.read("exports/2026/a.csv")


def test_put_streams_and_replaces(blobs):
    payload = bytes(range(256)) * 9000  # over 2 MiB, several chunks
    blobs.put("attachments/big", io.BytesIO(payload))
    blobs.put("attachments/big", io.BytesIO(payload[::-1]))
    with blobs.open("attachments/big") as stream:
        assert stream.read() == payload[::-1]


def test_move(blobs):
    blobs.put("incoming/x", b"payload", "image/png")
    blobs.move("incoming/x", "final/x")
    assert blobs.read("final/x") == b"payload"
    assert blobs.stat("incoming/x") is None
    with pytest.raises(BlobNotFound):
        blobs.move("incoming/x", "final/y")


def test_s3_opens_and_moves_only_the_version_asked_for(moto_endpoint, s3_bucket):
    store = S3BlobStore(s3_bucket, "us-east-1", moto_endpoint)
    store.put("incoming/x", b"checked")
    checked = store.stat("incoming/x").etag
    store.put("incoming/x", b"written since")
    with pytest.raises(BlobChanged):
        store.open("incoming/x", if_match=checked)
    with pytest.raises(BlobChanged):
        store.move("incoming/x", "final/x", if_match=checked)
    assert store.stat("final/x") is None
    store.move("incoming/x", "final/x", if_match=store.stat("incoming/x").etag)
    assert store.read("final/x") == b"written since"
    store.close()


def test_keys_by_prefix(blobs):
    for key in ("anchors/1", "anchors/2", "exports/1"):
        blobs.put(key, key.encode())
    assert sorted(blobs.keys("anchors/")) == ["anchors/1", "anchors/2"]
    assert sorted(blobs.keys()) == ["anchors/1", "anchors/2", "exports/1"]


def test_a_missing_blob(blobs):
    assert blobs.stat("nothing/here") is None
    with pytest.raises(BlobNotFound):
        blobs.open("nothing/here")
    blobs.delete("nothing/here")  # deleting what is absent is not an error


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "a b", ""])
def test_unsafe_keys_are_refused(key):
    with pytest.raises(ValueError, match="not a valid blob key"):
        check_key(key)


def test_local_store_stays_inside_its_root(tmp_path):
    store = LocalBlobStore(tmp_path / "root")
    with pytest.raises(ValueError, match="not a valid blob key"):
        store.put("../outside", b"x")
    assert not (tmp_path / "outside").exists()


def test_presigned_urls_work_over_real_http(blobs, blob_backend):
    target = blobs.upload_target("attachments/photo", "image/jpeg")
    if blob_backend == "local":
        assert target is None
        assert blobs.download_url("attachments/photo") is None
        return
    assert target.method == "PUT"
    reply = requests.put(target.url, data=b"\xff\xd8\xffdata", headers=target.headers, timeout=10)
    assert reply.status_code == 200, reply.text
    assert blobs.read("attachments/photo") == b"\xff\xd8\xffdata"
    url = blobs.download_url("attachments/photo", filename="photo.jpg", content_type="image/png")
    fetched = requests.get(url, timeout=10)
    assert fetched.content == b"\xff\xd8\xffdata"
    assert "photo.jpg" in fetched.headers["Content-Disposition"]
    assert fetched.headers["Content-Type"] == "image/png"


def test_settings_choose_the_backend(tmp_path, moto_endpoint, s3_bucket):
    local = make_blob_store(Settings(var_dir=str(tmp_path)))
    assert isinstance(local, LocalBlobStore)
    assert local.root == (tmp_path / "blobs").resolve()
    s3 = make_blob_store(
        Settings(
            blob_backend="s3",
            s3_bucket=s3_bucket,
            s3_region="us-east-1",
            s3_endpoint_url=moto_endpoint,
        )
    )
    s3.put("k", b"v")
    assert s3.read("k") == b"v"
    s3.close()
