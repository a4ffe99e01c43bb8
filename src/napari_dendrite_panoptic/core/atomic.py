"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a crash) never sees a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name stays within the 255 bytes a file name may have, whatever the final one
    prefix = f".{final.name[:120]}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_STATUS = "/proc/self/status"


def _read_umask() -> int:
    """The process umask, read without ever setting it to 0 (once, at import).

    Linux says it in ``/proc/self/status``. Elsewhere the only way is to set a mask and put the
    old one back: the mask set for that moment is 0o077, so a file another thread creates then is
    born private, never world-writable.
    """
    try:
        with open(_STATUS, encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


# read once, while the module is imported (under the import lock: no two threads race here)
_UMASK = _read_umask()


def _umask() -> int:
    return _UMASK


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the final path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
