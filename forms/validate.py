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
from typing import Any

from forms.checks import Rejection
from forms.expr import Context
from forms.expr.rows import Stack
from forms.messages import message
from forms.model import FormVersion, Texts
from forms.plan import GROUP, REPEAT, VALUE, RecordPlan

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


def _live_rows(rows: Any, written: frozenset[str]) -> dict[str, list[Mapping[str, Any]]]:
    """The rows that count (objects not marked deleted); copied where calculations write."""
    live: dict[str, list[Mapping[str, Any]]] = {}
    if not rows:
        return live
    for name, items in rows.items():
        if not isinstance(items, list):
            continue
        kept = [
            row
            for row in items
            if (type(row) is dict or isinstance(row, Mapping)) and row.get("_deleted") is not True
        ]
        live[name] = [dict(row) for row in kept] if name in written else kept
    return live


class _Run:
    """One record's validation: evaluation context, relevance so far, and errors."""

    __slots__ = ("context", "languages", "plan", "result", "rows", "values")

    def __init__(self, version: FormVersion, values: Mapping[str, Any], rows, now) -> None:
        plan: RecordPlan = version.compiled.record
        self.plan = plan
        self.languages = plan.languages
        self.values = dict(values)
        self.rows = _live_rows(rows, plan.written_repeats)
        self.context = Context(self.values, self.rows, now, version, version.default_language)
        self.result = RecordResult()

    def error(
        self, name: str, code: str, texts: Texts | None = None, repeat=None, row=None
    ) -> None:
        messages = texts if texts is not None else message(code, self.languages)
        self.result.errors.append(FieldError(name, code, messages, repeat, row))

    def entries(self, repeat: str, parent: str | None, above: Stack) -> list[tuple[int, Stack]]:
        """The rows of `repeat` under the row of `parent` in `above` (the record's when None).

        Each as its index in `rows[repeat]` and the stack that evaluates it: `above` with
        the row and its position among its siblings.
        """
        items = self.rows.get(repeat, ())
        holder = above[parent][0] if parent is not None else None
        indexes = self.context.repeat_rows.children(repeat, parent, holder)
        return [
            (index, {**above, repeat: (items[index], position)})
            for position, index in enumerate(indexes, 1)
        ]

    def stacks(self, repeat: str) -> list[Stack]:
        """A stack for each row of `repeat` in the record, going down from the top level."""
        stacks: list[Stack] = [{}]
        for level, parent in self.plan.lineages[repeat]:
            stacks = [stack for above in stacks for _, stack in self.entries(level, parent, above)]
        return stacks

    def calculate(self) -> None:
        context, values, calculated = self.context, self.values, self.result.calculated
        for name, compute, repeat in self.plan.calculations:
            if repeat is None:
                context.stack = {}
                value = values[name] = compute(context)
                calculated[name] = value
                continue
            for stack in self.stacks(repeat):
                context.stack = stack
                row = stack[repeat][0]
                row[name] = compute(context)  # type: ignore[index]  # a copied dict
        context.stack = {}

    def check(
        self, values: Mapping[str, Any], container: str | None, repeat=None, row=None
    ) -> None:
        """Check the fields directly inside `container` (recursing into groups)."""
        context = self.context
        for step in self.plan.steps[container]:
            (name, kind, relevant, required, check, constraint, choice_filter, flag, _, _, _, _) = (
                step
            )
            visible = relevant is None or relevant(context)
            if kind == VALUE:
                value = values.get(name)
                if value is None or value == "" or value == []:
                    if visible and required is not None and (required is True or required(context)):
                        self.error(name, "required", step.required_message, repeat, row)
                    continue
                if not visible:
                    if flag:
                        self.hidden(name, repeat, row)
                    continue
                if check is not None:
                    rejection = check(value)
                    if rejection is not None:
                        self.error(name, rejection.reason, None, repeat, row)
                        continue
                if constraint is not None:
                    context.current = value
                    if not constraint(context):
                        self.error(name, "constraint", step.constraint_message, repeat, row)
                    context.current = None
                if choice_filter is not None:
                    self.check_filter(step, value, repeat, row)
            elif kind == GROUP:
                if visible:
                    self.check(values, name, repeat, row)
                else:
                    self.flag_hidden(values, name, repeat, row)
            elif kind == REPEAT:
                self.check_rows(name, visible, repeat, row)
            elif not visible and flag and not _is_empty(values.get(name)):
                self.hidden(name, repeat, row)

    def hidden(self, name: str, repeat, row) -> None:
        self.result.not_relevant.add(name)
        self.error(name, "not_relevant", None, repeat, row)

    def check_filter(self, step, value: Any, repeat, row) -> None:
        chosen = value if type(value) is list else [value]
        allowed = set()
        context = self.context
        for choice in step.field.options:
            context.choice = choice
            if step.choice_filter(context):
                allowed.add(choice.name)
        context.choice = None
        if any(item not in allowed for item in chosen):
            self.error(step.name, "choice_filtered", None, repeat, row)

    def flag_hidden(self, values: Mapping[str, Any], group: str, repeat, row) -> None:
        for step in self.plan.steps[group]:
            if step.kind == GROUP:
                self.flag_hidden(values, step.name, repeat, row)
            elif step.kind == REPEAT:
                self.check_rows(step.name, False, repeat, row)
            elif step.flag_in_hidden_group and not _is_empty(values.get(step.name)):
                self.hidden(step.name, repeat, row)

    def check_rows(self, name: str, relevant: bool, repeat=None, row=None) -> None:
        """Check the rows of `name` under the row being checked (row `row` of `repeat`)."""
        saved = self.context.stack
        entries = self.entries(name, repeat, saved)
        if not relevant:
            if entries:
                self.result.not_relevant.add(name)
                self.error(name, "not_relevant", None, repeat, row)
            return
        for index, stack in entries:
            self.context.stack = stack
            self.check(stack[name][0], name, name, index)
        self.context.stack = saved

    def unknown_fields(self) -> None:
        known = self.plan.known
        for name in self.values:
            if name not in known:
                self.error(str(name), "unknown_field")


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


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
