"""Check a ``dataset_info.json`` the way LLaMA-Factory 0.9.5 will read it, and report every problem at once.

LLaMA-Factory validates nothing in the registry (``llamafactory.data.parser``): a misspelt key is ignored, a
partial ``columns``/``tags`` block turns every omitted key into ``None``, and most mistakes surface only as a
``KeyError`` deep in dataset conversion or as examples silently skipped. Local data files are checked on
their first :data:`SAMPLE_SIZE` records; hub, script and cloud entries are checked as registry entries only.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any, Literal

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.llamafactory.dataset_info import (
    COLUMN_KEYS,
    DATA_CONFIG,
    DEFAULT_COLUMNS,
    DEFAULT_TAGS,
    ENTRY_KEYS,
    FILE_TYPES,
    FORMATTINGS,
    REMOTE_KEYS,
    SOURCE_KEYS,
    TAG_KEYS,
    load_dataset_info,
)
from lf_reasoning.sources import iter_file
from lf_reasoning.thoughts import THOUGHT_CLOSE, THOUGHT_OPEN

Severity = Literal["error", "warning", "info"]
Finding = tuple[Severity, str]

SAMPLE_SIZE = 100
REMOTE_NOTE = "remote: not checked"
OK_NOTE = "ok"

# Every spelling of thought markup lf-reasoning can convert (see lf_reasoning.thoughts).
THOUGHT_MARKUP = ("<think>", "</think>", "<|begin_of_thought|>", "<|end_of_thought|>", "<reasoning>", "</reasoning>")
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
# Entry values whose JSON type LLaMA-Factory relies on; ``None`` is also fine where its default is None.
VALUE_TYPES: dict[str, type] = {
    **dict.fromkeys(SOURCE_KEYS, str),
    "ranking": bool,
    "subset": str,
    "split": str,
    "folder": str,
    "num_samples": int,
    "columns": dict,
    "tags": dict,
}
NULLABLE = ("subset", "folder", "num_samples")
LEVELS = {"entry": ENTRY_KEYS, "columns": COLUMN_KEYS, "tags": TAG_KEYS}
JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    type(None): "null",
}


@dataclass(frozen=True)
class Problem:
    """One finding; ``entry`` is the dataset name, or ``None`` for the registry as a whole."""

    severity: Severity
    entry: str | None
    message: str


@dataclass
class _Sample:
    """What was read of an entry's local data: its first records, or only its column names."""

    file_name: str
    columns: set[str] = field(default_factory=set)
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    invalid: list[tuple[str, RecordError]] = field(default_factory=list)

    @property
    def where(self) -> str:
        read = len(self.records) + len(self.invalid)
        return f"the first {_count(read, 'record')} of {self.file_name}" if read else self.file_name


def validate_dataset_info(dataset_dir: Path, names: list[str] | None = None) -> list[Problem]:
    """Every problem LLaMA-Factory would hit (or silently work around) with ``dataset_dir``'s registry.

    ``names`` restricts the check to those entries (all entries when ``None``).
    """
    path = dataset_dir / DATA_CONFIG
    if not path.is_file():
        return [
            Problem(
                "error",
                None,
                f"{path}: not found; LLaMA-Factory reads the registry from "
                "`dataset_dir`/dataset_info.json (run `lf-reasoning convert` to create it)",
            )
        ]
    try:
        info = load_dataset_info(dataset_dir)
    except UserError as err:
        return [Problem("error", None, err.message)]
    problems = []
    if path.read_bytes().startswith(b"\xef\xbb\xbf"):  # LLaMA-Factory's json.load rejects a BOM
        problems.append(
            Problem(
                "error",
                None,
                f"{path}: starts with a UTF-8 byte order mark, which "
                "LLaMA-Factory cannot read; save the file without it",
            )
        )
    if not info:
        problems.append(Problem("warning", None, f"{path}: holds no entries"))
    names = list(info) if names is None else list(dict.fromkeys(names))
    for name in names:
        if name not in info:
            problems.append(Problem("error", None, f"no entry '{name}' in {path}{_suggest(name, info)}"))
    selected = [name for name in names if name in info]
    for name in selected:
        problems += [Problem(severity, name, message) for severity, message in _check_entry(dataset_dir, info[name])]
    return problems


def format_problems(problems: Sequence[Problem]) -> str:
    """A report grouped by entry, one line per problem, ending with a count line."""
    groups: dict[str | None, list[Problem]] = {}
    for problem in problems:
        groups.setdefault(problem.entry, []).append(problem)
    lines = []
    for entry, group in groups.items():
        lines.append(DATA_CONFIG if entry is None else entry)
        lines += [f"  {p.severity}: {p.message}" for p in group]
    counts = Counter(p.severity for p in problems)
    remote = sum(p.severity == "info" and p.message.startswith(REMOTE_NOTE) for p in problems)
    if counts["error"] or counts["warning"]:
        summary = f"{_count(counts['error'], 'error')}, {_count(counts['warning'], 'warning')}"
    else:
        checked = len({p.entry for p in problems if p.entry is not None}) - remote
        summary = f"OK: {_count(checked, 'entry', 'entries')} checked"
    if remote:
        summary += f", {_count(remote, 'remote entry', 'remote entries')} not checked"
    return "\n".join([*lines, summary])


