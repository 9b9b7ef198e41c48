"""Checks of the data an entry of ``dataset_info.json`` names: its first records read as LLaMA-Factory will read
them (columns present, roles matching the tags, thought markup its templates recognise)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any, Literal

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.llamafactory.dataset_info import DEFAULT_COLUMNS, FILE_TYPES
from lf_reasoning.record.markup import DEFAULT_WORDS, ThoughtWords, has_markup
from lf_reasoning.record.sources import iter_file

Severity = Literal["error", "warning", "info"]
Finding = tuple[Severity, str]

SAMPLE_SIZE = 100
# The columns each converter reads (llamafactory.data.converter); chosen/rejected only when ranking.
USED_COLUMNS = {
    "alpaca": ("prompt", "query", "response", "history", "system", "tools", "images", "videos", "audios", "kto_tag"),
    "sharegpt": ("messages", "system", "tools", "images", "videos", "audios", "kto_tag"),
    "openai": ("messages", "system", "tools", "images", "videos", "audios", "kto_tag"),
}
# The column name a user most likely means for a key (LLaMA-Factory's default, else the key itself).
CONVENTIONAL_COLUMNS = {
    key: DEFAULT_COLUMNS.get(key, key)
    for key in ("prompt", "query", "response", "history", "system", "tools", "images", "videos", "audios")
}
REQUIRED_TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag")
ROLE_TAGS = ("user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")


@dataclass
class Sample:
    """What was read of an entry's local data: its first records, or only its column names."""

    file_name: str
    columns: set[str] = field(default_factory=set)
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    invalid: list[tuple[str, RecordError]] = field(default_factory=list)

    @property
    def where(self) -> str:
        read = len(self.records) + len(self.invalid)
        return f"the first {count(read, 'record')} of {self.file_name}" if read else self.file_name


def read_sample(dataset_dir: Path, file_name: str) -> tuple[list[Finding], Sample | None]:
    """Check ``file_name`` the way LLaMA-Factory's loader lists it, then read its first records."""
    path = dataset_dir / file_name
    if path.is_dir():
        # LLaMA-Factory passes every entry of the folder to datasets: hidden files and subfolders included.
        files = sorted(path / name for name in os.listdir(path))
        if not files:
            return [("error", f"file_name '{file_name}': folder {path} is empty")], None
    elif path.is_file():
        files = [path]
    else:
        return [("error", f"file_name '{file_name}': {path} not found")], None
    kinds = {file: _file_type(file) for file in files}
    unsupported = [file.name for file, kind in kinds.items() if kind is None]
    if unsupported:
        note = (
            " (LLaMA-Factory cannot read compressed files)"
            if any(name.endswith((".gz", ".zst")) for name in unsupported)
            else ""
        )
        folder = " and loads every file of a folder, hidden ones included" if path.is_dir() else ""
        return [
            (
                "error",
                f"file_name '{file_name}': unsupported file type: {', '.join(unsupported)}{note}; "
                f"LLaMA-Factory reads {', '.join(FILE_TYPES)}{folder}",
            )
        ], None
    if len(set(kinds.values())) > 1:
        listing = ", ".join(f"{file.name} ({kind})" for file, kind in kinds.items())
        return [
            (
                "error",
                f"file_name '{file_name}': folder mixes file types ({listing}); "
                "LLaMA-Factory needs one type per folder",
            )
        ], None
    kind = kinds[files[0]]
    if kind == "arrow":
        return [("info", f"{file_name}: arrow data not inspected")], None
    if kind == "text":  # datasets' text loader yields one column, "text"
        return [], Sample(file_name, columns={"text"})
    sample = Sample(file_name)
    try:
        for where, record in islice(chain.from_iterable(iter_file(file) for file in files), SAMPLE_SIZE):
            if isinstance(record, RecordError):
                sample.invalid.append((where, record))
            else:
                sample.records.append((where, record))
                sample.columns.update(record)
    except UserError as err:
        return [("error", err.message)], None
    return [], sample


def _file_type(path: Path) -> str | None:
    """The datasets loader LLaMA-Factory picks for ``path`` (``FILEEXT2TYPE``), or None if it has none."""
    ext = os.path.splitext(path.name)[1][1:]  # what LLaMA-Factory uses: "a.jsonl.gz" -> "gz", ".x" -> ""
    if path.is_dir() or ext not in FILE_TYPES:
        return None
    return {"jsonl": "json", "txt": "text"}.get(ext, ext)


def check_data(
    sample: Sample,
    formatting: str,
    columns: dict[str, str | None],
    tags: dict[str, str | None] | None,
    ranking: bool,
    words: ThoughtWords = DEFAULT_WORDS,
) -> Iterator[Finding]:
    """``words``: what the thoughts must be written in (the entry's record of them, else the default)."""
    if sample.invalid:
        where, err = sample.invalid[0]
        yield (
            "error",
            (
                f"{len(sample.invalid)} invalid record(s) in {sample.where}, first at {where}: "
                f"{err.detail}; LLaMA-Factory cannot load the file"
            ),
        )
    used = USED_COLUMNS[formatting] + (("chosen", "rejected") if ranking else ())
    present = ", ".join(sorted(sample.columns)) or "none"
    for key in used:
        name = columns[key]
        if name and name not in sample.columns:
            default = "" if name != DEFAULT_COLUMNS.get(key) else ", LLaMA-Factory's default"
            # The openai converter reads system/tools with .get: a missing column is skipped, not fatal.
            severity: Severity = "warning" if formatting == "openai" and key in ("system", "tools") else "error"
            yield severity, (f"column '{name}' ({key}{default}) is not in {sample.where}; columns present: {present}")
    mapped = set(columns.values())
    for key, name in CONVENTIONAL_COLUMNS.items():
        if key in used and not columns[key] and name in sample.columns and name not in mapped:
            yield (
                "warning",
                (
                    f"the data has a column '{name}' but no column maps '{key}' to it, so "
                    f'LLaMA-Factory ignores it; add "{key}": "{name}" to columns'
                ),
            )
    if formatting != "alpaca" and tags and columns["messages"] in sample.columns:
        yield from _check_messages(sample, formatting, columns["messages"], tags)
    yield from _check_thoughts(sample, formatting, columns, tags, ranking, words)


