"""check_op and validate_record on the built-in forms, and properties that hold for any input."""

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from forms import builtin
from forms.validate import check_op, validate_record

HAZARD = builtin.hazard_check
SHA = "a" * 64
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
NAMES = st.sampled_from([*HAZARD.fields, "_parent", "_group", "_order", "_deleted", "nope"])


def reason(field, kind, value, version=HAZARD):
    rejection = check_op(version, field, kind, value)
    return None if rejection is None else rejection.reason


def test_values_of_each_type():
    assert reason("severity", "set", "high") is None
    assert reason("severity", "set", "extreme") == "unknown_choice"
    assert reason("severity", "set", None) is None
    assert reason("categories", "add", "fire") is None
    assert reason("categories", "add", "lava") == "unknown_choice"
    assert reason("categories", "set", ["fire"]) == "wrong_type"
    assert reason("severity", "add", "high") == "not_multi_select"
    assert reason("photos", "set", "x") == "read_only_field"
    assert reason("missing", "set", 1) == "unknown_field"
    assert reason("check_date", "set", "2024-02-30") == "wrong_type"
    assert reason("check_date", "set", "1999-12-31") == "out_of_range"
    assert reason("location", "set", {"latitude": 40.1, "longitude": 116.3}) is None
    assert reason("location", "set", {"latitude": 91, "longitude": 0}) == "out_of_range"
    assert reason("location", "set", {"lat": 1, "longitude": 0}) == "wrong_type"
    photo = {"sha256": SHA, "size": 10, "content_type": "image/jpeg"}
    assert reason("photo", "set", photo) is None
    assert reason("photo", "set", {**photo, "content_type": "video/mp4"}) == "wrong_type"
    assert reason("description", "set", "x" * 2001) == "out_of_range"
    household = builtin.household
    assert reason("birth_year", "set", 1950, household) is None
    assert reason("birth_year", "set", 1950.0, household) == "wrong_type"
    assert reason("birth_year", "set", True, household) == "wrong_type"
    assert reason("birth_year", "set", 1800, household) == "out_of_range"
    visit = builtin.household_visit
    assert reason("household", "set", "5b0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a10", visit) is None
    assert reason("household", "set", "not-a-uuid", visit) == "wrong_type"


def test_meta_fields_of_every_record():
    assert reason("_parent", "set", "5b0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a10") is None
    assert reason("_group", "set", "photos") is None
    assert reason("_group", "set", "members") == "wrong_type"
    assert reason("_order", "set", 2.5) is None
    assert reason("_order", "set", float("nan")) == "wrong_type"
    assert reason("_deleted", "set", True) is None
    assert reason("_deleted", "set", "yes") == "wrong_type"


@given(field=NAMES | JSON, kind=st.sampled_from(["set", "add", "remove", "x"]) | JSON, value=JSON)
def test_check_op_never_raises(field, kind, value):
    rejection = check_op(HAZARD, field, kind, value)
    assert rejection is None or rejection.reason in {
        "unknown_field",
        "wrong_type",
        "unknown_choice",
        "out_of_range",
        "not_multi_select",
        "read_only_field",
    }


@given(values=st.dictionaries(NAMES | st.text(max_size=5), JSON, max_size=8), rows=JSON)
def test_validate_record_never_raises(values, rows):
    errors = validate_record(HAZARD, values, rows if isinstance(rows, dict) else None)
    assert all(error.messages for error in errors)


NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
GOOD_HAZARD = {
    "check_date": "2024-05-30",
    "location": {"latitude": 40.0, "longitude": 116.4},
    "address": "幸福小区3号楼",
    "place_type": "restaurant",
    "categories": ["gas", "fire"],
    "severity": "low",
    "description": "燃气管道老化",
    "responsible_party": "王记饭店",
    "status": "reported",
}


def codes(errors):
    return sorted((error.field, error.code) for error in errors)


def test_a_complete_record_is_valid_and_relevance_is_flagged_not_deleted():
    assert validate_record(HAZARD, GOOD_HAZARD, now=NOW) == []
    record = {**GOOD_HAZARD, "severity": "critical", "categories_other": "stray text"}
    errors = validate_record(HAZARD, record, now=NOW)
    assert codes(errors) == [("categories_other", "not_relevant"), ("deadline", "required")]
    deadline = next(error for error in errors if error.field == "deadline")
    assert deadline.messages["zh"] == "较大及重大隐患必须填写整改期限。"
    assert record["categories_other"] == "stray text"


def test_constraints_and_rows():
    early = {**GOOD_HAZARD, "severity": "high", "deadline": "2024-05-01"}
    assert codes(validate_record(HAZARD, early, now=NOW)) == [("deadline", "constraint")]
    rows = {
        "photos": [
            {"caption": "门口"},
            {"photo": {"sha256": SHA, "size": 1, "content_type": "image/png"}},
        ]
    }
    errors = validate_record(HAZARD, GOOD_HAZARD, rows, now=NOW)
    assert [(e.field, e.code, e.repeat, e.row) for e in errors] == [
        ("photo", "required", "photos", 0)
    ]


def test_calculations_over_rows():
    household = builtin.household
    member = {"member_name": "王芳", "relation": "head", "sex": "female", "ethnicity": "han"}
    rows = {
        "members": [
            {**member, "birth_year": 1940, "categories": ["elderly_alone"]},
            {**member, "birth_year": 2010, "categories": ["elderly_alone"]},
        ]
    }
    from forms.validate import evaluate_record

    result = evaluate_record(household, {"housing_type": "owned"}, rows, now=NOW)
    assert result.calculated["member_count"] == 2
    constraint_rows = [e.row for e in result.errors if e.field == "categories"]
    assert constraint_rows == [1]


def test_date_times_take_an_offset_of_hours_alone_as_odk_instances_hold():
    from forms import from_dict

    form = from_dict({"form_id": "t", "fields": [{"name": "at", "type": "datetime"}]})
    for value in (
        "2014-01-09T11:52:02.906+03",
        "2014-01-09T11:52:02.906+03:00",
        "2014-01-09T11:52Z",
    ):
        assert reason("at", "set", value, form) is None, value
    for value in ("2014-01-09T11:52:02", "2014-01-09T11:52:02+3", "2014-01-09T11:52:02+0300"):
        assert reason("at", "set", value, form) == "wrong_type", value
