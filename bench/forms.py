"""Records validated per second on one core: hazard_check, and household with six members."""

import datetime as dt
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


def rate(label, work, seconds=2.0):
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            work()
        count += 200
    print(f"{label}: {count / (time.perf_counter() - start):,.0f} per second")


if __name__ == "__main__":
    hazard, household = builtin.hazard_check, builtin.household
    assert validate_record(hazard, HAZARD, now=NOW) == []
    assert validate_record(household, HOUSEHOLD, ROWS, now=NOW) == []
    rate("hazard_check records validated", lambda: validate_record(hazard, HAZARD, now=NOW))
    rate(
        "household records (6 members) validated",
        lambda: validate_record(household, HOUSEHOLD, ROWS, now=NOW),
    )
    rate("check_op", lambda: check_op(hazard, "severity", "set", "high"))
