"""The moto_server fixtures of the API tests, for anchors in S3."""

from tests.api.conftest import moto_endpoint, s3_bucket

__all__ = ["moto_endpoint", "s3_bucket"]
