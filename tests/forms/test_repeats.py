"""References into repeats evaluate as the XPath pyxform writes does in ODK Collect.

The form: a repeat `kids` holding a repeat `shots`, which holds a repeat `doses`.
Kids A, B and C: A has two shots, B none, C one; A's second shot has two doses and
C's shot one. Rows of nested repeats name their parent row in `_parent`.
"""

import datetime as dt
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forms import DefinitionError, evaluate_record, from_dict, validate_record

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
KIDS = [
    {"_id": "k1", "kname": "A", "has_shots": "yes"},
    {"_id": "k2", "kname": "B", "has_shots": "no"},
    {"_id": "k3", "kname": "C", "has_shots": "yes"},
]
SHOTS = [
    {"_id": "s1", "_parent": "k1"},
    {"_id": "s2", "_parent": "k1", "shot": "polio"},
    {"_id": "s3", "_parent": "k3", "shot": "tb"},
]
DOSES = [
    {"_id": "d1", "_parent": "s2", "dose": "1"},
    {"_id": "d2", "_parent": "s2", "dose": "2"},
    {"_id": "d3", "_parent": "s3", "dose": "1"},
]
ROWS = {"kids": KIDS, "shots": SHOTS, "doses": DOSES}


@cache
def form(expression=None, where=None):
    """The kids form; with `expression`, a calculation `got` of it in `where`'s rows."""
    extra = {
        name: [{"name": "got", "type": "calculate", "calculation": expression}]
        if expression is not None and where == name
        else []
        for name in (None, "kids", "shots")
    }
    seen = [{"name": "seen", "type": "calculate", "calculation": "join('|', ${got})"}]
    shots = [
        {"name": "shot", "type": "text", "required": "yes"},
        {"name": "spos", "type": "calculate", "calculation": "position(..)"},
        *extra["shots"],
        {"name": "doses", "type": "repeat", "fields": [{"name": "dose", "type": "text"}]},
    ]
    kids = [
        {"name": "kname", "type": "text"},
        {"name": "has_shots", "type": "text"},
        *extra["kids"],
        {"name": "shots", "type": "repeat", "relevant": "${has_shots} = 'yes'", "fields": shots},
    ]
    return from_dict(
        {
            "form_id": "kids",
            "fields": [
                {"name": "kids", "type": "repeat", "fields": kids},
                *extra[None],
                *(seen if expression is not None else []),
            ],
        }
    )


def seen(where, expression, rows=ROWS):
    """The value of `expression` in each row of `where` (None: the record), joined by '|'."""
    return evaluate_record(form(expression, where), {}, rows, NOW).calculated["seen"]


@pytest.mark.parametrize(
    ("where", "expression", "expected"),
    [
        # Only the current kid's shots, by name and by the path pyxform writes.
        ("kids", "count(${shot})", "2|0|1"),
        ("kids", "count(${shots})", "2|0|1"),
        ("kids", "count( ../shots/shot )", "2|0|1"),
        ("kids", "count( ../shots )", "2|0|1"),
        ("kids", "count(${dose})", "2|0|1"),
        ("kids", "join(',', ${shot})", ",polio||tb"),
        # A repeat's rows, wherever the reference sits.
        ("kids", "count(${kids})", "3|3|3"),
        ("kids", "count( /data/kids )", "3|3|3"),
        ("shots", "count(${kids})", "3|3|3"),
        (None, "count(${kids})", "3"),
        (None, "count(${shot})", "3"),
        (None, "count(${dose})", "3"),
        (None, "join(',', ${kname})", "A,B,C"),
        # Inside a row, a field of the row's own repeat or of an enclosing one is a value.
        ("kids", "${kname}", "A|B|C"),
        ("shots", "${kname}", "A|A|C"),
        ("shots", " ../../kname ", "A|A|C"),
        ("shots", "count(${shots})", "2|2|1"),
        ("shots", "count( ../../shots )", "2|2|1"),
        ("shots", "count(${dose})", "0|2|1"),
        # Positions among the rows under the same parent row.
        ("kids", "position(..)", "1|2|3"),
        ("shots", "position(..)", "1|2|1"),
        # indexed-repeat: the row at a position among the current parent row's rows.
        ("kids", "indexed-repeat(${kname}, ${kids}, position(..) - 1)", "|A|B"),
        ("kids", "indexed-repeat( /data/kids/kname ,  /data/kids , position(..) - 1)", "|A|B"),
        ("kids", "indexed-repeat(${kname}, ${kids}, 4)", "||"),
        ("kids", "indexed-repeat(${shot}, ${shots}, 2)", "polio||"),
        ("shots", "indexed-repeat(${shot}, ${shots}, 1)", "||tb"),
        ("kids", "indexed-repeat(${shot}, ${kids}, 3, ${shots}, 1)", "tb|tb|tb"),
        ("shots", "indexed-repeat(${dose}, ${doses}, 2)", "|2|"),
        (None, "indexed-repeat(${kname}, ${kids}, 2)", "B"),
        (None, "indexed-repeat(${kname}, ${kids}, 'x')", ""),
    ],
)
def test_references_into_repeats(where, expression, expected):
    assert seen(where, expression) == expected


