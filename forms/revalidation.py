"""Re-validation of records made under an older version against a newly published one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from forms.model import FormVersion
from forms.validate import FieldError, validate_record


@dataclass(frozen=True, slots=True)
class RecordState:
    """A record's merged values and its repeat rows, as the store holds them."""

    record_id: Any
    values: Mapping[str, Any]
    rows: Mapping[str, list[Mapping[str, Any]]] | None = None


@dataclass(slots=True)
class Revalidation:
    """A record's errors under the new version, and what changed since the old one."""

    record_id: Any
    errors: list[FieldError]
    new_errors: list[FieldError] = field(default_factory=list)
    fixed: list[FieldError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


def _key(error: FieldError) -> tuple:
    return (error.field, error.code, error.repeat, error.row)


def revalidate(
    old: FormVersion | None,
    new: FormVersion,
    records: Iterable[RecordState],
    now: dt.datetime | None = None,
) -> Iterator[Revalidation]:
    """Validate each record against `new`; with `old`, also say which errors are new or gone.

    Records stream through one at a time, so any number can be re-validated in
    constant memory. Nothing is changed: values the new version has no field for are
    reported (`unknown_field`), never dropped.
    """
    for record in records:
        errors = validate_record(new, record.values, record.rows, now)
        if old is None:
            yield Revalidation(record.record_id, errors, list(errors), [])
            continue
        before = validate_record(old, record.values, record.rows, now)
        seen_before = {_key(error) for error in before}
        seen_now = {_key(error) for error in errors}
        yield Revalidation(
            record.record_id,
            errors,
            [error for error in errors if _key(error) not in seen_before],
            [error for error in before if _key(error) not in seen_now],
        )
