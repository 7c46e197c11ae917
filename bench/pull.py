"""Pull benchmark: a fresh device bootstraps a 500-household grid (about 20,000 field states).

The store is filled through the push handler (500 records of 40 fields); then a device
with cursor 0 pulls page after page until `more` is false. Server time is what the
pull view spends per page: the handler's query, the wire form, JSON encoding and
gzip, summed over the pages.

    python bench/pull.py [--backend sqlite|postgresql|both] [--households N] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import Device, push
from bench.sync_world import field_kinds, fresh_database, populate, value_for
from server import sync_service
from server.heap import settle
from server.settings import Settings
from sync import protocol

FIELDS = 40


def fill(database, world, households: int) -> int:
    """Push `households` records of FIELDS fields; how many ops."""
    device = Device(world.devices[0])
    kinds = field_kinds(FIELDS)
    wire = []
    for n in range(households):
        record_id = f"00000000-0000-4000-9000-{n:012x}"
        for name, kind in kinds:
            wire.append(device.op(record_id, name, kind, value_for(kind, n), world.grid_id))
    for start in range(0, len(wire), 5000):
        reply, _seconds = push(database, world, device, wire[start : start + 5000])
        assert not reply.result.quarantined, reply.result.quarantined[:3]
    return len(wire)


def bootstrap(database, world, page_size: int) -> tuple[int, int, float, int]:
    """(states, pages, server seconds, gzipped bytes) of a pull from cursor 0."""
    caller = protocol.Caller(world.devices[1], world.user_id, [world.grid_id])
    cursor, states, pages, seconds, sent = 0, 0, 0, 0.0, 0
    while True:
        started = time.perf_counter()
        with database.sessions() as session:
            rules = sync_service.rules_for(session, Settings())
            reply = protocol.pull(
                session.connection(), caller, protocol.PullRequest(cursor, page_size), rules
            )
            session.commit()
        body = gzip.compress(reply.encode(), 1)
        seconds += time.perf_counter() - started
        sent += len(body)
        states += len(reply.changes)
        pages += 1
        cursor = reply.cursor
        if not reply.more:
            return states, pages, seconds, sent


def run(backend: str, households: int, page_size: int) -> dict:
    with fresh_database(backend) as database:
        world = populate(database, fields=FIELDS)
        world.known = sync_service.warm(database, [("bench_visit", 1)])
        fill(database, world, households)
        # What a server worker does once started (server/heap.py), as bench/ingest.py.
        settle()
        states, pages, seconds, sent = bootstrap(database, world, page_size)
    return {
        "backend": backend,
        "households": households,
        "states": states,
        "pages": pages,
        "server_s": round(seconds, 3),
        "states_per_s": round(states / seconds),
        "gzip_bytes": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--households", type=int, default=500)
    parser.add_argument("--page-size", type=int, default=Settings().pull_page_size)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [run(backend, args.households, args.page_size) for backend in backends]
    header = ("backend", "households", "states", "pages", "server_s", "states_per_s", "gzip_bytes")
    print(" | ".join(f"{name:>12}" for name in header))
    for result in results:
        print(" | ".join(f"{result[name]!s:>12}" for name in header))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"results": results, **results[0]}))


if __name__ == "__main__":
    main()
