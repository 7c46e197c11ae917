"""Ingest benchmark: 5,000-op pushes, validated against their form and committed.

Device A fills household-visit-like records of 30 fields; device B edits 10% of the
same fields without having seen A's ops, so every one of B's sets is a conflict.
After each push, the same op rows go into a bare table by COPY (PostgreSQL) or
executemany (SQLite), as the ceiling to compare with under the same machine load.
Then the first push is sent again (a retry after a lost reply) to time a duplicate
push; push times are medians.

    python bench/ingest.py [--backend sqlite|postgresql|both] [--pushes N] [--ops N] [--json]

`--ops 1000000` ingests a million ops and reports the process's peak memory.
`round_ms` is the wall time of one round (A's push and B's), `client_cpu_ms` the CPU
this process spent on it and `server_cpu_ms` that of the PostgreSQL server process
serving it (SQLite runs inside this process): where their sum passes the wall time,
the two overlapped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import MetaData, Table, text

from bench.sync_world import FORM_ID, field_kinds, fresh_database, populate, value_for
from server import sync_service
from server.heap import settle
from server.record_flags import check_all, mark_after_push
from server.settings import Settings
from sync import hlc, protocol
from sync.store.ingest import OP_COLUMNS
from sync.store.sql import bulk_insert, encode_json, now, stored_time
from sync.store.tables import ops as ops_table

PUSH_SIZE = 5000
DUPLICATE_TRIES = 5  # the duplicate push's time is the median of this many re-sends
CONCURRENT_SHARE = 10  # one field in ten is also edited by device B


class Device:
    """A bench phone: seqs, clock, cursor."""

    def __init__(self, device_id: str) -> None:
        self.id = device_id
        self.seq = 0
        self.clock = hlc.Clock()
        self.cursor = 0

    def op(self, record_id: str, name: str, kind: str, value, grid_id: int) -> dict:
        self.seq += 1
        return {
            "seq": self.seq,
            "record_id": record_id,
            "form_id": FORM_ID,
            "form_version": 1,
            "grid_id": grid_id,
            "field": name,
            "kind": "add" if kind == "select_multiple" else "set",
            "value": value,
            "hlc": hlc.to_wire(self.clock.now()),
            "base": self.cursor,
        }


def slots():
    """(record_id, field, type) of record after record, field after field."""
    kinds = field_kinds()
    for n in itertools.count():
        record_id = f"00000000-0000-4000-8000-{n:012x}"
        for name, kind in kinds:
            yield record_id, name, kind


class CpuMeter:
    """CPU seconds the pushes took: this process's, and on PostgreSQL the server
    process's serving each push (read from /proc: the server runs on this machine).
    Their sum against the wall time tells how much of the work overlapped."""

    def __init__(self) -> None:
        self.client = 0.0
        self.server: float | None = 0.0
        self._started: tuple[float, float | None] = (0.0, None)
        self._pid: int | None = None

    def start(self, connection) -> None:
        raw = connection.connection.driver_connection
        self._pid = raw.info.backend_pid if connection.dialect.name == "postgresql" else None
        self._started = (time.process_time(), self._server_seconds())

    def stop(self) -> None:
        client, server = self._started
        self.client += time.process_time() - client
        now = self._server_seconds()
        if server is None or now is None or self.server is None:
            self.server = None
        else:
            self.server += now - server

    def _server_seconds(self) -> float | None:
        if self._pid is None:
            return None
        try:
            with open(f"/proc/{self._pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the server runs elsewhere
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def push(database, world, device: Device, wire_ops: list[dict], meter: CpuMeter | None = None):
    """One push through the protocol handler, committed; (reply, seconds)."""
    settings = Settings()
    started = time.perf_counter()
    with database.sessions() as session:
        if meter is not None:
            meter.start(session.connection())
        rules = sync_service.rules_for(session, settings, world.known)
        caller = protocol.Caller(device.id, world.user_id, [world.grid_id])
        reply = protocol.push(
            session.connection(),
            caller,
            protocol.PushRequest(wire_ops),
            rules,
            lambda named: {world.grid_id} & named,
        )
        mark_after_push(session, reply.result)
        session.commit()
        if meter is not None:
            meter.stop()
    return reply, time.perf_counter() - started + checkpoint_seconds(database)


def checkpoint_seconds(database) -> float:
    """On SQLite, seconds to copy the write-ahead log into the database file.

    SQLite does this in whichever commit crosses 1,000 log pages, so it would land on
    a push or on a baseline insert by chance; running it after each keeps both paying
    for their own pages.
    """
    if database.engine.dialect.name != "sqlite":
        return 0.0
    started = time.perf_counter()
    raw = database.engine.raw_connection()  # outside any transaction
    try:
        raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        raw.close()
    return time.perf_counter() - started


def flag_check_seconds(database) -> float:
    """Seconds a worker takes to compute the flags of the records a push marked (outside
    the push: the server sends this to its task queue once the push commits)."""
    started = time.perf_counter()
    check_all(database)
    return time.perf_counter() - started + checkpoint_seconds(database)


def bare_table(database) -> Table:
    """An index-free table with the ops' columns, for the COPY / executemany baseline."""
    texts = {"device_id", "record_id", "form_id", "field", "kind", "value", "reason", "detail"}
    columns = ", ".join(
        f"{name} {'TEXT' if name in texts else 'BIGINT'}"
        for name in OP_COLUMNS
        if name != "received_at"
    )
    with database.engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE bench_copy ({columns}, received_at TIMESTAMP)"))
    return ops_table.to_metadata(MetaData(), name="bench_copy")


