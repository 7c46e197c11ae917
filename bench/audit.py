"""Audit benchmark: verify rate, and ingest with the audit trail against ingest without it.

Ingest: pushes of 5,000 ops through the server's real push path (`sync_service.push`,
committed), alternating one push with the audit trail and one with `record_push`
switched off, so both see the same database at the same size; the ratio of the two
rates is what the audit trail costs. Verify: a fresh store filled through the same
path (pushes and ordinary events), then `verify_chain` over all of it, three times
(the rate is that of the best run; the first run's time is printed too), with the
process's peak memory before and after.

    python bench/audit.py [--backend sqlite|postgresql|both] [--pushes N] [--events N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import PUSH_SIZE, Device, slots
from bench.sync_world import fresh_database, populate, value_for
from server import sync_service
from server.audit import record_event
from server.audit.verify import verify_chain
from server.heap import settle
from server.models import Device as DeviceRow
from server.settings import Settings

EVENT_BATCH = 1000
VERIFY_RUNS = 3  # the best of three: the first also pays for a cold cache


def push(database, world, device: Device, source, audit: bool) -> float:
    """One 5,000-op push of new values through the real path, committed; its seconds."""
    wire = []
    for n in range(PUSH_SIZE):
        record_id, name, kind = next(source)
        wire.append(device.op(record_id, name, kind, value_for(kind, n), world.grid_id))
    switch = (
        contextlib.nullcontext()
        if audit
        else mock.patch.object(sync_service, "record_push", return_value=None)
    )
    started = time.perf_counter()
    with switch, database.sessions() as session:
        row = session.get(DeviceRow, device.id)
        rules = sync_service.rules_for(session, Settings(), world.known)
        reply = sync_service.push(session, row, {"ops": wire}, rules)
        session.commit()
    seconds = time.perf_counter() - started
    assert reply.result.applied == len(wire), reply.result.quarantined[:3]
    return seconds


def ingest(backend: str, pushes: int) -> dict:
    with fresh_database(backend) as database:
        world = populate(database)
        world.known = sync_service.warm(database, [(world_form(), 1)])
        audited, bare = Device(world.devices[0]), Device(world.devices[1])
        source = slots()
        # As a server worker does once started (server/heap.py): the start-up heap leaves
        # the garbage collector's scans, which would otherwise land on whichever side
        # happens to cross the allocation threshold.
        settle()
        timings = {True: 0.0, False: 0.0}
        push(database, world, audited, source, True)  # warm caches and plans
        push(database, world, bare, source, False)
        for round_no in range(pushes):
            # Alternate which goes first so neither always meets the fuller table.
            order = (True, False) if round_no % 2 == 0 else (False, True)
            for audit in order:
                timings[audit] += push(database, world, audited if audit else bare, source, audit)
    with_audit = pushes * PUSH_SIZE / timings[True]
    without = pushes * PUSH_SIZE / timings[False]
    return {
        "ingest_with_audit_ops_per_s": round(with_audit),
        "ingest_without_audit_ops_per_s": round(without),
        "ingest_ratio": round(with_audit / without, 3),
    }


def world_form() -> str:
    from bench.sync_world import FORM_ID

    return FORM_ID


def fill_and_verify(backend: str, pushes: int, events: int) -> dict:
    with fresh_database(backend) as database:
        world = populate(database)
        world.known = sync_service.warm(database, [(world_form(), 1)])
        device = Device(world.devices[0])
        source = slots()
        for _ in range(pushes):
            push(database, world, device, source, True)
        for start in range(0, events, EVENT_BATCH):
            with database.session() as session:
                for number in range(start, min(start + EVENT_BATCH, events)):
                    details = {"field": "display_name", "old": f"n{number}", "new": f"名{number}"}
                    record_event(
                        session, "user.changed", "user", number, details, user_id=1, grid_ids=[1]
                    )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        runs = []
        for _ in range(VERIFY_RUNS):
            started = time.perf_counter()
            with database.engine.connect() as connection:
                report = verify_chain(connection)
            runs.append(time.perf_counter() - started)
        seconds = min(runs)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert report.ok, report.broken
    items = report.events + report.ops
    return {
        "verify_events": report.events,
        "verify_ops": report.ops,
        "verify_seconds": round(seconds, 3),
        "verify_first_run_s": round(runs[0], 3),
        "verify_items_per_s": round(items / seconds),
        "verify_peak_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pushes", type=int, default=20, help="5,000-op pushes per side")
    parser.add_argument("--events", type=int, default=50_000, help="ordinary events to verify")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        result = {"backend": backend}
        result.update(ingest(backend, args.pushes))
        result.update(fill_and_verify(backend, args.pushes * 2, args.events))
        results.append(result)
    header = list(results[0])
    print(" | ".join(f"{name:>12}" for name in header))
    for result in results:
        print(" | ".join(f"{result[name]!s:>12}" for name in header))
    for result in results:
        print(
            f"{result['backend']}: verify {result['verify_items_per_s']:,} events+ops/s "
            f"(target 200,000); ingest with audit {result['ingest_ratio']:.2f}x without "
            "(target 0.8x)"
        )
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"results": results}))


if __name__ == "__main__":
    main()
