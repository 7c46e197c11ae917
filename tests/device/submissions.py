"""Real OpenRosa submissions read as the values a device user enters, field by field.

An instance's elements follow the form's groups and repeats; each element is matched to
the field at the same path, so a question whose name repeats in several groups (a loop)
finds its own field. `meta` and Ona's `formhub` are the collecting server's, not the
user's: they are left out. Media hold a file name in an instance; they are left out
unless the file is at hand, and then held as the attachment a device would announce.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from forms import FormVersion
from forms.types import ATTACHMENT_TYPES
from tests.conftest import REALFORMS

FORMS = REALFORMS / "forms"
SUBMISSIONS = REALFORMS / "submissions"
SERVER_ONLY = frozenset({"meta", "formhub"})
POINT_KEYS = ("latitude", "longitude", "altitude", "accuracy")


@dataclass
class Row:
    """One repeat row: its repeat, its values and the rows of repeats inside it."""

    group: str
    values: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)


@dataclass
class Submission:
    values: dict[str, Any]
    rows: list[Row]


def form_file(name: str) -> Path:
    return next(FORMS.rglob(name))


def submission_file(tail: str) -> Path:
    """The one submission whose path ends with `tail` (a file name and its folders)."""
    (found,) = (p for p in SUBMISSIONS.rglob("*.xml") if p.as_posix().endswith("/" + tail))
    return found


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def typed(version: FormVersion, name: str, text: str, folder: Path) -> Any:
    """The JSON value a device holds for an instance's text (None: nothing to enter)."""
    kind = version.fields[name].type
    if kind == "integer":
        return int(text)
    if kind == "decimal":
        return float(text)
    if kind == "select_multiple":
        return text.split()
    if kind == "geopoint":
        return dict(zip(POINT_KEYS, (float(part) for part in text.split()), strict=False))
    if kind in ATTACHMENT_TYPES:
        media = folder / text
        if not media.exists():
            return None
        data = media.read_bytes()
        content_type = mimetypes.guess_type(media.name)[0] or "application/octet-stream"
        return {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "content_type": content_type,
        }
    return text


def read_submission(version: FormVersion, path: Path) -> Submission:
    """The values and repeat rows of one instance of `version`."""
    by_path = {f.path: f for f in version.fields.values()}
    top = Submission({}, [])

    def walk(element: Element, prefix: tuple[str, ...], values: dict, rows: list) -> None:
        for child in element:
            name = _local(child.tag)
            if not prefix and name in SERVER_ONLY:
                continue
            found = by_path.get((*prefix, name))
            if found is None:
                raise AssertionError(f"{path.name}: no field at {'/'.join((*prefix, name))}")
            if found.type == "repeat":
                row = Row(found.name)
                rows.append(row)
                walk(child, found.path, row.values, row.rows)
            elif found.type == "group":
                walk(child, found.path, values, rows)
            elif found.type != "note" and (child.text or "").strip():
                value = typed(version, found.name, (child.text or "").strip(), path.parent)
                if value is not None:
                    values[found.name] = value

    walk(ElementTree.parse(path).getroot(), (), top.values, top.rows)
    return top
