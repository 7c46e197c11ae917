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


@pytest.fixture
def blob_settings(blob_backend, request, settings):
    """The test settings with blobs in local files or in a fresh moto_server bucket."""
    if blob_backend == "local":
        return settings
    return settings.replace(
        blob_backend="s3",
        s3_bucket=request.getfixturevalue("s3_bucket"),
        s3_region="us-east-1",
        s3_endpoint_url=request.getfixturevalue("moto_endpoint"),
    )


@pytest.fixture
def blob_client(blob_settings, database):
    """A client of an app whose blob store is local or S3; the store is closed afterwards."""
    from server import create_app
    from server.blobs import blob_store

    app = create_app(blob_settings, database)
    yield app.test_client()
    with app.app_context():
        blob_store().close()
