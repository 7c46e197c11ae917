"""Fixtures for the API tests: a moto_server, blob stores of both kinds, users and logins."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from server.blobs import LocalBlobStore, S3BlobStore
from tests.api.s3 import CREDENTIALS, running_moto_server


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto_server that lives for the whole run, with test credentials set."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        with running_moto_server() as endpoint:
            yield endpoint


@pytest.fixture
def s3_bucket(moto_endpoint) -> str:
    """A fresh, empty bucket on the moto_server."""
    name = f"fieldsync-{secrets.token_hex(6)}"
    store = S3BlobStore(name, "us-east-1", moto_endpoint)
    store.client.create_bucket(Bucket=name)
    store.close()
    return name


@pytest.fixture(params=["local", "s3"])
def blob_backend(request) -> str:
    return request.param


@pytest.fixture
def blobs(blob_backend, request, tmp_path) -> Iterator[LocalBlobStore | S3BlobStore]:
    """One store of each kind, for the contract suite."""
    if blob_backend == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    store = S3BlobStore(request.getfixturevalue("s3_bucket"), "us-east-1", endpoint)
    yield store
    store.close()


@pytest.fixture
def world(database):
    """A grid tree with one user of each role (see tests/api/factories.py)."""
    from tests.api.factories import build_world

    return build_world(database)
