"""Files that appear whole or not at all: written next to their destination, then renamed into place.

:func:`commit_together` replaces several files as one step (a dataset and its registry entry): either every
file has its new content or every file keeps its old one, and no temp file is left behind on any error path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from lf_reasoning.errors import UserError


def _write_error(path: Path, err: OSError) -> UserError:
    hint = {
        28: " (the disk is full: free space, or write to another --dataset-dir/--out)",  # ENOSPC
        27: " (the file-size limit was reached: raise it with ulimit -f, or write less)",  # EFBIG
        122: " (the disk quota is exhausted)",  # EDQUOT
    }.get(err.errno or 0, "")
    return UserError(f"cannot write {path}: {err.strerror}{hint}; nothing was changed")


class AtomicFile:
    """A file written as a temp file beside ``path``. :meth:`commit` renames it into place; leaving the
    ``with`` block without a commit (an error, Ctrl-C) removes it, so ``path`` keeps its previous content.
    A failed write (full disk, file-size limit) is a :class:`UserError` naming ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            fd, self._tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as err:
            raise UserError(f"cannot write {path}: {err.strerror}") from err
        # mkstemp creates the file 0600; give it the mode a plain open() would (or the replaced file's)
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(self._tmp, mode)
        self.file: IO[bytes] = os.fdopen(fd, "wb", buffering=1 << 20)
        self.lines = 0
        self._state = "open"  # → "ready" (flushed, synced, closed) → "done" (renamed into place)

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as err:
            raise _write_error(self.path, err) from None

    def write_line(self, line: bytes) -> None:
        self.write(line + b"\n")
        self.lines += 1

    def prepare(self) -> None:
        """Flush and sync the temp file: after this only the rename is left."""
        if self._state != "open":
            return
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        except OSError as err:
            raise _write_error(self.path, err) from None
        self._state = "ready"

    def commit(self) -> None:
        commit_together([self])

    def _discard(self) -> None:
        if self._state == "open":
            with contextlib.suppress(OSError):  # the buffered tail could not be written: the temp file goes anyway
                self.file.close()
        if self._state != "done":
            Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._discard()


def commit_together(files: Sequence[AtomicFile]) -> None:
    """Rename every prepared temp file into place, all or none: each replaced file is kept as a hard-linked
    backup until the last rename succeeded, and put back if one fails."""
    for f in files:
        f.prepare()
    backups: list[tuple[AtomicFile, str | None]] = []
    try:
        for current in files:
            failed = current.path
            backups.append((current, _backup(current.path)))
            os.replace(current._tmp, current.path)
            current._state = "done"
    except OSError as err:
        for f, backup in reversed(backups):
            if f._state != "done":
                continue
            if backup is None:
                f.path.unlink(missing_ok=True)
            else:
                os.replace(backup, f.path)
            f._state = "ready"  # its temp file is gone: _discard has nothing left to remove
        raise UserError(f"cannot replace {failed}: {err.strerror}; nothing was changed") from err
    finally:
        for _, backup in backups:
            if backup is not None:
                Path(backup).unlink(missing_ok=True)


def _backup(path: Path) -> str | None:
    """A second name for ``path``'s current content (None when there is no such file)."""
    if not path.exists():
        return None
    backup = tempfile.mktemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old")
    try:
        os.link(path, backup)
    except OSError:  # a filesystem without hard links
        shutil.copy2(path, backup)
    return backup


def write_atomic(path: Path, data: bytes) -> None:
    with AtomicFile(path) as out:
        out.write(data)
        out.commit()
