"""Check a ``dataset_info.json`` the way LLaMA-Factory 0.9.5 will read it, and report every problem at once.

LLaMA-Factory validates nothing in the registry (``llamafactory.data.parser``): a misspelt key is ignored, a
partial ``columns``/``tags`` block turns every omitted key into ``None``, and most mistakes surface only as a
``KeyError`` deep in dataset conversion or as examples silently skipped. Local data files are checked on
their first :data:`SAMPLE_SIZE` records; hub, script and cloud entries are checked as registry entries only.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.dataset_info import (
    COLUMN_KEYS,
    DATA_CONFIG,
    DEFAULT_COLUMNS,
    DEFAULT_TAGS,
    ENTRY_KEYS,
    FORMATTINGS,
    REMOTE_KEYS,
    SOURCE_KEYS,
    TAG_KEYS,
    load_dataset_info,
)
from lf_reasoning.llamafactory.thought_words import META_KEY, read_record, template_words, words_mismatch
from lf_reasoning.llamafactory.validate_data import (
    REQUIRED_TAGS,
    Finding,
    Severity,
    check_data,
    count,
    read_sample,
)
from lf_reasoning.record.markup import DEFAULT_WORDS, ThoughtWords

REMOTE_NOTE = "remote: not checked"
OK_NOTE = "ok"

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


def validate_dataset_info(
    dataset_dir: Path, names: list[str] | None = None, template: str | None = None
) -> list[Problem]:
    """Every problem LLaMA-Factory would hit (or silently work around) with ``dataset_dir``'s registry.

    ``names`` restricts the check to those entries (all entries when ``None``). With ``template`` (the one you will
    train with), an entry whose thoughts that template would not recognise is an error naming the fix.
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
        if template is not None and not any(p.severity == "error" and p.entry == name for p in problems):
            problems += [Problem("error", name, message) for message in words_mismatch(dataset_dir, [name], template)]
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
        summary = f"{count(counts['error'], 'error')}, {count(counts['warning'], 'warning')}"
    else:
        checked = len({p.entry for p in problems if p.entry is not None}) - remote
        summary = f"OK: {count(checked, 'entry', 'entries')} checked"
    if remote:
        summary += f", {count(remote, 'remote entry', 'remote entries')} not checked"
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
    words, words_findings = _recorded_words(entry)
    findings += words_findings
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
        file_findings, sample = read_sample(dataset_dir, entry["file_name"])
        findings += file_findings
    if sample is not None and formatting and columns is not None:
        findings += check_data(sample, formatting, columns, tags, ranking, words)
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
            if key in LEVELS[level] or (level == "entry" and key == META_KEY):  # ours: LLaMA-Factory ignores it
                continue
            home = next((other for other, keys in LEVELS.items() if key in keys), None)
            if home:
                hint = "; it belongs at the entry level" if home == "entry" else f"; it belongs in {home}"
            else:
                hint = _suggest(key, LEVELS[level]) or f"; known keys: {', '.join(LEVELS[level])}"
            where = "" if level == "entry" else f" in {level}"
            yield "error", f"unknown key '{key}'{where}, which LLaMA-Factory ignores{hint}"


def _recorded_words(entry: dict[str, Any]) -> tuple[ThoughtWords, list[Finding]]:
    """The thought words ``convert --template`` recorded in the entry (else the default), and what to say of them."""
    if META_KEY not in entry:
        return DEFAULT_WORDS, []
    try:
        template, think, words = read_record(entry[META_KEY])
    except ValueError as err:
        return DEFAULT_WORDS, [("error", f"{err}; convert the dataset again to rewrite it")]
    findings: list[Finding] = [
        ("info", f"thoughts are in `{template}`'s words {words.open + '…' + words.close!r} (--think {think})")
    ]
    try:
        installed = template_words(template)
    except UserError:  # LLaMA-Factory is not installed (or has no such template): the record is all we know
        installed = words
    if installed != words:
        findings.append(
            (
                "warning",
                f"the installed LLaMA-Factory's `{template}` uses other thought words "
                f"({installed.open + '…' + installed.close!r}, empty {installed.empty!r}): convert the dataset "
                f"again with --template {template}",
            )
        )
    return words, findings


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


def _suggest(word: str, choices: Sequence[str] | dict[str, Any]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)
