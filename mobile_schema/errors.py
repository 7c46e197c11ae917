"""What can go wrong on the device, as exceptions a UI (or the CLI) can act on."""

from __future__ import annotations

from typing import Any

from mobile_schema.transport import TransportError

__all__ = [
    "DeviceError",
    "EditRejected",
    "NeedsRegistration",
    "ProtocolError",
    "ServerBusy",
    "SyncFailed",
    "TransportError",
]


class DeviceError(Exception):
    """Base of the device client's own errors."""


class EditRejected(DeviceError, ValueError):
    """An edit refused on the device by the forms validator or the scope; nothing queued."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SyncFailed(DeviceError):
    """The server refused a sync step with a problem the client cannot fix by itself."""

    def __init__(self, message: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.problem = problem or {}

    @property
    def code(self) -> str:
        return str(self.problem.get("code", ""))


class NeedsRegistration(SyncFailed):
    """The token was refused (401) or the seqs cannot continue (seq_reuse): sign in again."""


class ServerBusy(SyncFailed):
    """429 or 5xx: nothing was decided; sync again later."""


class ProtocolError(SyncFailed):
    """A reply that does not match its schema or contradicts what was sent; nothing applied."""
