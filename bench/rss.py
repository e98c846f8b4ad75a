"""Peak resident memory of one call, measured in a fresh process of its own.

``measure(fn, *args)`` runs ``fn`` (a module-level function, so it pickles by reference) in a new
'spawn' process and returns ``(result, peak_rss_mb)`` read inside that child.

On Linux the peak comes from ``VmHWM`` in ``/proc/self/status`` rather than
``getrusage(RUSAGE_SELF).ru_maxrss``: the kernel carries the *parent's* high-water mark into a
child across fork/vfork + exec, so a child of a 800 MB parent reports ``ru_maxrss`` ≈ 810 MB while
its own ``VmHWM`` is 9 MB (measured here). ``VmHWM`` belongs to the child's own address space.
Elsewhere ``ru_maxrss`` is used (bytes on macOS, KiB on Linux/BSD).
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def measure(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> tuple[T, float]:
    """Run ``fn(*args, **kwargs)`` in a fresh process; return (result, that process's peak MB)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_run_measured, fn, args, kwargs).result()


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (MiB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def _run_measured(
    fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[T, float]:
    result = fn(*args, **kwargs)
    return result, peak_rss_mb()