def test_rows_of_deleted_or_missing_parents_are_not_part_of_the_record():
    rows = {
        "kids": [{**KIDS[0], "_deleted": True}, *KIDS[1:]],
        "shots": [*SHOTS, {"_id": "s4", "_parent": "nobody"}, {"_id": "s5", "_parent": ["k3"]}],
        "doses": DOSES,
    }
    assert seen("kids", "count(${shot})", rows) == "0|1"
    assert seen(None, "count(${shot})", rows) == "1"
    assert seen(None, "count(${dose})", rows) == "1"
    errors = validate_record(form(), {}, rows, NOW)
    assert [(e.field, e.code, e.repeat, e.row) for e in errors] == []


def rows_checked(rows):
    errors = validate_record(form(), {}, rows, NOW)
    return [(e.field, e.code, e.repeat, e.row) for e in errors]


def test_each_row_is_checked_once_under_its_own_parent():
    # Shot s1 lacks its value: one error. B's shots are hidden, A's and C's are not.
    assert rows_checked(ROWS) == [("shot", "required", "shots", 0)]
    with_b_shot = {**ROWS, "shots": [*SHOTS, {"_id": "s4", "_parent": "k2", "shot": "x"}]}
    assert rows_checked(with_b_shot) == [
        ("shot", "required", "shots", 0),
        ("shots", "not_relevant", "kids", 1),
    ]


def test_indexed_repeat_names_a_field_and_repeats_that_hold_it():
    with pytest.raises(DefinitionError, match=r"shots.* is not a repeat holding kname"):
        form("indexed-repeat(${kname}, ${shots}, 1)", "kids")
    with pytest.raises(DefinitionError, match="pairs of repeat and position"):
        form("indexed-repeat(${kname}, ${kids})", "kids")
    with pytest.raises(DefinitionError, match="a field inside a repeat first"):
        form("indexed-repeat('A', ${kids}, 1)", "kids")


KID_IDS = ["k0", "k1", "k2", "k3"]


@st.composite
def records(draw):
    """Kids (some deleted) and shots that name a kid, no row, or something that is no id."""
    kids = [
        {
            "_id": kid,
            "has_shots": draw(st.sampled_from(["yes", "no"])),
            "_deleted": draw(st.booleans()),
        }
        for kid in KID_IDS[: draw(st.integers(0, len(KID_IDS)))]
    ]
    parents = st.sampled_from([*KID_IDS, "nobody", None]) | st.lists(st.just("k0"), max_size=1)
    shots = [
        {"_id": f"s{index}", "_parent": draw(parents), "_deleted": draw(st.booleans())}
        for index in range(draw(st.integers(0, 8)))
    ]
    return {"kids": kids, "shots": shots}


def expected_checks(rows):
    """What checking each live kid, then its live shots in list order, should report."""
    kids = [kid for kid in rows["kids"] if not kid["_deleted"]]
    shots = [shot for shot in rows["shots"] if not shot["_deleted"]]
    checks, positions = [], []
    for kid_index, kid in enumerate(kids):
        own = [index for index, shot in enumerate(shots) if shot["_parent"] == kid["_id"]]
        positions += range(1, len(own) + 1)
        if kid["has_shots"] == "yes":
            checks += [("shot", "required", "shots", index) for index in own]
        elif own:
            checks.append(("shots", "not_relevant", "kids", kid_index))
    return checks, "|".join(str(position) for position in positions)


@given(rows=records())
def test_rows_are_checked_once_and_numbered_among_their_siblings(rows):
    checks, positions = expected_checks(rows)
    assert rows_checked(rows) == checks
    assert seen(None, "${spos}", rows) == positions


LINKS = (
    st.none()
    | st.booleans()
    | st.integers(0, 2)
    | st.sampled_from(["k1", "s1"])
    | st.lists(st.just("k1"), max_size=1)
    | st.dictionaries(st.just("k1"), st.integers(), max_size=1)
)
LINKED_ROWS = st.dictionaries(
    st.sampled_from(["kids", "shots", "doses"]),
    st.lists(st.fixed_dictionaries({"_id": LINKS, "_parent": LINKS}), max_size=4),
)


@given(rows=LINKED_ROWS)
def test_rows_linked_in_any_way_are_each_checked_at_most_once(rows):
    version = form("indexed-repeat(${dose}, ${kids}, 1, ${doses}, 2)", "shots")
    errors = validate_record(version, {}, rows, NOW)
    checked = [(e.field, e.code, e.repeat, e.row) for e in errors]
    assert len(checked) == len(set(checked))
    assert all(0 <= e.row < len(rows[e.repeat]) for e in errors if e.repeat is not None)