def copy_seconds(database, bare: Table, rows: list[tuple]) -> float:
    """Seconds to COPY (PostgreSQL) or executemany (SQLite) these rows into the bare
    table, committed."""
    started = time.perf_counter()
    with database.engine.begin() as connection:
        bulk_insert(connection, bare, OP_COLUMNS, rows)
    return time.perf_counter() - started + checkpoint_seconds(database)


def as_rows(
    database, wire_ops: list[dict], device_id: str, user_id: int, first: int
) -> list[tuple]:
    with database.engine.connect() as connection:
        received = stored_time(connection, now())
    return [
        (
            first + i,
            device_id,
            op["seq"],
            user_id,
            op["record_id"],
            op["form_id"],
            op["form_version"],
            op["grid_id"],
            op["field"],
            op["kind"],
            encode_json(op["value"]),
            hlc.from_wire(op["hlc"]),
            op["base"],
            None,
            None,
            received,
        )
        for i, op in enumerate(wire_ops)
    ]


def run(backend: str, pushes: int, total_ops: int | None) -> dict:
    """Push rounds (A's 5,000 ops, then B's concurrent edits), each followed by the
    baseline COPY of the same rows, so that both see the same machine load."""
    with fresh_database(backend) as database:
        world = populate(database)
        world.known = sync_service.warm(database, [(FORM_ID, 1)])
        bare = bare_table(database)
        # What a server worker does once started (server/heap.py): the start-up heap
        # leaves the garbage collector's scans, and young collections come less often.
        settle()
        a, b = Device(world.devices[0]), Device(world.devices[1])
        source = slots()
        elapsed = sent = conflicts = copied = 0
        baseline = flag_checks = 0.0
        first_times: list[float] = []
        first_push: list[dict] | None = None
        position = 0
        meter = CpuMeter()
        for round_no in itertools.count():
            if total_ops is None and round_no >= pushes:
                break
            if total_ops is not None and sent >= total_ops:
                break
            b_base = b.cursor
            a_ops = []
            for n in range(PUSH_SIZE):
                record_id, name, kind = next(source)
                a_ops.append(a.op(record_id, name, kind, value_for(kind, n), world.grid_id))
            b.cursor = b_base  # B edits without having seen A's push
            b_ops = [
                b.op(
                    op["record_id"],
                    op["field"],
                    "select_multiple" if op["kind"] == "add" else "x",
                    _other(op["value"]),
                    world.grid_id,
                )
                for op in a_ops[::CONCURRENT_SHARE]
            ]
            for device, wire in ((a, a_ops), (b, b_ops)):
                reply, seconds = push(database, world, device, wire, meter)
                assert reply.result.applied == len(wire), reply.result.quarantined[:3]
                elapsed += seconds
                flag_checks += flag_check_seconds(database)
                sent += len(wire)
                conflicts += len(reply.result.conflicts)
                if device is a:
                    first_times.append(seconds)
                rows = as_rows(database, wire, device.id, world.user_id, position + 1)
                baseline += copy_seconds(database, bare, rows)
                copied += len(rows)
                position += len(wire)
            a.cursor = b.cursor = position
            if first_push is None:
                first_push = a_ops
        duplicate_times = []
        for _ in range(DUPLICATE_TRIES):
            dup_reply, dup_seconds = push(database, world, a, first_push)
            assert dup_reply.result.duplicate == len(first_push)
            duplicate_times.append(dup_seconds)
    ops_per_s = sent / elapsed
    rounds = len(first_times)
    baseline_rate = copied / baseline
    first_s = statistics.median(first_times)
    duplicate_s = statistics.median(duplicate_times)
    return {
        "backend": backend,
        "ops": sent,
        "pushes": len(first_times) * 2,
        "conflicts": conflicts,
        "seconds": round(elapsed, 3),
        "ops_per_s": round(ops_per_s),
        "baseline_rows_per_s": round(baseline_rate),
        "ratio": round(ops_per_s / baseline_rate, 3),
        "first_push_s": round(first_s, 4),
        "duplicate_push_s": round(duplicate_s, 4),
        "duplicate_speedup": round(first_s / duplicate_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # per 5,000-op push of device A and its concurrent edits, like `seconds`
        "round_ms": round(1000 * elapsed / rounds, 1),
        "client_cpu_ms": round(1000 * meter.client / rounds, 1),
        "server_cpu_ms": None if meter.server is None else round(1000 * meter.server / rounds, 1),
        "flag_check_ms": round(1000 * flag_checks / rounds, 1),
    }


def _other(value):
    """A different valid value of the same kind."""
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str) and value.startswith("c"):
        return "c1" if value != "c1" else "c2"
    if isinstance(value, str) and value.startswith("2024-"):
        return "2023-06-15"
    return f"{value} (B)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pushes", type=int, default=20, help="pushes of device A per backend")
    parser.add_argument(
        "--ops", type=int, default=None, help="ingest at least this many ops instead"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [run(backend, args.pushes, args.ops) for backend in backends]
    header = (
        "backend",
        "ops",
        "ops_per_s",
        "baseline_rows_per_s",
        "ratio",
        "first_push_s",
        "duplicate_push_s",
        "duplicate_speedup",
        "conflicts",
        "peak_rss_mb",
        "round_ms",
        "client_cpu_ms",
        "server_cpu_ms",
        "flag_check_ms",
    )
    print(" | ".join(f"{name:>12}" for name in header))
    for result in results:
        print(" | ".join(f"{result[name]!s:>12}" for name in header))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"results": results, **results[0]}))


if __name__ == "__main__":
    main()
