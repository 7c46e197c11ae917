"""Validation: one op before it applies (`check_op`), one merged record (`validate_record`).

`check_op` decides whether an op may change state; it returns a quarantine reason and
never raises. `validate_record` runs the checks that span fields on the merged state
(required, relevance, constraints, choice filters, calculations) and returns per-field
errors carrying the form's messages; it flags and never deletes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from forms.checks import Rejection
from forms.expr import Context, to_boolean
from forms.messages import message
from forms.model import EMPTY, FormVersion, Texts, is_meta_field

__all__ = [
    "FieldError",
    "RecordResult",
    "Rejection",
    "check_op",
    "evaluate_record",
    "validate_record",
]

_UNKNOWN_KIND = Rejection("wrong_type", "an op's kind is set, add or remove")


def check_op(version: FormVersion, field: str, kind: str, value: object) -> Rejection | None:
    """None when the op may apply to `field` under `version`, else why not."""
    try:
        checker = version.checkers.get(field)
    except TypeError:  # an unhashable field name (a list or object) names no field
        checker = None
    if checker is None:
        shown = repr(field[:80]) if type(field) is str else f"a {type(field).__name__}"
        return Rejection(
            "unknown_field", f"{shown} is not a field of {version.form_id} v{version.version}"
        )
    if kind.__class__ is not str:
        return _UNKNOWN_KIND
    return checker(kind, value)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field's failure on a merged record, with the form's message in each language."""

    field: str
    code: str
    messages: Texts = field(default_factory=dict)
    repeat: str | None = None
    row: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "field": self.field,
            "code": self.code,
            "messages": dict(self.messages),
        }
        if self.repeat is not None:
            out["repeat"], out["row"] = self.repeat, self.row
        return out


@dataclass(slots=True)
class RecordResult:
    """Errors, calculated values and the fields found not relevant, for one record."""

    errors: list[FieldError] = field(default_factory=list)
    calculated: dict[str, Any] = field(default_factory=dict)
    not_relevant: set[str] = field(default_factory=set)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _value_rejection(version: FormVersion, name: str, kind: str, value: Any) -> Rejection | None:
    checker = version.checkers[name]
    if kind == "select_multiple":
        if type(value) is not list:
            return Rejection("wrong_type", f"{name!r} holds a list of choices")
        for item in value:
            rejection = checker("add", item)
            if rejection is not None:
                return rejection
        return None
    return checker("set", value)


