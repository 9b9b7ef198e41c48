"""Where a command's records come from: SRC arguments, ``--format``, ``--map`` and ``--split``, read the same way
by convert, distill, verify and score (the format is detected on each file's first record)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.fields_seen import suggest_map
from lf_reasoning.record.formats import Format, detect_format, resolve_reader
from lf_reasoning.record.formats.columns import parse_mapping
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
        return {k: v for k, v in self.__dict__.items() if k not in ("forced", "reference_column")}

    @cached_property
    def forced(self) -> Format | None:
        """The reader chosen by ``--format``/``--map``; ``None``: detect it per file."""
        return resolve_reader(self.fmt, () if self.reference_column else self.mapping, prompts=self.prompts)

    @cached_property
    def reference_column(self) -> str | None:
        """distill's ``--map reference=COLUMN`` given alone: the shape is still detected (or ``--format``), and
        the reference answers come from COLUMN instead of the source's answers."""
        if not self.prompts or not self.mapping:
            return None
        mapping = parse_mapping(self.mapping, required=())
        return mapping["reference"] if mapping.keys() == {"reference"} else None

    def reader(self, name: str) -> Format:
        """The format called ``name`` (as yielded by :func:`iter_inputs`), e.g. rebuilt in a worker process."""
        if self.forced is not None and self.forced.name == name:
            return self.forced
        found = resolve_reader(name, (), prompts=self.prompts)
        assert found is not None, "records reach a reader only after their format is known"
        return found

    def files(self) -> list[Path | str]:
        """The local files (folders expanded) and hub names, checked to exist."""
        return resolve_sources(self.sources, split=self.hub_split)


def iter_inputs(
    inputs: Inputs,
    *,
    lazy: bool = False,
    on_format: Callable[[str, Format, str], None] = lambda src, fmt, why: None,
    on_first: Callable[[str, str, dict[str, Any], Format], None] = lambda src, where, record, fmt: None,
    sources: list[Path | str] | None = None,
) -> Iterator[tuple[str, Raw, Format | None]]:
    """``(where, raw, format)`` for every raw record of every input, in order.

    The format is ``--format``/``--map``'s or detected on each file's first parsed record (reported once per
    file to ``on_format(src, format, why)``); it is ``None`` only for unparseable records before the first good
    one. With ``lazy``, JSON Lines come in unparsed blocks after the first record (see ``iter_file``).
    ``on_first(src, where, record, format)`` sees each file's first parsed record (convert's column checks). A
    ``--format``/``--map`` needing a key that record lacks stops the run with the ``--map`` its keys suggest (a
    null value is that record's fault only: it is rejected like any bad record).
    """
    for src in sources if sources is not None else inputs.files():
        records = iter_file(src, lazy=lazy) if isinstance(src, Path) else iter_hub(src, split=inputs.hub_split)
        fmt = inputs.forced
        if fmt is not None:
            on_format(str(src), fmt, "--map" if fmt.name == "columns" else "--format")
        first = True
        for where, raw in records:
            if first and isinstance(raw, dict):
                first = False
                if fmt is None:
                    fmt, why = detect_format(raw, where, prompts=inputs.prompts)
                    on_format(str(src), fmt, why)
                else:
                    _check_forced(fmt, raw, where, inputs.prompts)
                on_first(str(src), where, raw, fmt)
            yield where, raw, fmt


def _check_forced(fmt: Format, record: dict[str, Any], where: str, prompts: bool) -> None:
    """Refuse a forced shape whose required fields the first record lacks (else every record is rejected)."""
    if fmt.name != "columns" and fmt.detect(record):
        return
    # Only a key the record lacks means the shape does not fit the file; a field that is there but null (or a CSV
    # row cut short) is this record's fault, rejected on its own. So nulls read as "" here: a missing_field left
    # names an absent key.
    filled = {key: "" if value is None else value for key, value in record.items()}
    try:
        fmt.prompt(filled) if prompts else fmt.read(filled)
    except RecordError as err:
        if err.reason != "missing_field":
            return  # a bad record, not a wrong shape: it is rejected on its own
        option, fix = ("--map", "Fix the --map") if fmt.name == "columns" else (f"--format {fmt.name}", "Map them")
        keys = ", ".join(sorted(record)[:20])
        raise UserError(
            f"{where}: {option} cannot read this file: {err.detail}; its columns are [{keys}]. "
            f"{fix}, e.g. {suggest_map(record)}"
        ) from None
