"""What changed between two versions of a form: fields and choices."""

from __future__ import annotations

from dataclasses import dataclass, field

from forms.model import FormVersion


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """Fields added, removed and retyped; choices added and removed per field."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()
    choices_added: dict[str, tuple[str, ...]] = field(default_factory=dict)
    choices_removed: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (
            self.added or self.removed or self.retyped or self.choices_added or self.choices_removed
        )

    def as_dict(self) -> dict:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "retyped": [
                {"field": name, "from": before, "to": after} for name, before, after in self.retyped
            ],
            "choices_added": {name: list(items) for name, items in self.choices_added.items()},
            "choices_removed": {name: list(items) for name, items in self.choices_removed.items()},
        }


def diff_versions(old: FormVersion, new: FormVersion) -> VersionDiff:
    """The changes from `old` to `new`, in each version's field order."""
    added = tuple(name for name in new.fields if name not in old.fields)
    removed = tuple(name for name in old.fields if name not in new.fields)
    retyped = tuple(
        (name, old.fields[name].type, field_.type)
        for name, field_ in new.fields.items()
        if name in old.fields and old.fields[name].type != field_.type
    )
    choices_added: dict[str, tuple[str, ...]] = {}
    choices_removed: dict[str, tuple[str, ...]] = {}
    for name, field_ in new.fields.items():
        before = old.fields.get(name)
        if before is None or not (before.options or field_.options):
            continue
        old_names, new_names = before.choices, field_.choices
        gained = tuple(choice for choice in new_names if choice not in old_names)
        lost = tuple(choice for choice in old_names if choice not in new_names)
        if gained:
            choices_added[name] = gained
        if lost:
            choices_removed[name] = lost
    return VersionDiff(added, removed, retyped, choices_added, choices_removed)
