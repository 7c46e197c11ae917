"""Strings that a database can store as text: no NUL, no lone UTF-16 surrogate.

Python's JSON decoder turns `"\\u0000"` into a NUL character, which PostgreSQL's text
columns refuse (SQLite keeps it), and an escaped surrogate that is not half of a pair
(`"\\ud800"`) into a string no UTF-8 encoder accepts: either fails wherever it is
stored, hashed or shown. Form files, request bodies and the device's edits are
checked for such strings first.
"""

from __future__ import annotations

import re
from typing import Any

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_path(value: Any) -> str | None:
    """The JSON Pointer of a string (or key) in `value` holding NUL or a surrogate.

    A key holding one is named with it escaped (`\\u0000`, `\\ud800`), so that the
    path itself can be sent as UTF-8.
    """
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if type(item) is str:
            if UNSTORABLE.search(item):
                return path
        elif type(item) is list:
            pending.extend((f"{path}/{index}", inner) for index, inner in enumerate(item))
        elif type(item) is dict:
            for key, inner in item.items():
                step = f"{path}/{key.replace('~', '~0').replace('/', '~1')}"
                if UNSTORABLE.search(key):
                    return UNSTORABLE.sub(lambda found: f"\\u{ord(found[0]):04x}", step)
                pending.append((step, inner))
    return None
