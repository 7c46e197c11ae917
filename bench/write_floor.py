"""Write-floor benchmark: what the store's two per-op writes cost before any Python runs.

Each round takes 5,000 op rows of household-visit-like records (as bench/ingest.py
makes them) and, in the same run, times
- the baseline: COPY (PostgreSQL) or executemany (SQLite) into an index-free table;
- the same rows into the store's `ops` table with its indexes, as a push appends them;
- their field states into `field_state` by the store's own INSERT ... SELECT for
  records new to a push (`merging.register_sql`).
A push writes at least these two for every op it applies, so the ingest rate can
never pass `baseline * ceiling_ratio`, whatever the rest costs.

    python bench/write_floor.py [--backend sqlite|postgresql|both] [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import PUSH_SIZE, Device, as_rows, bare_table, checkpoint_seconds, slots
from bench.sync_world import fresh_database, populate, value_for
from sync.store.ingest import OP_COLUMNS
from sync.store.merging import register_sql
from sync.store.sql import bulk_insert, driver_sql
from sync.store.tables import ops as ops_table


def timed(database, write) -> float:
    """Seconds to run `write(connection)` and commit (with SQLite's checkpoint)."""
    started = time.perf_counter()
    with database.engine.begin() as connection:
        write(connection)
    return time.perf_counter() - started + checkpoint_seconds(database)


def run(backend: str, rounds: int) -> dict:
    with fresh_database(backend) as database:
        world = populate(database)
        bare = bare_table(database)
        device, source = Device(world.devices[0]), slots()
        times: dict[str, list[float]] = {"baseline": [], "ops": [], "field_state": []}
        position = 0
        statement = register_sql("position BETWEEN ? AND ?", ranked=False, upsert=False)
        for _ in range(rounds + 1):  # the first round warms caches and is not counted
            wire = []
            for n in range(PUSH_SIZE):
                record_id, name, kind = next(source)
                wire.append(device.op(record_id, name, kind, value_for(kind, n), world.grid_id))
            rows = as_rows(database, wire, device.id, world.user_id, position + 1)
            first, last = position + 1, position + len(rows)
            position = last
            round_times = {
                "baseline": timed(database, lambda c, r=rows: bulk_insert(c, bare, OP_COLUMNS, r)),
                "ops": timed(database, lambda c, r=rows: bulk_insert(c, ops_table, OP_COLUMNS, r)),
                "field_state": timed(
                    database,
                    lambda c, a=first, b=last: c.exec_driver_sql(driver_sql(c, statement), (a, b)),
                ),
            }
            if first > 1:
                for name, seconds in round_times.items():
                    times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "backend": backend,
        "rows_per_round": PUSH_SIZE,
        "baseline_rows_per_s": round(PUSH_SIZE / medians["baseline"]),
        "ops_rows_per_s": round(PUSH_SIZE / medians["ops"]),
        "field_state_rows_per_s": round(PUSH_SIZE / medians["field_state"]),
        "ops_vs_baseline": round(medians["ops"] / medians["baseline"], 2),
        "field_state_vs_baseline": round(medians["field_state"] / medians["baseline"], 2),
        "ceiling_ratio": round(medians["baseline"] / (medians["ops"] + medians["field_state"]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=10, help="5,000-row rounds per backend")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [run(backend, args.rounds) for backend in backends]
    header = list(results[0])
    print(" | ".join(f"{name:>12}" for name in header))
    for result in results:
        print(" | ".join(f"{result[name]!s:>12}" for name in header))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"results": results}))


if __name__ == "__main__":
    main()
