"""The files of a resumable run: OUT (append-only, locked, resumed) and the failures file.

Every record is appended with one ``write()`` the moment it completes, so a kill leaves at most one partial last
line; the next run cuts that line away and skips every record already there. An exclusive lock on OUT keeps two
runs from writing it at once. Requests that fail for good go to the failures file, never to OUT.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import orjson

from lf_reasoning.errors import UserError

K = TypeVar("K", bound=Hashable)


class Output(Generic[K]):
    """OUT opened for appending under an exclusive lock; the keys of the records already there are in ``done``.

    ``key_of`` reads a record's key (a KeyError/TypeError means the line is not ours); ``command`` names the
    command that writes such files, for messages. ``made_with`` reads the settings a record was made with (option →
    value; an option it lacks is not compared): a record made with other values than ``this_run`` refuses the
    resume, which would skip that record instead of redoing it with this run's settings.
    """

    def __init__(
        self,
        path: Path,
        log: Callable[[str], None],
        *,
        key_of: Callable[[dict[str, Any]], K],
        command: str,
        made_with: Callable[[dict[str, Any]], Mapping[str, Any]] = lambda record: {},
        this_run: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self._log = log
        self._key_of = key_of
        self._command = command
        self._made_with = made_with
        self._this_run = this_run or {}
        self.done: set[K] = set()
        self.first: dict[str, Any] | None = None

    def __enter__(self) -> Output[K]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._created = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise UserError(f"--out {self.path}: cannot write it: {err.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._load()
        except BlockingIOError:
            os.close(self._fd)
            raise UserError(
                f"{self.path} is being written by another {self._command} run; wait for it to end "
                "or choose another --out"
            ) from None
        except BaseException:
            os.close(self._fd)
            raise
        return self

    def _load(self) -> None:
        """Read the records of an earlier run; cut away a partial last line left by a kill."""
        end = 0  # offset just past the last complete line
        with open(self._fd, "rb", closefd=False) as f:
            f.seek(0)
            for lineno, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    os.ftruncate(self._fd, end)
                    self._log(
                        f"{self.path}: removed a partial last line ({len(line)} bytes) left by an interrupted run"
                    )
                    break
                end += len(line)
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                    key = self._key_of(record)
                except (orjson.JSONDecodeError, TypeError, KeyError):
                    raise UserError(
                        f"{self.path}:{lineno}: not a record written by {self._command}; choose another --out"
                    ) from None
                self._check_made_with(record, lineno)
                self.done.add(key)
                if self.first is None:
                    self.first = record

    def _check_made_with(self, record: dict[str, Any], lineno: int) -> None:
        for option, theirs in self._made_with(record).items():
            ours = self._this_run.get(option)
            if theirs is not None and option in self._this_run and theirs != ours:
                raise UserError(
                    f"{self.path}:{lineno} was made with {option} {theirs!r}, this run has {ours!r}: resuming would "
                    f"skip its records instead of redoing them. Run with the same {option}, write to another --out, "
                    f"or delete {self.path} to start over"
                )

    def write(self, data: bytes) -> None:
        """Append one whole line (a kill -9 cannot split a single write of a regular file)."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as err:
            raise UserError(f"cannot write {self.path}: {err.strerror}") from None

    def __exit__(self, *exc: object) -> None:
        try:
            if self._created and os.fstat(self._fd).st_size == 0:
                self.path.unlink(missing_ok=True)  # nothing was written: leave no trace of a failed start
            else:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)


class Failures:
    """The failures file: created at the first failure, a line flushed per failure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def write(self, line: bytes) -> None:
        if self._file is None:
            try:
                self._file = open(self.path, "wb")  # noqa: SIM115 — kept open for the run, closed in __exit__
            except OSError as err:
                raise UserError(f"cannot write the failures file {self.path}: {err.strerror}") from None
        self._file.write(line)
        self._file.flush()

    def __enter__(self) -> Failures:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
