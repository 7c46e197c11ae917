"""The hybrid logical clock: packing, wire form, monotonicity, catching up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import hlc

millis = st.integers(0, (1 << 48) - 1)
counters = st.integers(0, hlc.COUNTER_MASK)


@given(millis, counters)
def test_pack_round_trips_through_the_wire(ms: int, counter: int) -> None:
    value = hlc.pack(ms, counter)
    wire = hlc.to_wire(value)
    assert len(wire) == 16
    assert wire == wire.lower()
    assert hlc.from_wire(wire) == value
    assert (hlc.millis_of(value), hlc.counter_of(value)) == (ms, counter)


@given(millis, counters, millis, counters)
def test_order_is_time_then_counter(ms1: int, c1: int, ms2: int, c2: int) -> None:
    assert (hlc.pack(ms1, c1) < hlc.pack(ms2, c2)) == ((ms1, c1) < (ms2, c2))
    # the wire form sorts the same way, so stores can compare either
    assert (hlc.to_wire(hlc.pack(ms1, c1)) < hlc.to_wire(hlc.pack(ms2, c2))) == (
        (ms1, c1) < (ms2, c2)
    )


@pytest.mark.parametrize(
    "text", ["", "0", "0000018C2F3A4B5C", "0000018c2f3a4b5", "0000018c2f3a4b5cd", "zz", 12, None]
)
def test_from_wire_refuses_anything_but_16_lowercase_hex_digits(text) -> None:
    with pytest.raises(hlc.InvalidHlc):
        hlc.from_wire(text)


@pytest.mark.parametrize(("ms", "counter"), [(-1, 0), (1 << 48, 0), (0, -1), (0, 1 << 16)])
def test_pack_refuses_out_of_range_parts(ms: int, counter: int) -> None:
    with pytest.raises(hlc.InvalidHlc):
        hlc.pack(ms, counter)


def test_to_wire_refuses_more_than_64_bits() -> None:
    with pytest.raises(hlc.InvalidHlc):
        hlc.to_wire(1 << 64)


clock_steps = st.one_of(
    st.tuples(st.just("tick"), millis),
    st.tuples(st.just("see"), st.integers(0, hlc.MAX_HLC >> 1)),
)


@given(st.lists(clock_steps, max_size=40))
def test_clock_only_moves_forward_and_passes_what_it_saw(steps) -> None:
    wall = [0]
    clock = hlc.Clock(lambda: wall[0])
    last = 0
    seen = 0
    for action, number in steps:
        if action == "tick":
            wall[0] = number  # the wall clock may jump backwards
            stamp = clock.now()
            assert stamp > last
            assert stamp > seen
            assert stamp >= hlc.pack(number)
            last = stamp
        else:
            clock.observe(number)
            seen = max(seen, number)
            assert clock.peek() >= number


def test_clock_follows_the_wall_clock_and_counts_within_a_millisecond() -> None:
    wall = [1000]
    clock = hlc.Clock(lambda: wall[0])
    assert clock.now() == hlc.pack(1000, 0)
    assert clock.now() == hlc.pack(1000, 1)
    wall[0] = 1001
    assert clock.now() == hlc.pack(1001, 0)
    wall[0] = 900  # behind: keep counting from the last value
    assert clock.now() == hlc.pack(1001, 1)


def test_counter_overflow_carries_into_the_milliseconds() -> None:
    clock = hlc.Clock(lambda: 5, last=hlc.pack(5, hlc.COUNTER_MASK))
    assert clock.now() == hlc.pack(6, 0)


def test_observing_a_remote_clock_puts_the_next_event_after_it() -> None:
    clock = hlc.Clock(lambda: 10)
    remote = hlc.pack(500, 7)
    clock.observe(remote)
    assert clock.now() == remote + 1
    clock.observe(hlc.pack(1))  # an older value changes nothing
    assert clock.now() == remote + 2


def test_ahead_allows_exactly_the_skew() -> None:
    server = 1_000_000
    limit = hlc.ahead_from(server, 600_000)
    assert hlc.pack(server + 600_000, hlc.COUNTER_MASK) < limit
    assert hlc.pack(server + 600_001) >= limit
    assert hlc.pack(0) < hlc.ahead_from(server, 0)
