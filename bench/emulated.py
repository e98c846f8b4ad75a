"""An emulator in its own process for benchmarks, so the server never shares the client's GIL."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_LISTENING = re.compile(r"listening on (http://\S+)")


@contextmanager
def emulator_process(vendor: str, *args: str) -> Iterator[str]:
    """Start ``python -m emulators <vendor> --port 0 <args>``; yield its base URL; stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", vendor, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            raise RuntimeError(f"emulator did not start: {line!r}")
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
