"""Files that appear whole or not at all: written next to their destination, then renamed into place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from lf_reasoning.errors import UserError


class AtomicFile:
    """A file written as a temp file beside ``path``. :meth:`commit` renames it into place; leaving the
    ``with`` block without a commit (an error, Ctrl-C) removes it, so ``path`` keeps its previous content."""

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
        self._done = False

    def write_line(self, line: bytes) -> None:
        self.file.write(line)
        self.file.write(b"\n")
        self.lines += 1

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self._tmp, self.path)
        self._done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        if not self._done:
            Path(self._tmp).unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    with AtomicFile(path) as out:
        out.file.write(data)
        out.commit()
