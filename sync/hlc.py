"""Hybrid logical clock: 48 bits of Unix milliseconds and 16 bits of counter in one int.

An HLC value orders like an integer, so `(hlc, device_id)` tuples compare directly.
On the wire it is exactly 16 lowercase hex digits, because JavaScript loses integers
above 2^53.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1
MAX_HLC = (1 << 64) - 1
WIRE_PATTERN = re.compile(r"[0-9a-f]{16}")


class InvalidHlc(ValueError):
    """A value that is not a 16-hex-digit HLC."""


def pack(millis: int, counter: int = 0) -> int:
    """The HLC for a wall-clock millisecond and a counter."""
    if not 0 <= millis < (1 << 48) or not 0 <= counter <= COUNTER_MASK:
        raise InvalidHlc(f"millis {millis} or counter {counter} out of range")
    return (millis << COUNTER_BITS) | counter


def millis_of(hlc: int) -> int:
    """The wall-clock milliseconds part of an HLC."""
    return hlc >> COUNTER_BITS


def counter_of(hlc: int) -> int:
    """The logical counter part of an HLC."""
    return hlc & COUNTER_MASK


def to_wire(hlc: int) -> str:
    """The 16-hex-digit wire form."""
    if not 0 <= hlc <= MAX_HLC:
        raise InvalidHlc(f"{hlc} does not fit in 64 bits")
    return f"{hlc:016x}"


def from_wire(text: str) -> int:
    """Parse the wire form; only 16 lowercase hex digits are accepted."""
    if not isinstance(text, str) or not WIRE_PATTERN.fullmatch(text):
        raise InvalidHlc(f"{text!r} is not 16 lowercase hex digits")
    return int(text, 16)


def wall_millis() -> int:
    """Milliseconds since the Unix epoch from the system clock."""
    return time.time_ns() // 1_000_000


def ahead_from(server_millis: int, max_skew_ms: int) -> int:
    """The lowest HLC whose milliseconds lie more than `max_skew_ms` past the server's:
    an op stamped at or above it is too far ahead of the server's clock."""
    return (server_millis + max_skew_ms + 1) << COUNTER_BITS


class Clock:
    """One node's HLC: only moves forward, and catches up with every HLC it observes.

    The wall clock is injected so that tests drive time. If the counter overflows,
    the value carries into the milliseconds: still strictly increasing, at the cost of
    running one millisecond ahead of the wall clock until the wall clock catches up.
    """

    def __init__(self, wall: Callable[[], int] = wall_millis, last: int = 0) -> None:
        self._wall = wall
        self.last = last

    def now(self) -> int:
        """A fresh HLC for a local event: greater than every value seen so far."""
        self.last = max(self.last + 1, pack(self._wall()))
        return self.last

    def observe(self, remote: int) -> int:
        """Catch up with a received HLC; later local events are greater than it."""
        self.last = max(self.last, remote)
        return self.last

    def peek(self) -> int:
        """The latest value handed out or observed, without ticking."""
        return self.last
