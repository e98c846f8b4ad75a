"""A sync in its own process, for the SIGKILL cases: ``python -m tests.chaos.worker '<json>'``.

The JSON holds ``config`` (the overrides ``run_sync`` would pass) and ``full``. The flow talks to
the Prefect API named by ``PREFECT_API_URL`` (the test harness's server); the kill point comes
from ``LMS_SYNC_CHAOS_KILL_AT`` (``transforms/chaos.py``).
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    body = json.loads(sys.argv[1])
    from flows.sync import sync_institution

    state = sync_institution(
        window=None, overrides=body["config"], full=body.get("full", False), return_state=True
    )
    print(json.dumps({"state": state.type.value}))
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    raise SystemExit(main())
