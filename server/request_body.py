"""A request's body as bytes, decoded from `Content-Encoding: gzip` when sent so.

Devices gzip every body over 1 KiB (push, registration alike). Decompression stops
one byte past the limit, so a small body that inflates to gigabytes costs nothing.
A gzip stream may hold several members one after another (RFC 1952, as `gzip -c a b`
writes them); every member is read, and bytes after the last one that are no gzip
member are refused rather than dropped.
"""

from __future__ import annotations

import zlib

from flask import request

from server.errors import ApiError, ErrorCode

_GZIP_MAGIC = b"\x1f\x8b"


def body_bytes(limit: int) -> bytes:
    """The body, gunzipped when its Content-Encoding says gzip; 413 past `limit` bytes
    (decompressed), 400 for gzip that does not decode, 415 for another encoding."""
    raw = request.get_data(cache=False)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "gzip":
        raw = _gunzip(raw, limit)
    elif encoding not in ("identity", ""):
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"Content-Encoding {encoding} is not accepted"
        )
    if len(raw) > limit:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"more than {limit} bytes")
    return raw


def _gunzip(compressed: bytes, limit: int) -> bytes:
    """Every gzip member of `compressed`, joined; at most `limit` bytes of them."""
    parts: list[bytes] = []
    size = 0
    rest = compressed
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, limit - size + 1)
        except zlib.error:
            raise ApiError(ErrorCode.BAD_REQUEST, "the body is not valid gzip") from None
        size += len(part)
        if size > limit or inflater.unconsumed_tail:
            raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"more than {limit} bytes decompressed")
        if not inflater.eof:
            raise ApiError(ErrorCode.BAD_REQUEST, "the gzip body is truncated")
        parts.append(part)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)
        if not rest.startswith(_GZIP_MAGIC):
            raise ApiError(ErrorCode.BAD_REQUEST, "the body holds bytes after its gzip data")