class _Run:
    """One record's validation: evaluation context, relevance so far, and errors."""

    def __init__(self, version: FormVersion, values: Mapping[str, Any], rows, now) -> None:
        self.version = version
        self.plan = version.compiled
        self.values = dict(values)
        self.rows = {
            name: [
                dict(row)
                for row in items
                if isinstance(row, Mapping) and row.get("_deleted") is not True
            ]
            for name, items in (rows or {}).items()
            if isinstance(items, list)
        }
        self.context = Context(self.values, self.rows, now, version, version.default_language)
        self.result = RecordResult()
        self.by_id = {
            row.get("_id"): (repeat, row)
            for repeat, items in self.rows.items()
            for row in items
            if row.get("_id") is not None
        }

    def error(self, name: str, code: str, texts: Texts = EMPTY, repeat=None, row=None) -> None:
        messages = MappingProxyType(dict(texts)) if texts else message(code, self.version.languages)
        self.result.errors.append(FieldError(name, code, messages, repeat, row))

    def enter_row(self, repeat: str, row: Mapping[str, Any], index: int) -> None:
        """Put `row` and the rows of enclosing repeats it belongs to on the context stack."""
        stack = {repeat: (row, index + 1)}
        parent = row.get("_parent")
        while parent in self.by_id:
            outer, outer_row = self.by_id[parent]
            if outer in stack:
                break
            stack[outer] = (outer_row, self.rows[outer].index(outer_row) + 1)
            parent = outer_row.get("_parent")
        self.context.stack = stack

    def calculate(self) -> None:
        context = self.context
        for name in self.plan.calculation_order:
            plan = self.plan.plans[name]
            repeat = plan.field.repeat
            if repeat is None:
                context.stack = {}
                value = plan.calculation(context)
                self.values[name] = value
                self.result.calculated[name] = value
                continue
            for index, row in enumerate(self.rows.get(repeat, ())):
                self.enter_row(repeat, row, index)
                row[name] = plan.calculation(context)
        context.stack = {}

    def check(
        self, values: Mapping[str, Any], container: str | None, repeat=None, row=None
    ) -> None:
        """Check the fields directly inside `container` (recursing into groups)."""
        version, context, plans = self.version, self.context, self.plan.plans
        for child in version.children(container):
            name, kind = child.name, child.type
            plan = plans[name]
            relevant = plan.relevant is None or to_boolean(plan.relevant(context))
            if kind == "group":
                if relevant:
                    self.check(values, name, repeat, row)
                else:
                    self.flag_hidden(values, name, repeat, row)
                continue
            if kind == "repeat":
                self.check_rows(child, relevant)
                continue
            value = values.get(name)
            if not relevant:
                if not _is_empty(value) and plan.calculation is None:
                    self.result.not_relevant.add(name)
                    self.error(name, "not_relevant", repeat=repeat, row=row)
                continue
            if kind == "note":
                continue
            if _is_empty(value):
                if plan.required is not None and to_boolean(plan.required(context)):
                    self.error(name, "required", child.required_message, repeat, row)
                continue
            rejection = _value_rejection(version, name, kind, value)
            if rejection is not None and plan.calculation is None:
                self.error(name, rejection.reason, repeat=repeat, row=row)
                continue
            if plan.constraint is not None:
                context.current = value
                if not to_boolean(plan.constraint(context)):
                    self.error(name, "constraint", child.constraint_message, repeat, row)
                context.current = None
            if plan.choice_filter is not None:
                self.check_filter(plan, value, repeat, row)

    def check_filter(self, plan, value: Any, repeat, row) -> None:
        chosen = value if type(value) is list else [value]
        allowed = set()
        for choice in plan.field.options:
            self.context.choice = choice
            if to_boolean(plan.choice_filter(self.context)):
                allowed.add(choice.name)
        self.context.choice = None
        if any(item not in allowed for item in chosen):
            self.error(plan.field.name, "choice_filtered", repeat=repeat, row=row)

    def flag_hidden(self, values: Mapping[str, Any], group: str, repeat, row) -> None:
        for child in self.version.children(group):
            if child.type == "group":
                self.flag_hidden(values, child.name, repeat, row)
            elif child.type == "repeat":
                self.check_rows(child, relevant=False)
            elif not _is_empty(values.get(child.name)) and child.calculation is None:
                self.result.not_relevant.add(child.name)
                self.error(child.name, "not_relevant", repeat=repeat, row=row)

    def check_rows(self, repeat_field, relevant: bool) -> None:
        name = repeat_field.name
        rows = self.rows.get(name, ())
        if not relevant:
            if rows:
                self.result.not_relevant.add(name)
                self.error(name, "not_relevant")
            return
        saved = self.context.stack
        for index, row in enumerate(rows):
            self.enter_row(name, row, index)
            self.check(row, name, name, index)
        self.context.stack = saved

    def unknown_fields(self) -> None:
        fields = self.version.fields
        for name in self.values:
            if name not in fields and not is_meta_field(name) and name != "_id":
                self.error(str(name), "unknown_field")


def evaluate_record(
    version: FormVersion,
    values: Mapping[str, Any],
    rows: Mapping[str, list[Mapping[str, Any]]] | None = None,
    now: dt.datetime | None = None,
) -> RecordResult:
    """Calculations, relevance and per-field errors of one merged record."""
    run = _Run(version, values, rows, now)
    run.unknown_fields()
    run.calculate()
    run.check(run.values, None)
    return run.result


def validate_record(
    version: FormVersion,
    values: Mapping[str, Any],
    rows: Mapping[str, list[Mapping[str, Any]]] | None = None,
    now: dt.datetime | None = None,
) -> list[FieldError]:
    """Per-field errors of one merged record (rows: repeat name -> its row records)."""
    return evaluate_record(version, values, rows, now).errors
