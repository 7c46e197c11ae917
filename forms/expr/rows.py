"""How the rows of repeats hang together: each nested row under one row of its repeat's parent.

A row of a nested repeat names the row it belongs to in `_parent` (that row's `_id`).
Rows are kept in the order given; a row's position is its place among the rows under
the same parent row, counted from 1, as `position(..)` gives it in ODK.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

# A repeat and the repeat that holds it (None at the top level), outermost first.
Lineage = tuple[tuple[str, str | None], ...]
# Per repeat, the row an expression is evaluated in and its position among its siblings.
Stack = dict[str, tuple[Mapping[str, Any], int]]


def repeat_lineage(version: Any, repeat: str) -> Lineage:
    """`repeat` and the repeats that enclose it, outermost first, each with its own parent."""
    levels = []
    name: str | None = repeat
    while name is not None:
        parent = version.fields[name].repeat
        levels.append((name, parent))
        name = parent
    return tuple(reversed(levels))


class RepeatRows:
    """The rows of one record's repeats, with their children found by `_parent` on first use."""

    __slots__ = ("children_of", "rows")

    def __init__(self, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self.rows = rows
        # Per nested repeat: the id() of a parent row -> indexes of its rows in `rows`.
        self.children_of: dict[str, dict[int, list[int]]] = {}

    def children(self, repeat: str, parent: str | None, row: Mapping | None) -> Sequence[int]:
        """Indexes into `rows[repeat]` of the rows under `row`, a row of `parent`.

        A top-level repeat (`parent` None) has every row of the record.
        """
        if parent is None:
            return range(len(self.rows.get(repeat, ())))
        links = self.children_of.get(repeat)
        if links is None:
            links = self.children_of[repeat] = _link(self.rows, repeat, parent)
        return links.get(id(row), ())

    def under(self, row: Mapping | None, levels: Lineage) -> list[Mapping[str, Any]]:
        """The rows reached from `row` (None: the record) going down through `levels`."""
        reached: list[Any] = [row]
        for repeat, parent in levels:
            items = self.rows.get(repeat, ())
            reached = [
                items[index] for above in reached for index in self.children(repeat, parent, above)
            ]
        return reached


def _link(rows: Mapping[str, Sequence[Mapping]], repeat: str, parent: str) -> dict[int, list[int]]:
    """The rows of `repeat` grouped under the rows of `parent` whose `_id` they name.

    A row whose `_parent` names no row of `parent` (it was deleted, or the link is not
    an id) belongs to no row, so it is not part of the record. When several rows share
    an `_id`, the last one holds the children, so each row has one parent at most.
    """
    owners: dict[Any, int] = {}
    for owner in rows.get(parent, ()):
        key = owner.get("_id")
        if key is not None and isinstance(key, Hashable):
            owners[key] = id(owner)
    links: dict[int, list[int]] = {}
    for index, row in enumerate(rows.get(repeat, ())):
        key = row.get("_parent")
        if isinstance(key, Hashable) and key in owners:
            links.setdefault(owners[key], []).append(index)
    return links
