"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a crash) never sees a half-written file under its final name. One file:
:func:`atomic_path`, :func:`atomic_write_text`; a set of files that changes together (all or
nothing): :func:`staged_outputs`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
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


@contextlib.contextmanager
def staged_outputs(
    final: Mapping[str, str | os.PathLike],
    prefix: str,
    suffix: str = "",
    record: str | None = None,
) -> Iterator[Path]:
    """Yield a new hidden staging folder in the folder of the ``final`` paths (one folder,
    created if missing), where each output is written under its final name.

    When the block ends without an error the staged set replaces the old one: every final path
    with no staged file is removed, then each staged file is renamed to its final path in the
    order of ``final`` (same folder, so each rename is atomic). ``record`` names the key of the
    run record: a set staged without one is refused (RuntimeError, nothing moved); the old
    record is removed before anything else and the new one is moved last, so a set caught
    half-moved has none. The staging folder (``prefix``, which starts with a
    dot, a random part, ``suffix``) is then removed with whatever else it holds. On an error it is removed and the
    old outputs are left as they were; a killed process leaves it, hidden.
    """
    final = {kind: Path(path) for kind, path in final.items()}
    folders = {path.parent for path in final.values()}
    if len(folders) != 1:
        raise ValueError(f"staged outputs must share one folder, not {sorted(folders)}")
    folder = folders.pop()
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder))
    try:
        yield stage
        staged = {kind: stage / path.name for kind, path in final.items()}
        written = [kind for kind, path in staged.items() if path.is_file()]
        if record is not None:
            if record not in written:
                raise RuntimeError(f"the run record '{final[record].name}' was not written")
            final[record].unlink(missing_ok=True)
        for kind, path in final.items():
            if kind not in written:
                path.unlink(missing_ok=True)
        for kind in written:
            if kind != record:
                os.replace(staged[kind], final[kind])
        if record is not None:
            os.replace(staged[record], final[record])
    finally:
        shutil.rmtree(stage, ignore_errors=True)


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
