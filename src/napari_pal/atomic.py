"""Atomic file writes: a kill at any moment leaves the old file or the new one, never half.

The new content goes to a temporary file beside the target (``.NAME.XXXXXXXX.partSUFFIX``,
a dot file, so dataset listings ignore it), is flushed to disk, and is then renamed over
the target in one step. A SIGKILL or power cut can leave such a temporary file behind, but
never a half-written target; ``clean_stale`` removes old leftovers.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# ".{name}.{8 random chars from mkstemp}.part{suffix}"
_PART = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part(\.[^.]*)?$")


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide, not thread-safe)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The existing file's permissions, else what a plain open() would give (0666 & ~umask)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible, nor needed, on Windows."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    If the body raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _mode_for(path))  # mkstemp makes 0600; keep the usual permissions
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def is_partial(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a temporary file left by ``atomic_path``."""
    return bool(_PART.match(Path(path).name))


def clean_stale(folder: str | os.PathLike, *, min_age_s: float = 3600.0) -> list[Path]:
    """Remove temporary files left under ``folder`` by killed writers; returns them.

    Only files named like ``atomic_path``'s temporaries and untouched for ``min_age_s``
    seconds are removed, so a write in progress elsewhere is not disturbed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed = time.time(), []
    for p in sorted(folder.rglob(".*.part*")):
        try:
            if is_partial(p) and p.is_file() and now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed
