"""A small world for sync tests: two forms, a few grids, records and choice values.

The field checks here stand in for the forms validator so that the merge core can be
tested on its own; they give the same reason codes for the same kinds of mistakes.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from hypothesis import strategies as st

from sync.ops import ADD, REMOVE, SET, Op, OpStatus, StoredOp
from sync.reasons import Reason, Verdict

CHOICES = ("a", "b", "c")
SEVERITY = ("low", "medium", "high")

# form -> version -> field -> kind of field
FORMS: dict[str, dict[int, dict[str, str]]] = {
    "household": {
        1: {"head_name": "text", "size": "integer", "tags": "multi", "intro": "note"},
        2: {"head_name": "text", "size": "integer", "tags": "multi", "phone": "text"},
    },
    "hazard": {1: {"severity": "one", "tags": "multi", "size": "integer", "depth": "decimal"}},
}

RECORDS = (
    ("00000000-0000-4000-8000-000000000001", "household"),
    ("00000000-0000-4000-8000-000000000002", "household"),
    ("00000000-0000-4000-8000-000000000003", "hazard"),
)
GRIDS = (1, 2, 3)


def lookup_form(form_id: str) -> Collection[int] | None:
    """Published versions of a test form."""
    versions = FORMS.get(form_id)
    return set(versions) if versions is not None else None


def check_field(op: Op) -> Verdict | None:
    """The per-field checks of a known form version."""
    fields = FORMS[op.form_id][op.form_version]
    kind = fields.get(op.field)
    if kind is None:
        return Verdict(Reason.UNKNOWN_FIELD, op.field)
    if kind == "note":
        return Verdict(Reason.READ_ONLY_FIELD, op.field)
    if op.kind in (ADD, REMOVE):
        if kind != "multi":
            return Verdict(Reason.NOT_MULTI_SELECT, op.field)
        if op.value not in CHOICES:
            return Verdict(Reason.UNKNOWN_CHOICE, repr(op.value))
        return None
    if kind == "multi":
        return Verdict(Reason.WRONG_TYPE, "a select_multiple takes add and remove")
    if kind == "text":
        if not isinstance(op.value, str):
            return Verdict(Reason.WRONG_TYPE, "text expected")
        return Verdict(Reason.OUT_OF_RANGE, "too long") if len(op.value) > 8 else None
    if kind == "integer":
        if isinstance(op.value, bool) or not isinstance(op.value, int):
            return Verdict(Reason.WRONG_TYPE, "integer expected")
        return None if 0 <= op.value <= 30 else Verdict(Reason.OUT_OF_RANGE, "0 to 30")
    if kind == "decimal":
        number = isinstance(op.value, int | float) and not isinstance(op.value, bool)
        return None if number else Verdict(Reason.WRONG_TYPE, "number expected")
    if op.value not in SEVERITY:
        return Verdict(Reason.UNKNOWN_CHOICE, repr(op.value))
    return None


@dataclass(frozen=True)
class Edit:
    """What a generated edit asks for, before a device stamps it."""

    record: int
    field: str
    kind: str
    value: object
    grid_id: int
    form_version: int = 1

    def args(self) -> tuple:
        record_id, form_id = RECORDS[self.record]
        version = self.form_version if form_id == "household" else 1
        return (record_id, form_id, version, self.grid_id, self.field, self.kind, self.value)


VALID_EDITS = {
    "household": [
        ("head_name", SET, ("wang", "li", "zhao")),
        ("size", SET, (1, 2, 3)),
        ("tags", ADD, CHOICES),
        ("tags", REMOVE, CHOICES),
        ("_deleted", SET, (True, False)),
    ],
    "hazard": [
        ("severity", SET, SEVERITY),
        ("size", SET, (4, 5)),
        # 1 and 1.0 differ as JSON: setting one over the other concurrently conflicts.
        ("depth", SET, (1, 1.0, 2.5)),
        ("tags", ADD, CHOICES),
        ("tags", REMOVE, CHOICES),
        ("_deleted", SET, (True, False)),
    ],
}
# Edits every replica must quarantine: (field, kind, value, form_version, reason).
BAD_EDITS = [
    ("head_name", SET, "far-too-long", 1, Reason.OUT_OF_RANGE),
    ("size", SET, "many", 1, Reason.WRONG_TYPE),
    ("tags", ADD, "zz", 1, Reason.UNKNOWN_CHOICE),
    ("head_name", ADD, "a", 1, Reason.NOT_MULTI_SELECT),
    ("phone", SET, "123", 1, Reason.UNKNOWN_FIELD),
    ("head_name", SET, "wu", 9, Reason.UNKNOWN_FORM_VERSION),
    ("_deleted", SET, "yes", 1, Reason.WRONG_TYPE),
]


@st.composite
def edits(draw: st.DrawFn, bad: bool = True, grids: Collection[int] = GRIDS) -> Edit:
    """A generated edit; about one in eight is one that must be quarantined."""
    record = draw(st.integers(0, len(RECORDS) - 1))
    grid_id = draw(st.sampled_from(sorted(grids)))
    if bad and RECORDS[record][1] == "household" and draw(st.integers(0, 7)) == 0:
        field, kind, value, version, _ = draw(st.sampled_from(BAD_EDITS))
        return Edit(record, field, kind, value, grid_id, version)
    field, kind, values = draw(st.sampled_from(VALID_EDITS[RECORDS[record][1]]))
    version = draw(st.sampled_from((1, 2)))
    return Edit(record, field, kind, draw(st.sampled_from(values)), grid_id, version)


DEVICES = ("d1", "d2", "d3")
RECORD_ID = RECORDS[0][0]


def stored(
    device: str,
    seq: int,
    position: int,
    field: str,
    kind: str,
    value: object,
    *,
    hlc: int,
    base: int = 0,
    grid_id: int = 1,
    record_id: str = RECORD_ID,
    status: OpStatus = OpStatus.APPLIED,
) -> StoredOp:
    """A stored household op, for tests of the pure rules."""
    op = Op(device, seq, record_id, "household", 1, grid_id, field, kind, value, hlc, base)
    return StoredOp(op, position, status, None if status is OpStatus.APPLIED else "wrong_type")


@st.composite
def op_logs(draw: st.DrawFn, max_size: int = 24) -> list[StoredOp]:
    """A server's op log: positions 1..n, each device's seqs and HLCs rising with them.

    Bases are anything below the op's position (sometimes above it, which the merge
    clamps); a few ops are quarantined.
    """
    size = draw(st.integers(1, max_size))
    seqs: dict[str, int] = {}
    clocks: dict[str, int] = {}
    log = []
    for position in range(1, size + 1):
        device = draw(st.sampled_from(DEVICES))
        seqs[device] = seqs.get(device, 0) + 1
        # HLCs of different devices interleave and may tie across devices
        clocks[device] = clocks.get(device, 0) + draw(st.integers(1, 3))
        field, kind, values = draw(
            st.sampled_from(
                [
                    ("head_name", SET, ("wang", "li")),
                    ("size", SET, (1, 2)),
                    ("tags", ADD, CHOICES),
                    ("tags", REMOVE, CHOICES),
                    ("_deleted", SET, (True, False)),
                ]
            )
        )
        record = draw(st.sampled_from(RECORDS[:2]))[0]
        log.append(
            stored(
                device,
                seqs[device],
                position,
                field,
                kind,
                draw(st.sampled_from(values)),
                hlc=clocks[device],
                base=draw(st.integers(0, position + 1)),
                grid_id=draw(st.sampled_from(GRIDS)),
                record_id=record,
                status=draw(st.sampled_from([OpStatus.APPLIED] * 5 + [OpStatus.QUARANTINED])),
            )
        )
    return log


def choices_by_definition(log: list[StoredOp], record_id: str, field: str) -> set[str]:
    """Add-wins straight from its definition: a choice is present while an add of it is
    not covered by any remove of it."""
    ops = [s for s in log if s.applied and (s.op.record_id, s.op.field) == (record_id, field)]
    adds = [s for s in ops if s.op.kind == ADD]
    removes = [s for s in ops if s.op.kind == REMOVE]
    present = set()
    for add in adds:
        covered = any(
            rem.op.value == add.op.value
            and (
                add.position <= rem.base
                or (rem.op.device_id == add.op.device_id and add.op.seq < rem.op.seq)
            )
            for rem in removes
        )
        if not covered:
            present.add(add.op.value)
    return present
