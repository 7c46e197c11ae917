"""Records validated per second on one core: hazard_check, and household with six members.

Each figure is the full per-record check (`validate_record`: unknown fields,
calculations, relevance, required, value types, constraints, choice filters) of one
realistic record of a built-in form. Time is this process's CPU time, so other
processes on a shared machine do not count against it; the figure printed is the
median of several rounds, with the slowest and fastest round beside it.
"""

import datetime as dt
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on the path and its name would hide
# the `forms` package; the project root goes there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from forms import builtin  # noqa: E402
from forms.validate import check_op, validate_record  # noqa: E402

NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
HAZARD = {
    "check_date": "2024-05-30",
    "location": {"latitude": 40.0, "longitude": 116.4},
    "address": "幸福小区3号楼",
    "place_type": "restaurant",
    "categories": ["gas", "fire"],
    "severity": "high",
    "description": "燃气管道老化",
    "responsible_party": "王记饭店",
    "deadline": "2024-06-10",
    "status": "assigned",
    "assigned_team": "gas_company",
}
# The same case with the responsible party's phone and two photos (repeat rows).
PHOTO = {"sha256": "ab" * 32, "size": 182_113, "content_type": "image/jpeg"}
HAZARD_FULL = dict(HAZARD, responsible_phone="13912345678")
HAZARD_ROWS = {
    "photos": [
        {"_id": f"8f0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a1{i}", "_order": i, "photo": PHOTO}
        for i in range(2)
    ]
}
MEMBER = {
    "member_name": "王芳",
    "relation": "child",
    "sex": "female",
    "ethnicity": "han",
    "birth_year": 1980,
    "id_last4": "123X",
    "member_phone": "13800138000",
}
HOUSEHOLD = {
    "address": "和平街道1号",
    "room": "101",
    "grid_code": "HP-C1-R1-G1",
    "head_name": "王建国",
    "head_phone": "13900139000",
    "housing_type": "owned",
}
ROWS = {"members": [dict(MEMBER, _order=i) for i in range(6)]}


def rate(label, work, rounds=7, seconds=0.4):
    """Print calls of `work` per CPU second: the median round, and the range."""
    figures = []
    for _ in range(rounds):
        count, start = 0, time.process_time()
        while time.process_time() - start < seconds:
            for _ in range(200):
                work()
            count += 200
        figures.append(count / (time.process_time() - start))
    low, high = min(figures), max(figures)
    print(
        f"{label}: {statistics.median(figures):,.0f} per second (rounds {low:,.0f} to {high:,.0f})"
    )


if __name__ == "__main__":
    hazard, household = builtin.hazard_check, builtin.household
    # Valid records: every check runs to the end instead of stopping at an error.
    assert validate_record(hazard, HAZARD, now=NOW) == []
    assert validate_record(hazard, HAZARD_FULL, HAZARD_ROWS, now=NOW) == []
    assert validate_record(household, HOUSEHOLD, ROWS, now=NOW) == []
    rate("hazard_check records validated", lambda: validate_record(hazard, HAZARD, now=NOW))
    rate(
        "household records (6 members) validated",
        lambda: validate_record(household, HOUSEHOLD, ROWS, now=NOW),
    )
    rate(
        "hazard_check records with phone and 2 photos validated",
        lambda: validate_record(hazard, HAZARD_FULL, HAZARD_ROWS, now=NOW),
    )
    rate("check_op", lambda: check_op(hazard, "severity", "set", "high"))
