"""How the device client reaches the server: one small interface, and urllib behind it.

The client only ever calls `Transport.send(Request) -> Reply`. Tests put the Flask
app's test client behind it; `fieldsync device` uses `UrlTransport` against a real
URL. A transport raises `TransportError` when no reply came (network down, timeout):
the client treats that as "try again later", never as an answer.
"""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

GZIP_ABOVE_BYTES = 1024
USER_AGENT = "fieldsync-reference-device/1"


class TransportError(Exception):
    """No reply arrived; nothing can be concluded about what the server did."""


@dataclass(frozen=True)
class Request:
    """One HTTP call, before encoding."""

    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    token: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def url_path(self) -> str:
        """The path with its query string."""
        if not self.query:
            return self.path
        return f"{self.path}?{urllib.parse.urlencode(dict(self.query))}"

    def all_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
        headers.update(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


@dataclass(frozen=True)
class Reply:
    """A reply: status, decoded JSON body (None when empty or not JSON), headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


class Transport(Protocol):
    def send(self, request: Request) -> Reply: ...


def encode_body(body: Any) -> tuple[bytes, dict[str, str]]:
    """The JSON body, gzipped when large enough to be worth it, with its headers."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if len(data) > GZIP_ABOVE_BYTES:
        data = gzip.compress(data, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return data, headers


def decode_body(data: bytes, headers: Mapping[str, str]) -> Any:
    """The JSON of a reply body; None for an empty or non-JSON body."""
    encoding = next((v for k, v in headers.items() if k.lower() == "content-encoding"), "")
    if encoding.lower() == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return None
    if not data:
        return None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def checked_server_url(url: str) -> str:
    """`url` without a trailing slash, once it is an http(s) URL naming a host."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as error:
        raise ValueError(f"not a server URL: {url!r} ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"server URL must be http:// or https://, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"server URL {url!r} names no host")
    return url.rstrip("/")


class UrlTransport:
    """HTTP(S) through the standard library."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = checked_server_url(base_url)
        self.timeout = timeout

    def send(self, request: Request) -> Reply:
        headers = request.all_headers()
        headers["User-Agent"] = USER_AGENT
        data = None
        if request.body is not None:
            data, body_headers = encode_body(request.body)
            headers.update(body_headers)
        outgoing = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            self.base_url + request.url_path(), data=data, headers=headers, method=request.method
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=self.timeout) as response:  # noqa: S310
                raw, status, reply_headers = response.read(), response.status, response.headers
        except urllib.error.HTTPError as error:
            with error:
                raw, status, reply_headers = error.read(), error.code, error.headers
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise TransportError(f"no reply from {self.base_url}: {error}") from error
        plain = dict(reply_headers.items())
        return Reply(status, decode_body(raw, plain), plain)
