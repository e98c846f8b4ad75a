"""Local-filesystem primitives for publishing a directory once: hash, fsync, rename-if-absent.

Private to ``transforms.staging``; kept apart so the staging module reads as the partition
protocol rather than as syscalls.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def hash_and_fsync(path: Path) -> str:
    """Read ``path`` once in 1 MiB chunks: return its sha256 hex digest and fsync it to disk."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it before returning."""
    with path.open("xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Persist a directory's entries (new names, renames); a no-op where that is unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def rename_if_absent(src: Path, dst: Path) -> bool:
    """Atomically rename directory ``src`` to ``dst``; False if ``dst`` already exists.

    POSIX ``rename`` replaces an *empty* destination directory silently, so existence is checked
    first; a destination that appears between the check and the rename is non-empty (it was itself
    published by rename), which makes the rename fail with ENOTEMPTY/EEXIST — reported as False.
    """
    if dst.exists():
        return False
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or dst.exists():
            return False
        raise
    fsync_dir(dst.parent)
    return True
