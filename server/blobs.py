"""Blob storage behind one small interface: local files under var/, or S3 through boto3.

Attachments, exports and audit anchors all go through `blob_store()`. Keys are
relative slash-separated names ("attachments/ab/abcd…"). S3 can hand out presigned
URLs so devices upload and download directly; the local store cannot, and callers
then route the bytes through the server.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import Flask, current_app

from server.settings import Settings

EXTENSION_KEY = "fieldsync.blobs"
_KEY = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")
_CHUNK = 1024 * 1024


class BlobNotFound(KeyError):
    """No blob is stored under this key."""


class BlobChanged(Exception):
    """The blob under this key is no longer the version asked for (`if_match`)."""


class BlobStoreUnavailable(Exception):
    """The store could not be reached, or refused the request (errors.py: 503)."""


@dataclass(frozen=True)
class BlobInfo:
    size: int
    content_type: str | None
    etag: str | None = None  # this version of the blob; None where the store keeps none


@dataclass(frozen=True)
class UploadTarget:
    """Where a client sends the bytes: an HTTP method, a URL and the headers to set."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def check_key(key: str) -> str:
    """The key itself when it is a safe relative name; ValueError otherwise."""
    if not _KEY.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValueError(f"not a valid blob key: {key!r}")
    return key


class BlobStore(Protocol):
    """What every backend offers."""

    def put(self, key: str, data: bytes | BinaryIO, content_type: str = ...) -> None: ...

    def open(self, key: str, if_match: str | None = None) -> BinaryIO: ...

    def read(self, key: str) -> bytes: ...

    def stat(self, key: str) -> BlobInfo | None: ...

    def delete(self, key: str) -> None: ...

    def move(self, source: str, target: str, if_match: str | None = None) -> None: ...

    def keys(self, prefix: str = "") -> Iterator[str]: ...

    def upload_target(
        self, key: str, content_type: str, expires: int = 900
    ) -> UploadTarget | None: ...

    def download_url(
        self,
        key: str,
        expires: int = 300,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str | None: ...

    def close(self) -> None: ...


class LocalBlobStore:
    """Files under one root folder; writes land atomically (temp file, then rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(
        self, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream"
    ) -> None:
        """Store `data` under `key`, replacing what was there."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                if isinstance(data, bytes | bytearray):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out, _CHUNK)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def open(self, key: str, if_match: str | None = None) -> BinaryIO:
        """The blob's bytes; local files keep no versions (no etag), so none is matched."""
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def read(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def stat(self, key: str) -> BlobInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        # Local files keep no content type; callers that need one record it themselves.
        return BlobInfo(size=path.stat().st_size, content_type=None)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def move(self, source: str, target: str, if_match: str | None = None) -> None:
        """Rename a blob; the target appears whole or not at all. No versions to match."""
        destination = self._path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self._path(source), destination)
        except FileNotFoundError:
            raise BlobNotFound(source) from None

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key starting with `prefix`, in sorted order."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(".upload-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def upload_target(self, key: str, content_type: str, expires: int = 900) -> None:
        """Local storage has no direct upload; the bytes go through the server."""
        return None

    def download_url(
        self,
        key: str,
        expires: int = 300,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> None:
        return None

    def close(self) -> None:
        """Nothing to release."""


class S3BlobStore:
    """Objects in one S3 bucket; credentials come from the standard AWS chain."""

    def __init__(self, bucket: str, region: str, endpoint_url: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        # Path-style addressing keeps presigned URLs valid on S3-compatible endpoints.
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self.bucket = bucket
        self.client = boto3.client(
            "s3", region_name=region, endpoint_url=endpoint_url or None, config=config
        )

    def put(
        self, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream"
    ) -> None:
        """Store `data` under `key` (multipart for large streams)."""
        import io

        stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        with _s3_errors(key):
            self.client.upload_fileobj(
                stream, self.bucket, check_key(key), ExtraArgs={"ContentType": content_type}
            )

    def open(self, key: str, if_match: str | None = None) -> BinaryIO:
        """The object's bytes; with `if_match`, only while its ETag is that one."""
        condition = {} if if_match is None else {"IfMatch": if_match}
        with _s3_errors(key):
            reply = self.client.get_object(Bucket=self.bucket, Key=check_key(key), **condition)
        return reply["Body"]

    def read(self, key: str) -> bytes:
        body = self.open(key)
        try:
            return body.read()
        finally:
            body.close()

    def stat(self, key: str) -> BlobInfo | None:
        try:
            with _s3_errors(key):
                reply = self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except BlobNotFound:
            return None
        return BlobInfo(
            size=reply["ContentLength"], content_type=reply.get("ContentType"), etag=reply["ETag"]
        )

    def delete(self, key: str) -> None:
        with _s3_errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def move(self, source: str, target: str, if_match: str | None = None) -> None:
        """Copy inside the bucket (no bytes through this server), then delete the source.

        With `if_match`, the copy happens only while the source's ETag is that one, so
        what is copied is exactly the version the caller read.
        """
        condition = {} if if_match is None else {"CopySourceIfMatch": if_match}
        with _s3_errors(source):
            self.client.copy(
                {"Bucket": self.bucket, "Key": check_key(source)},
                self.bucket,
                check_key(target),
                ExtraArgs=condition,
            )
        self.delete(source)

    def keys(self, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _s3_errors(prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def upload_target(self, key: str, content_type: str, expires: int = 900) -> UploadTarget:
        """A presigned PUT; the client must send the same Content-Type."""
        url = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": check_key(key), "ContentType": content_type},
            ExpiresIn=expires,
            HttpMethod="PUT",
        )
        return UploadTarget(method="PUT", url=url, headers={"Content-Type": content_type})

    def download_url(
        self,
        key: str,
        expires: int = 300,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """A presigned GET, optionally asking the browser to save under `filename`, and
        served as `content_type` (what the bytes are, whatever the uploader declared)."""
        params = {"Bucket": self.bucket, "Key": check_key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        if content_type:
            params["ResponseContentType"] = content_type
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)

    def close(self) -> None:
        """Release the client's pooled connections."""
        self.client.close()


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _is_missing(exc: Exception) -> bool:
    return _error_code(exc) in {"404", "NoSuchKey", "NotFound"}


@contextmanager
def _s3_errors(key: str) -> Iterator[None]:
    """S3's failures as this module's errors: a missing or changed object, or a store
    that cannot be reached or refuses (credentials, bucket), which callers cannot fix."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        if _is_missing(exc):
            raise BlobNotFound(key) from None
        # A HEAD answers a bare 412; GetObject and CopyObject name the failed precondition.
        if _error_code(exc) in {"412", "PreconditionFailed"}:
            raise BlobChanged(key) from None
        raise BlobStoreUnavailable(f"S3 refused a request for {key!r}") from exc
    except (BotoCoreError, Boto3Error) as exc:
        raise BlobStoreUnavailable(f"S3 failed a request for {key!r}") from exc


def make_blob_store(settings: Settings) -> LocalBlobStore | S3BlobStore:
    """The backend the settings choose."""
    if settings.blob_backend == "s3":
        return S3BlobStore(settings.s3_bucket, settings.s3_region, settings.s3_endpoint_url)
    return LocalBlobStore(Path(settings.var_dir) / "blobs")


def blob_store(app: Flask | None = None) -> LocalBlobStore | S3BlobStore:
    """The app's blob store, built on first use from its settings."""
    app = app or current_app
    store = app.extensions.get(EXTENSION_KEY)
    if store is None:
        store = make_blob_store(app.extensions["fieldsync.settings"])
        app.extensions[EXTENSION_KEY] = store
    return store
