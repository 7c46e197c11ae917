"""The built-in forms for community grid work, in Chinese and English.

Their sources are the JSON definitions beside this module; each is built (and so
checked) once, on first use.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from forms.definition import from_dict
from forms.model import FormVersion

SOURCES = Path(__file__).parent
NAMES = ("household", "household_visit", "hazard_check", "mediation_record")


def source_path(name: str) -> Path:
    """The JSON definition file of a built-in form."""
    if name not in NAMES:
        raise KeyError(f"no built-in form {name!r}")
    return SOURCES / f"{name}.json"


def definition(name: str) -> dict:
    """The JSON definition of a built-in form (a fresh copy)."""
    return json.loads(source_path(name).read_text(encoding="utf-8"))


@cache
def load(name: str) -> FormVersion:
    """The built-in form `name` as a FormVersion."""
    return from_dict(definition(name))


def all_forms() -> dict[str, FormVersion]:
    """Every built-in form by id, referenced forms first."""
    return {name: load(name) for name in NAMES}


def __getattr__(name: str) -> FormVersion:
    # `forms.builtin.household` and friends, built on first use.
    if name in NAMES:
        return load(name)
    raise AttributeError(name)
