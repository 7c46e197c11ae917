"""The server process's garbage collector settings (server/heap.py)."""

import subprocess
import sys

from server.heap import YOUNG_THRESHOLD


def test_settle_freezes_the_start_up_heap_and_raises_the_young_threshold():
    # In a process of its own: the settings are process-wide.
    probe = (
        "import gc; from server.heap import settle; before = gc.get_threshold(); settle();"
        " after = gc.get_threshold();"
        " print(after[0], after[1:] == before[1:], gc.get_freeze_count() > 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [str(YOUNG_THRESHOLD), "True", "True"]
