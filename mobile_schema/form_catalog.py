"""The form versions a device holds, and the forms validator run on every local edit.

Definitions come from the forms bundle and live in the local store; each is built
once into a `forms.model.FormVersion`. An edit the validator refuses is never queued:
the device catches on the phone what the server would otherwise quarantine.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from forms.definition import from_dict
from forms.model import DefinitionError, FormVersion
from forms.validate import check_op


@dataclass(frozen=True)
class EditRefusal:
    """Why an edit may not be made: a quarantine reason code and a human detail."""

    reason: str
    detail: str


class FormCatalog:
    """The stored form versions, built on first use."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._built: dict[tuple[str, int], FormVersion] = {}

    def forget(self) -> None:
        """Drop the built versions (after a new forms bundle is stored)."""
        self._built.clear()

    def latest_version(self, form_id: str) -> int | None:
        row = self._connection.execute(
            "SELECT max(version) FROM forms WHERE form_id = ?", (form_id,)
        ).fetchone()
        return row[0]

    def version(self, form_id: str, version: int) -> FormVersion | None:
        """The built form version, or None when the device does not hold it."""
        key = (form_id, version)
        if key not in self._built:
            row = self._connection.execute(
                "SELECT definition FROM forms WHERE form_id = ? AND version = ?", key
            ).fetchone()
            if row is None:
                return None
            self._built[key] = from_dict(json.loads(row["definition"]))
        return self._built[key]

    def check(
        self, form_id: str, version: int, field: str, kind: str, value: Any
    ) -> EditRefusal | None:
        """None when the edit is valid for that form version, else why not."""
        try:
            built = self.version(form_id, version)
        except DefinitionError as error:
            return EditRefusal("unknown_form_version", f"{form_id} v{version}: {error}")
        if built is None:
            known = self.latest_version(form_id)
            reason = "unknown_form" if known is None else "unknown_form_version"
            return EditRefusal(reason, f"this device holds no form {form_id} v{version}")
        rejection = check_op(built, field, kind, value)
        if rejection is None:
            return None
        return EditRefusal(rejection.reason, rejection.detail)
