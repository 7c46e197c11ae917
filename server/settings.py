"""Typed settings read from FIELDSYNC_* environment variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DATABASE_BACKENDS = ("sqlite", "postgresql")
# The push schema (mobile_schema/schemas/push_request.json) lets a push carry at most
# this many ops; a larger FIELDSYNC_MAX_PUSH_OPS could never take effect.
PUSH_SCHEMA_MAX_OPS = 5000


class SettingsError(ValueError):
    """A setting has a value that cannot be used; raised at start-up."""


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of true/false, yes/no, on/off, 1/0")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def convert(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value

    return convert


def _choice(*allowed: str) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return convert


def _text(raw: str) -> str:
    return raw.strip()


def _database_url(raw: str) -> str:
    text = raw.strip()
    if not text:
        return text
    try:
        backend = make_url(text).get_backend_name()
    except ArgumentError:
        raise ValueError("not a SQLAlchemy URL (dialect://user@host/database)") from None
    if backend not in DATABASE_BACKENDS:
        raise ValueError(f"the database must be one of {', '.join(DATABASE_BACKENDS)}")
    return text


def _folder(raw: str) -> str:
    text = raw.strip()
    if Path(text).exists() and not Path(text).is_dir():
        raise ValueError("exists and is not a folder")
    return text


def setting(
    env: str, convert: Callable[[str], Any], default: Any, help: str, secret: bool = False
) -> Any:
    """Declare one setting: its variable, converter, default and help text; a secret
    one (it may hold a password) is never repeated in an error message."""
    metadata = {"env": env, "convert": convert, "help": help, "secret": secret}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything fieldsync can be configured with; built by `from_env`."""

    var_dir: str = setting(
        "FIELDSYNC_VAR_DIR", _folder, "var", "Folder for the SQLite database, local blobs and keys."
    )
    database_url: str = setting(
        "FIELDSYNC_DATABASE_URL",
        _database_url,
        "",
        "SQLAlchemy URL of the store (sqlite or postgresql); "
        "empty means SQLite at VAR_DIR/fieldsync.db. "
        "Production: postgresql+psycopg://user@host/db.",
        secret=True,
    )
    secret_key: str = setting(
        "FIELDSYNC_SECRET_KEY",
        _text,
        "",
        "Key that signs session cookies; empty means one generated once into VAR_DIR/secret_key.",
        secret=True,
    )
    log_level: str = setting(
        "FIELDSYNC_LOG_LEVEL",
        _choice("debug", "info", "warning", "error"),
        "info",
        "Lowest level of the JSON log lines written to stderr.",
    )
    broker_url: str = setting(
        "FIELDSYNC_BROKER_URL",
        _text,
        "",
        "Celery broker (redis://127.0.0.1:6379/0); empty runs background tasks in-process.",
        secret=True,
    )
    blob_backend: str = setting(
        "FIELDSYNC_BLOB_BACKEND",
        _choice("local", "s3"),
        "local",
        "Where attachments, exports and audit anchors are kept: local files or S3.",
    )
    s3_bucket: str = setting("FIELDSYNC_S3_BUCKET", _text, "", "S3 bucket for blobs.")
    s3_region: str = setting("FIELDSYNC_S3_REGION", _text, "us-east-1", "S3 region.")
    s3_endpoint_url: str = setting(
        "FIELDSYNC_S3_ENDPOINT_URL",
        _text,
        "",
        "S3 endpoint for S3-compatible stores; empty uses AWS. "
        "Credentials come from the standard AWS chain.",
    )
    max_push_ops: int = setting(
        "FIELDSYNC_MAX_PUSH_OPS",
        _int_between(1, PUSH_SCHEMA_MAX_OPS),
        PUSH_SCHEMA_MAX_OPS,
        f"Most ops one push may carry: 1 to {PUSH_SCHEMA_MAX_OPS}.",
    )
    max_request_bytes: int = setting(
        "FIELDSYNC_MAX_REQUEST_BYTES",
        _positive_int,
        4 * 1024 * 1024,
        "Largest request body accepted, after gzip decompression.",
    )
    max_clock_skew_ms: int = setting(
        "FIELDSYNC_MAX_CLOCK_SKEW_MS",
        _positive_int,
        10 * 60 * 1000,
        "How far ahead of the server's clock an op's HLC may be before it is quarantined.",
    )
    pull_page_size: int = setting(
        "FIELDSYNC_PULL_PAGE_SIZE", _positive_int, 5000, "Field states per pull page."
    )
    max_attachment_bytes: int = setting(
        "FIELDSYNC_MAX_ATTACHMENT_BYTES",
        _positive_int,
        20 * 1024 * 1024,
        "Largest attachment accepted for upload.",
    )
    session_cookie_secure: bool = setting(
        "FIELDSYNC_SESSION_COOKIE_SECURE",
        _boolean,
        False,
        "Send the session cookie over HTTPS only (turn on behind TLS).",
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the SQLite file under var_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.var_dir).resolve() / 'fieldsync.db'}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (used by tests and the CLI)."""
        return dataclasses.replace(self, **changes)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting, in declaration order."""
    return [
        (field.metadata["env"], str(field.default), field.metadata["help"])
        for field in dataclasses.fields(Settings)
    ]


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from an environment mapping; bad values raise SettingsError."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(Settings):
        env = field.metadata["env"]
        if env not in environ:
            continue
        try:
            values[field.name] = field.metadata["convert"](environ[env])
        except ValueError as exc:
            shown = env if field.metadata["secret"] else f"{env}={environ[env]!r}"
            problems.append(f"{shown}: {exc}")
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems))
    settings = Settings(**values)
    if settings.blob_backend == "s3" and not settings.s3_bucket:
        raise SettingsError("invalid settings: FIELDSYNC_BLOB_BACKEND=s3 needs FIELDSYNC_S3_BUCKET")
    return settings