def _check_entry(dataset_dir: Path, entry: Any) -> list[Finding]:
    if not isinstance(entry, dict):
        return [
            (
                "error",
                f"entry is a JSON {_json_type(entry)}, not an object; LLaMA-Factory needs an "
                'object such as {"file_name": "data.jsonl", "formatting": "sharegpt", ...}',
            )
        ]
    findings = [*_check_keys(entry), *_check_types(entry)]
    formatting = entry.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        findings.append(
            (
                "error",
                f"formatting {formatting!r} is not one of {', '.join(FORMATTINGS)}"
                f"{_suggest(str(formatting), FORMATTINGS)}",
            )
        )
        formatting = None  # the entry-shape checks below depend on it
    columns = _effective(entry, "columns", COLUMN_KEYS, DEFAULT_COLUMNS)
    tags = _effective(entry, "tags", TAG_KEYS, DEFAULT_TAGS)
    ranking = entry.get("ranking") is True
    if formatting and columns is not None:
        findings += _check_columns_block(formatting, columns, ranking, explicit="columns" in entry)
    if formatting:
        findings += _check_tags_block(formatting, entry)

    # LLaMA-Factory's precedence (get_dataset_list): the hubs, script_url, cloud_file_name, then file_name.
    sources = [key for key in (*REMOTE_KEYS, "file_name") if key in entry]
    sample = None
    if not sources:
        findings.append(("error", f"no data source: add one of {', '.join(SOURCE_KEYS)}"))
    elif sources[0] != "file_name":
        findings.append(("info", f"{REMOTE_NOTE} ({sources[0]}: {entry[sources[0]]})"))
        if "file_name" in entry:
            findings.append(
                (
                    "warning",
                    f"has both {sources[0]} and file_name: LLaMA-Factory loads {sources[0]} and ignores file_name",
                )
            )
    elif isinstance(entry["file_name"], str):
        if entry.get("split", "train") != "train":
            findings.append(
                (
                    "error",
                    f"split {entry['split']!r} on a local file: datasets names the split of "
                    "local files 'train', so LLaMA-Factory will fail; drop `split`",
                )
            )
        file_findings, sample = _read_sample(dataset_dir, entry["file_name"])
        findings += file_findings
    if sample is not None and formatting and columns is not None:
        findings += _check_data(sample, formatting, columns, tags, ranking)
    if not findings:
        findings.append(("info", OK_NOTE + (f": checked {sample.where}" if sample else "")))
    return findings


def _check_keys(entry: dict[str, Any]) -> Iterator[Finding]:
    """Keys LLaMA-Factory does not know: it ignores them, so the setting the user meant never applies."""
    blocks = [
        ("entry", entry),
        *((level, entry[level]) for level in ("columns", "tags") if isinstance(entry.get(level), dict)),
    ]
    for level, block in blocks:
        for key in block:
            if key in LEVELS[level]:
                continue
            home = next((other for other, keys in LEVELS.items() if key in keys), None)
            if home:
                hint = "; it belongs at the entry level" if home == "entry" else f"; it belongs in {home}"
            else:
                hint = _suggest(key, LEVELS[level]) or f"; known keys: {', '.join(LEVELS[level])}"
            where = "" if level == "entry" else f" in {level}"
            yield "error", f"unknown key '{key}'{where}, which LLaMA-Factory ignores{hint}"


def _check_types(entry: dict[str, Any]) -> Iterator[Finding]:
    for key, expected in VALUE_TYPES.items():
        value = entry.get(key)
        if key not in entry or type(value) is expected or (value is None and key in NULLABLE):
            continue
        if key == "ranking":
            yield (
                "error",
                (
                    f"ranking is {value!r}, not true or false; LLaMA-Factory tests `ranking is True`/"
                    "`is False`, so this entry fits no training stage"
                ),
            )
        else:
            yield "error", f"{key} is a JSON {_json_type(value)}; LLaMA-Factory needs a {JSON_TYPES[expected]}"
    for level in ("columns", "tags"):
        block = entry.get(level)
        if isinstance(block, dict):
            for key, value in block.items():
                if not isinstance(value, str):
                    yield "error", f"{level}.{key} is a JSON {_json_type(value)}; it must be a string"


def _effective(
    entry: dict[str, Any], block: str, keys: Sequence[str], defaults: dict[str, str]
) -> dict[str, str | None] | None:
    """The columns or tags LLaMA-Factory will use (``DatasetAttr.join``); ``None`` when the block is malformed."""
    if block not in entry:
        return {key: defaults.get(key) for key in keys}
    given = entry[block]
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        return None  # reported by _check_types
    return {key: given.get(key) for key in keys}


