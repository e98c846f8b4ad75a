"""Crash testing: kill the process at a named point of a sync, deterministically.

The chaos suite (``tests/chaos/``) runs a sync in a subprocess with ``LMS_SYNC_CHAOS_KILL_AT`` set
and checks that the next run ends equal to the ground truth. The hook lives here, the lowest
layer that has such points, so staging (flows) and the loader (transforms) share it.
"""

from __future__ import annotations

import os
import signal

__all__ = ["chaos_kill"]


def chaos_kill(point: str) -> None:
    """Crash-test hook: SIGKILL this process when ``LMS_SYNC_CHAOS_KILL_AT`` names ``point``.

    Points: ``fetch:<domain>`` (before a course's domain is fetched), ``stage:<domain>`` (after
    its second page was written into the temp partition, before commit), ``load:<domain>`` (inside
    the domain's load transaction, before commit) and ``cursor:<domain>`` (after the data
    committed, before the cursor is written). ``LMS_SYNC_CHAOS_KILL_AFTER=N`` lets the point pass
    N times first. Unset in production: the check is one environment lookup.
    """
    wanted = os.environ.get("LMS_SYNC_CHAOS_KILL_AT")
    if not wanted or wanted != point:
        return
    remaining = int(os.environ.get("LMS_SYNC_CHAOS_KILL_AFTER", "0"))
    if remaining > 0:
        os.environ["LMS_SYNC_CHAOS_KILL_AFTER"] = str(remaining - 1)
        return
    os.kill(os.getpid(), signal.SIGKILL)
