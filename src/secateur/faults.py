"""Named points where the fault tests stop a real process (kill -9) at a chosen moment.

`SECATEUR_PAUSE_AT=save` makes the process announce `secateur-paused-at save` on stderr and sleep
when it reaches that point, so a test can kill it exactly there, deterministically, and then look at
what a crash at that moment leaves on disk. Unset (always, outside the tests) it costs one lookup.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "SECATEUR_PAUSE_AT"


def pause_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        print(f"secateur-paused-at {name}", file=sys.stderr, flush=True)
        time.sleep(3600)
