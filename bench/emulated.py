"""An emulator in its own process for benchmarks, so the server never shares the client's GIL."""

from __future__ import annotations

import multiprocessing
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


class CanvasInProcess:
    """A Canvas emulator in a child process whose institution the benchmark can still change.

    ``apply_changes`` and ``stats`` are forwarded to the child over a pipe, so a benchmark can
    change the data between syncs (as ``Institution.apply_changes`` does in tests) while the
    server's CPU stays off the GIL of the flow being measured.
    """

    def __init__(self, institution: dict[str, int], settings: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_canvas, args=(child, institution, settings))
        self._proc.start()
        self.base_url: str = self._conn.recv()

    def _call(self, *message: Any) -> Any:
        self._conn.send(message)
        return self._conn.recv()

    def apply_changes(self, **kwargs: Any) -> dict[str, int]:
        return self._call("apply_changes", kwargs)

    def stats(self) -> dict[str, Any]:
        return self._call("stats", {})

    def counts(self) -> dict[str, int]:
        return self._call("counts", {})

    def __enter__(self) -> CanvasInProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send(("stop", {}))
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()


def _serve_canvas(conn: Any, institution: dict[str, int], settings: Any) -> None:
    from emulators.canvas.institution import Institution
    from emulators.canvas.server import CanvasEmulator

    inst = Institution(**institution)
    with CanvasEmulator(inst, settings=settings) as emu:
        conn.send(emu.base_url)
        while True:
            command, kwargs = conn.recv()
            if command == "stop":
                return
            if command == "apply_changes":
                conn.send(inst.apply_changes(**kwargs))
            elif command == "stats":
                conn.send(emu.stats.snapshot())
            elif command == "counts":
                conn.send(inst.counts())
