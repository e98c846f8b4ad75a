"""``python -m bench [name ...]``: run ``bench/bench_<name>.py`` benchmarks, record their figures.

Each benchmark module exposes ``run() -> list[Figure]``; every figure carries a baseline measured
side by side in the same run. With no names, all benchmarks run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import bench
from bench.results import Figure, record

_PREFIX = "bench_"


def available() -> list[str]:
    return sorted(
        m.name.removeprefix(_PREFIX)
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith(_PREFIX)
    )


def main(argv: list[str]) -> int:
    names = available()
    wanted = [a.removeprefix(_PREFIX) for a in argv] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
        return 2
    figures: list[Figure] = []
    failed = []
    for name in wanted:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{_PREFIX}{name}")
            figures += module.run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"   ({time.perf_counter() - started:.1f}s)", flush=True)
    if figures:
        print()
        record(figures)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
