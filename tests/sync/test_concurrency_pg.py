"""Concurrent pushes on PostgreSQL: four processes edit the same records at once while a
fifth pulls throughout. The pulled state must equal the store's state, and replaying
the pushes into the reference replica must give the same positions, state and
conflicts: concurrency changes the order, never the rules.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from typing import Any

import pytest

from server.db import make_engine
from sync.device_replica import DeviceReplica
from sync.merge import fold
from sync.replica import ServerReplica
from sync.store.server import SqlServer
from tests.sync.backends import clear_store, stored_view
from tests.sync.world import RECORDS, VALID_EDITS, check_field, lookup_form

PUSHERS = 4
ROUNDS = 8
EDITS_PER_ROUND = 12
GRIDS = (1, 2)
TIMEOUT_S = 120

pytestmark = pytest.mark.postgres


def pusher(url: str, index: int, start: Any, results: Any) -> None:
    """One device: rounds of offline edits to the shared records, a push, a pull."""
    engine = make_engine(url)
    server = SqlServer(engine, lookup_form, check_field)
    rng = random.Random(index)
    device = DeviceReplica(f"00000000-0000-4000-c000-00000000000{index}")
    pushes: list[tuple[str, list[int]]] = []
    try:
        start.wait(TIMEOUT_S)
        for _ in range(ROUNDS):
            for _ in range(EDITS_PER_ROUND):
                record_id, form_id = rng.choice(RECORDS)
                field, kind, values = rng.choice(VALID_EDITS[form_id])
                device.edit(
                    record_id, form_id, 1, rng.choice(GRIDS), field, kind, rng.choice(values)
                )
            sent = device.outbox()
            result = server.push(device.device_id, sent, None)
            pushes.append((device.device_id, [s.position for s in result.stored]))
            if rng.random() < 0.3:  # the reply was lost: the device sends it all again
                again = server.push(device.device_id, sent, None)
                assert again.duplicate == len(sent)
            device.on_pushed(result)
            cursor = device.cursor
            while True:
                page = server.pull(None, cursor, rng.randint(5, 40))
                device.apply_page(page)
                cursor = page.cursor
                if not page.more:
                    break
        results.put(("pusher", index, pushes))
    finally:
        engine.dispose()


def puller(url: str, start: Any, stop: Any, results: Any) -> None:
    """A device that pulls pages all along; its cursor must only ever go forward."""
    engine = make_engine(url)
    server = SqlServer(engine, lookup_form, check_field)
    state: dict[tuple[str, str], Any] = {}
    cursor = 0
    pages = 0
    try:
        start.wait(TIMEOUT_S)
        while True:
            finishing = stop.is_set()
            page = server.pull(None, cursor, 25)
            positions = [change.position for change in page.changes]
            assert positions == sorted(set(positions))
            assert all(p > cursor for p in positions)
            assert page.cursor >= cursor
            for change in page.changes:
                state[(change.record_id, change.field)] = change.value
            cursor = page.cursor
            pages += 1
            if finishing and not page.more:
                break
            if not page.more:
                time.sleep(0.002)
        results.put(("puller", cursor, pages, sorted(state.items())))
    finally:
        engine.dispose()


def test_concurrent_pushes_converge_and_pulls_skip_nothing(postgres_database) -> None:
    engine = postgres_database.engine
    url = engine.url.render_as_string(hide_password=False)
    clear_store(engine)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PUSHERS + 1)
    stop = context.Event()
    results = context.Queue()
    pushers = [
        context.Process(target=pusher, args=(url, n, start, results)) for n in range(PUSHERS)
    ]
    reader = context.Process(target=puller, args=(url, start, stop, results))
    try:
        for process in [*pushers, reader]:
            process.start()
        outcomes = [results.get(timeout=TIMEOUT_S) for _ in range(PUSHERS)]
        stop.set()
        outcomes.append(results.get(timeout=TIMEOUT_S))
        for process in [*pushers, reader]:
            process.join(TIMEOUT_S)
            assert process.exitcode == 0
    finally:
        for process in [*pushers, reader]:
            if process.is_alive():
                process.kill()
                process.join()
        results.close()

    store = SqlServer(engine, lookup_form, check_field)
    store_state = store.state()
    (_, final_cursor, pages, pulled), *_ = [o for o in outcomes if o[0] == "puller"]
    assert final_cursor == store.newest()
    assert pages > 1
    assert dict(pulled) == {slot: value.value for slot, value in store_state.items()}

    log = store.log()
    assert len(log) == PUSHERS * ROUNDS * EDITS_PER_ROUND
    assert all(entry.applied for entry in log)
    expected = fold(log).fields()
    assert store_state == expected

    # Replaying the pushes in commit order into the reference replica gives the same
    # positions (restamps included), state, conflicts and pages.
    by_position = {entry.position: entry.op for entry in log}
    pushes = sorted(
        (positions for o in outcomes if o[0] == "pusher" for _, positions in o[2]),
        key=lambda positions: positions[0],
    )
    replica = ServerReplica(lookup_form, check_field)
    for positions in pushes:
        ops = [by_position[p] for p in positions]
        result = replica.push(ops[0].device_id, ops, None)
        assert [s.position for s in result.stored] == positions
    assert stored_view(replica.log()) == stored_view(log)
    assert replica.state() == store_state
    assert {row.conflict.ident: row.resolved for row in replica.conflicts.values()} == (
        store.conflicts()
    )
    assert replica.conflicts, "overlapping edits should have made some conflicts"
    assert replica.position == store.newest()
    clear_store(engine)
