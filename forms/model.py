"""The immutable definition of one form version: its fields, choice lists and languages."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from types import MappingProxyType
from typing import Any

from forms.types import CONTAINER_TYPES, FIELD_TYPES, META_FIELDS

Texts = Mapping[str, str]
EMPTY: Texts = MappingProxyType({})


def _empty() -> Texts:
    return EMPTY


class DefinitionError(ValueError):
    """A form definition that cannot be built; the message names the field and the problem."""


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice of a list: its name, label per language and extra columns for filters."""

    name: str
    label: Texts = dc_field(default_factory=_empty)
    extra: Mapping[str, str] = dc_field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a form version (questions, groups and repeats alike)."""

    name: str
    type: str
    label: Texts = dc_field(default_factory=_empty)
    hint: Texts = dc_field(default_factory=_empty)
    media: Mapping[str, Texts] = dc_field(default_factory=_empty)
    required: str | None = None
    required_message: Texts = dc_field(default_factory=_empty)
    relevant: str | None = None
    constraint: str | None = None
    constraint_message: Texts = dc_field(default_factory=_empty)
    readonly: bool = False
    default: str | None = None
    calculation: str | None = None
    choice_list: str | None = None
    options: tuple[Choice, ...] = ()
    choice_filter: str | None = None
    or_other: bool = False
    appearance: str | None = None
    reference: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    min_date: str | None = None
    max_date: str | None = None
    repeat_count: str | None = None
    parameters: Mapping[str, str] = dc_field(default_factory=_empty)
    source_type: str | None = None
    bind: Mapping[str, str] = dc_field(default_factory=_empty)
    other_of: str | None = None
    parent: str | None = None
    repeat: str | None = None
    path: tuple[str, ...] = ()

    @property
    def choices(self) -> tuple[str, ...]:
        """The names of the field's choices, in list order."""
        return tuple(choice.name for choice in self.options)

    @property
    def xml_name(self) -> str:
        """The element name inside its group (the key may be a path when names repeat)."""
        return self.path[-1] if self.path else self.name

    @property
    def holds_value(self) -> bool:
        return self.type not in CONTAINER_TYPES and self.type != "note"


@dataclass(frozen=True, slots=True)
class FormVersion:
    """One immutable version of a form; `fields` are flat, in document order."""

    form_id: str
    version: int
    title: Texts
    fields: Mapping[str, Field]
    choice_lists: Mapping[str, tuple[Choice, ...]] = dc_field(default_factory=_empty)
    default_language: str | None = None
    settings: Mapping[str, str] = dc_field(default_factory=_empty)
    languages: tuple[str, ...] = ()
    repeats: tuple[str, ...] = ()
    checkers: Mapping[str, Callable[[str, Any], Any]] = dc_field(
        default_factory=_empty, repr=False, compare=False
    )
    compiled: Any = dc_field(default=None, repr=False, compare=False)

    def field(self, name: str) -> Field | None:
        """The field called `name`, or None."""
        return self.fields.get(name)

    def children(self, parent: str | None) -> Iterator[Field]:
        """The fields directly inside `parent` (None: the top level)."""
        return (f for f in self.fields.values() if f.parent == parent)

    def value_fields(self) -> Iterator[Field]:
        """Every field that holds a value."""
        return (f for f in self.fields.values() if f.holds_value)

    @property
    def key(self) -> tuple[str, int]:
        return (self.form_id, self.version)


def is_meta_field(name: object) -> bool:
    """True for the fields every record carries (`_parent`, `_group`, `_order`, `_deleted`)."""
    return isinstance(name, str) and name in META_FIELDS


def check_type_name(name: str, field_type: str) -> None:
    if field_type not in FIELD_TYPES:
        raise DefinitionError(f"field {name!r}: unknown type {field_type!r}")
