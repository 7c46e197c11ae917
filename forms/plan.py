"""What validating a record needs of a form version, worked out once per version.

`validate_record` runs for every merged record, so everything that does not depend
on the record is decided here when the version is built: the checks of each group
and repeat in document order with their compiled conditions and value checks, the
calculations in dependency order, the messages, and which repeat rows get written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from forms.checks import Rejection, compile_value_check
from forms.expr.rows import Lineage, repeat_lineage
from forms.expr.syntax import Call, parse
from forms.messages import message
from forms.model import Field, Texts
from forms.types import META_FIELDS

# Step kinds, in the order the loop tests them.
VALUE, GROUP, REPEAT, NOTE = range(4)
KINDS = {"group": GROUP, "repeat": REPEAT, "note": NOTE}


class Step(NamedTuple):
    """One field's checks inside its container; unpacked once per field per record."""

    name: str
    kind: int
    relevant: Callable[[Any], bool] | None
    # True when the field is always required, a condition when it depends, else None.
    required: Callable[[Any], bool] | bool | None
    # The value check, or None for a calculated field (its value is computed, not typed).
    check: Callable[[Any], Rejection | None] | None
    constraint: Callable[[Any], bool] | None
    choice_filter: Callable[[Any], bool] | None
    # Flagged when it holds a value while not relevant (calculated fields never are).
    flag_when_hidden: bool
    # The same, inside a group that is not relevant (that rule reads the definition).
    flag_in_hidden_group: bool
    required_message: Texts
    constraint_message: Texts
    field: Field


class Calculation(NamedTuple):
    name: str
    compute: Callable[[Any], Any]
    repeat: str | None


class RecordPlan(NamedTuple):
    """Per container (None for the top level) its steps, and what the record run needs."""

    steps: Mapping[str | None, tuple[Step, ...]]
    calculations: tuple[Calculation, ...]
    # Names a record may hold without being an unknown field.
    known: frozenset[str]
    # Repeats whose rows get calculated values written, so they are copied first.
    written_repeats: frozenset[str]
    # Per repeat, the repeats to go down through from the top level to reach its rows.
    lineages: Mapping[str, Lineage]
    languages: tuple[str, ...]


def _always_true(text: str | None) -> bool:
    if not text:
        return False
    node = parse(text)
    return isinstance(node, Call) and node.name == "true" and not node.args


def _messages(texts: Texts, code: str, languages: tuple[str, ...]) -> Texts:
    """The form's own message when it has one, else the default in the form's languages."""
    return MappingProxyType(dict(texts)) if texts else message(code, languages)


def _step(field: Field, plan: Any, languages: tuple[str, ...]) -> Step:
    kind = KINDS.get(field.type, VALUE)
    calculated = plan.calculation is not None
    required: Callable[[Any], bool] | bool | None = plan.required
    if required is not None and _always_true(field.required):
        required = True
    relevant = None if _always_true(field.relevant) else plan.relevant
    check = None
    if kind == VALUE and not calculated:
        check = compile_value_check(field)
    return Step(
        name=field.name,
        kind=kind,
        relevant=relevant,
        required=required,
        check=check,
        constraint=plan.constraint,
        choice_filter=plan.choice_filter,
        flag_when_hidden=not calculated,
        flag_in_hidden_group=field.calculation is None,
        required_message=_messages(field.required_message, "required", languages),
        constraint_message=_messages(field.constraint_message, "constraint", languages),
        field=field,
    )


def build_plan(version: Any, plans: Mapping[str, Any], order: list[str]) -> RecordPlan:
    """The record plan of a version from its compiled field plans and calculation order."""
    languages = version.languages
    steps: dict[str | None, list[Step]] = {None: []}
    for field in version.fields.values():
        if field.type in ("group", "repeat"):
            steps.setdefault(field.name, [])
        steps.setdefault(field.parent, []).append(_step(field, plans[field.name], languages))
    calculations = tuple(
        Calculation(name, plans[name].calculation, plans[name].field.repeat) for name in order
    )
    return RecordPlan(
        steps=MappingProxyType({name: tuple(items) for name, items in steps.items()}),
        calculations=calculations,
        known=frozenset(version.fields) | META_FIELDS | {"_id"},
        written_repeats=frozenset(c.repeat for c in calculations if c.repeat is not None),
        lineages=MappingProxyType(
            {name: repeat_lineage(version, name) for name in version.repeats}
        ),
        languages=languages,
    )
