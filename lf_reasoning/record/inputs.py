"""Where a command's records come from: SRC arguments, ``--format``, ``--map`` and ``--split``, read the same way
by convert, distill, verify and score (the format is detected on each file's first record)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lf_reasoning.record.formats import Format, detect_format, resolve_reader
from lf_reasoning.record.sources import Raw, iter_file, iter_hub, resolve_sources


@dataclass(frozen=True)
class Inputs:
    """The input options of a command. ``prompts``: the command sends prompts (distill), so a table with only a
    prompt column is accepted and ``--map`` needs only ``prompt``. Invalid choices raise
    :class:`~lf_reasoning.errors.UserError` at once."""

    sources: tuple[str, ...]
    fmt: str = "auto"
    mapping: tuple[str, ...] = ()
    hub_split: str = "train"
    prompts: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "mapping", tuple(self.mapping))
        self.forced  # noqa: B018 — validates --format/--map now, not on the first record

    def __getstate__(self) -> dict[str, object]:
        # the cached reader may hold closures (--map): worker processes rebuild it
        return {k: v for k, v in self.__dict__.items() if k != "forced"}

    @cached_property
    def forced(self) -> Format | None:
        """The reader chosen by ``--format``/``--map``; ``None``: detect it per file."""
        return resolve_reader(self.fmt, self.mapping, prompts=self.prompts)

    def reader(self, name: str) -> Format:
        """The format called ``name`` (as yielded by :func:`iter_inputs`), e.g. rebuilt in a worker process."""
        if self.forced is not None and self.forced.name == name:
            return self.forced
        found = resolve_reader(name, (), prompts=self.prompts)
        assert found is not None, "records reach a reader only after their format is known"
        return found

    def files(self) -> list[Path | str]:
        """The local files (folders expanded) and hub names, checked to exist."""
        return resolve_sources(self.sources)


def iter_inputs(
    inputs: Inputs,
    *,
    lazy: bool = False,
    on_format: Callable[[str, Format, str], None] = lambda src, fmt, why: None,
    sources: list[Path | str] | None = None,
) -> Iterator[tuple[str, Raw, Format | None]]:
    """``(where, raw, format)`` for every raw record of every input, in order.

    The format is ``--format``/``--map``'s or detected on each file's first parsed record (reported once per
    file to ``on_format(src, format, why)``); it is ``None`` only for unparseable records before the first good
    one. With ``lazy``, JSON Lines come in unparsed blocks after the first record (see ``iter_file``).
    """
    for src in sources if sources is not None else inputs.files():
        records = iter_file(src, lazy=lazy) if isinstance(src, Path) else iter_hub(src, split=inputs.hub_split)
        fmt = inputs.forced
        if fmt is not None:
            on_format(str(src), fmt, "--format" if not inputs.mapping else "--map")
        for where, raw in records:
            if fmt is None and isinstance(raw, dict):
                fmt, why = detect_format(raw, where, prompts=inputs.prompts)
                on_format(str(src), fmt, why)
            yield where, raw, fmt
