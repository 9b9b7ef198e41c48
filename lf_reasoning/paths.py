"""One rule for every file a command writes, checked before anything is read or written.

A file a command writes (a *target*) must not be one of its inputs, lie inside an input folder (the next run
would read it back), be another target or a file the command must keep (the registry), nor replace an existing
file that lf-reasoning did not write unless the user says ``--force``. Only the last is overridable: the others
would destroy what the run reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from lf_reasoning.errors import UserError

_PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Target:
    """A file about to be written: ``label`` is how the user named it (``--rejects``, ``the data file``);
    ``ours`` tells, for an existing file, whether lf-reasoning wrote it (None: any existing file may be replaced,
    e.g. a file the command resumes or has checked itself)."""

    label: str
    path: Path
    ours: Callable[[Path], bool] | None = None
    foreign: str = "was not written by lf-reasoning"  # what an existing file that is not ours is told apart by


def check_targets(
    targets: Sequence[Target],
    *,
    inputs: Sequence[Path | str] = (),
    sources: Sequence[str] = (),
    force: bool = False,
    force_hint: str = "pass --force to overwrite it",
) -> None:
    """Refuse (a :class:`UserError` naming the path and the fix) when a target collides with an input file, an
    input folder among ``sources``, another target, or an existing file that is not ours (unless ``force``)."""
    folders = [Path(src) for src in sources if Path(src).is_dir()]
    for i, target in enumerate(targets):
        path = target.path
        if path.is_dir():
            raise UserError(f"{target.label} {path}: is a directory; give a file name")
        if path.exists() and not path.is_file():  # /dev/null, a FIFO: the rename into place would replace it
            raise UserError(f"{target.label} {path}: is not a regular file (a device or a pipe); give a file path")
        for src in inputs:
            if isinstance(src, Path) and same_file(path, src):
                raise UserError(
                    f"{target.label} {path} is also an input: writing it would destroy what this run reads. "
                    "Choose another path."
                )
        for folder in folders:
            if inside(path, folder):
                raise UserError(
                    f"{target.label} {path} is inside the input folder {folder}: the next run would read it back "
                    f"as input. Write it outside {folder}, or name the input files instead of the folder."
                )
        for other in targets[:i]:
            if same_file(path, other.path):
                raise UserError(
                    f"{other.label} and {target.label} are the same file ({path}); give them different paths"
                )
        if not force and target.ours is not None and path.is_file() and not target.ours(path):
            raise UserError(f"{target.label} {path} exists and {target.foreign}; {force_hint}, or choose another path")


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (hard and symbolic links included), existing or not."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def is_png(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_PNG)) == _PNG


def jsonl_with(*keys: str) -> Callable[[Path], bool]:
    """An ``ours`` check: the file is empty, or its first line is a JSON object with every key in ``keys``."""

    def check(path: Path) -> bool:
        with open(path, "rb") as f:
            first = next((line for line in f if line.strip()), None)
        if first is None:
            return True
        try:
            record = orjson.loads(first)
        except orjson.JSONDecodeError:
            return False
        return isinstance(record, dict) and all(key in record for key in keys)

    return check


REJECTS_FILE = jsonl_with("where", "reason", "detail")  # convert's rejects, distill/score/grade failures