def _check_columns_block(
    formatting: str, columns: dict[str, str | None], ranking: bool, explicit: bool
) -> Iterator[Finding]:
    omitted = "the columns block omits" if explicit else "there is no columns block, so no"
    if formatting == "alpaca":
        if not columns["prompt"] and not columns["query"]:  # only possible with a columns block
            yield (
                "error",
                (
                    "the columns block maps neither 'prompt' nor 'query' (LLaMA-Factory sets omitted "
                    "columns to None): every user turn would be empty"
                ),
            )
        if not columns["response"] and not ranking:
            yield (
                "warning",
                (
                    f"{omitted} 'response' (LLaMA-Factory sets omitted columns to None): every "
                    "example has an empty response, which suits pre-training (stage: pt) only; "
                    "SFT drops every example"
                ),
            )
    elif not columns["messages"]:
        yield (
            "error",
            (
                f"{omitted} 'messages' (LLaMA-Factory sets omitted columns to None): {formatting} "
                "conversion fails with KeyError: None"
            ),
        )
    if ranking:
        for key in ("chosen", "rejected"):
            if not columns[key]:
                yield "error", f"ranking is true but {omitted} '{key}': conversion fails with KeyError: None"


def _check_tags_block(formatting: str, entry: dict[str, Any]) -> Iterator[Finding]:
    tags = entry.get("tags")
    if formatting == "alpaca":
        if "tags" in entry:
            yield "warning", "tags are ignored with alpaca formatting; did you mean formatting 'sharegpt'?"
        return
    if formatting == "openai":
        yield (
            "warning",
            (
                "formatting 'openai' makes LLaMA-Factory append 'detailed thinking off' to the system "
                "prompt of every example without tools; use formatting 'sharegpt' with explicit tags"
            ),
        )
        if tags is None:
            yield (
                "warning",
                (
                    "openai formatting without a tags block: LLaMA-Factory's defaults (role_tag 'from', "
                    "content_tag 'value', user_tag 'human', assistant_tag 'gpt') do not match "
                    "OpenAI messages (conversion fails with KeyError: 'from'); spell out every tag"
                ),
            )
    if not isinstance(tags, dict):
        return
    missing = [key for key in REQUIRED_TAGS if key not in tags]
    if missing:
        yield (
            "error",
            (
                f"the tags block omits {', '.join(missing)} (LLaMA-Factory sets omitted tags to None): "
                "no message can match; spell out every tag"
            ),
        )
    optional = [key for key in TAG_KEYS if key not in REQUIRED_TAGS and key not in tags]
    if optional:
        yield (
            "warning",
            (
                f"the tags block omits {', '.join(optional)} (LLaMA-Factory sets omitted tags to None): "
                "an example holding such a message is skipped"
            ),
        )


def _read_sample(dataset_dir: Path, file_name: str) -> tuple[list[Finding], _Sample | None]:
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
        return [], _Sample(file_name, columns={"text"})
    sample = _Sample(file_name)
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


def _check_data(
    sample: _Sample, formatting: str, columns: dict[str, str | None], tags: dict[str, str | None] | None, ranking: bool
) -> Iterator[Finding]:
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
    yield from _check_thoughts(sample, formatting, columns, tags, ranking)


def _check_messages(sample: _Sample, formatting: str, column: str, tags: dict[str, str | None]) -> Iterator[Finding]:
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
    sample: _Sample, formatting: str, columns: dict[str, str | None], tags: dict[str, str | None] | None, ranking: bool
) -> Iterator[Finding]:
    bad = [
        (where, text)
        for where, record in sample.records
        for text in _assistant_texts(record, formatting, columns, tags, ranking)
        if not _recognised(text)
    ]
    if bad:
        where, text = bad[0]
        yield (
            "warning",
            (
                f"{len(bad)} assistant response(s) in {sample.where} have thought markup LLaMA-Factory "
                f"will not recognise, first at {where}: {text[:40]!r}; its reasoning templates only "
                f"handle {THOUGHT_OPEN + '…' + THOUGHT_CLOSE!r} at the start of a response. "
                "Run `lf-reasoning convert` to rewrite it"
            ),
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


def _recognised(text: str) -> bool:
    """No thought markup at all, or exactly ``THOUGHT_OPEN + thought + THOUGHT_CLOSE + answer``."""
    if not any(tag in text for tag in THOUGHT_MARKUP):
        return True
    if not text.startswith(THOUGHT_OPEN):
        return False
    thought, close, answer = text[len(THOUGHT_OPEN) :].partition(THOUGHT_CLOSE)
    return bool(close) and not any(tag in part for part in (thought, answer) for tag in THOUGHT_MARKUP)


def _suggest(word: str, choices: Sequence[str] | dict[str, Any]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)