def _check_messages(sample: Sample, formatting: str, column: str, tags: dict[str, str | None]) -> Iterator[Finding]:
    role_tag, content_tag = tags["role_tag"], tags["content_tag"]
    if not all(tags[key] for key in REQUIRED_TAGS):
        return  # the tags block check reported it; every message would fail to match
    roles = {tags[key]: key for key in ROLE_TAGS if tags[key]}
    malformed: str | None = None
    missing: dict[str, tuple[str, list[str]]] = {}  # tag key -> (first where, keys the message has)
    unknown: dict[str, str] = {}  # role value -> first where
    for where, record in sample.records:
        messages = record.get(column)
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            malformed = malformed or where
            continue
        for message in messages:
            for tag in (role_tag, content_tag):
                if tag not in message:
                    missing.setdefault(tag, (where, sorted(message)))
            role = message.get(role_tag)
            if role_tag in message and (not isinstance(role, str) or role not in roles):
                unknown.setdefault(str(role), where)
    if malformed:
        yield "error", f"column '{column}' at {malformed} is not a list of message objects"
    for tag, (where, keys) in missing.items():
        key = "role_tag" if tag == role_tag else "content_tag"
        yield (
            "error",
            (
                f"messages have no '{tag}' key ({key}), first at {where}; they have "
                f"{', '.join(keys) or 'no keys'}: set tags.{key} to the right key"
            ),
        )
    if unknown:
        values = ", ".join(f"'{value}' (first at {where})" for value, where in unknown.items())
        known = ", ".join(f"{key}='{value}'" for value, key in roles.items())
        effect = "skips every such example" if formatting == "sharegpt" else "fails with a KeyError"
        yield "error", f"role value {values} matches none of the tags ({known}); LLaMA-Factory {effect}"


def _check_thoughts(
    sample: Sample,
    formatting: str,
    columns: dict[str, str | None],
    tags: dict[str, str | None] | None,
    ranking: bool,
    words: ThoughtWords,
) -> Iterator[Finding]:
    bad = [
        (where, text)
        for where, record in sample.records
        for text in _assistant_texts(record, formatting, columns, tags, ranking)
        if not _recognised(text, words)
    ]
    if bad:
        where, text = bad[0]
        recorded = "" if words == DEFAULT_WORDS else " (the words recorded in the entry)"
        yield (
            "warning",
            (
                f"{len(bad)} assistant response(s) in {sample.where} have thought markup LLaMA-Factory "
                f"will not recognise, first at {where}: {text[:40]!r}; its reasoning templates only "
                f"handle {words.open + '…' + words.close!r}{recorded} at the start of a response"
                f"{_other_words(text)}. Run `lf-reasoning convert` to rewrite it"
            ),
        )


def _other_words(text: str) -> str:
    """Which templates' words ``text`` is written in, when the installed LLaMA-Factory has some that fit."""
    from lf_reasoning.llamafactory.thought_words import best_words, reasoning_templates, words_groups

    try:
        groups, reasoning = words_groups(), set(reasoning_templates())
    except UserError:  # LLaMA-Factory is not installed: validate works without it
        return ""
    best = best_words(text, groups)
    names = [name for words, group in groups.items() if words in best for name in group if name in reasoning]
    if not names:
        return ""
    return (
        f"; it is in the thought words of {', '.join(names[:6])}: `lf-reasoning convert … --template "
        f"{names[0]}` writes them and records it in the entry"
    )


def _assistant_texts(
    record: dict[str, Any],
    formatting: str,
    columns: dict[str, str | None],
    tags: dict[str, str | None] | None,
    ranking: bool,
) -> list[str]:
    """The trained responses of one record: outputs, history answers, assistant messages, chosen/rejected."""
    pairs = [columns[key] for key in ("chosen", "rejected") if ranking and columns[key]]
    if formatting == "alpaca":
        values = [record.get(name) for name in (columns["response"], *pairs) if name]
        history = record.get(columns["history"]) if columns["history"] else None
        if isinstance(history, list):
            values += [turn[1] for turn in history if isinstance(turn, list) and len(turn) == 2]
    elif tags and tags["role_tag"] and tags["content_tag"]:
        messages = record.get(columns["messages"] or "")
        candidates = [*(messages if isinstance(messages, list) else ()), *(record.get(name) for name in pairs)]
        values = [
            m.get(tags["content_tag"])
            for m in candidates
            if isinstance(m, dict) and m.get(tags["role_tag"]) == tags["assistant_tag"]
        ]
    else:
        values = []
    return [value for value in values if isinstance(value, str)]


def _recognised(text: str, words: ThoughtWords) -> bool:
    """No thought markup at all, or exactly one thought block in ``words`` before the answer."""
    markers = [m for m in words.markers() if m]
    if not has_markup(text) and not any(m in text for m in markers):
        return True
    split = words.split(text)
    if split is None:
        return False
    thought, answer = split
    return not any(has_markup(part) or any(m in part for m in markers) for part in (thought, answer))


def count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
