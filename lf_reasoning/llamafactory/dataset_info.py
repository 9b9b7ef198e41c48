"""``dataset_info.json``: the keys LLaMA-Factory 0.9.5 reads, our entries, and a lossless merge.

LLaMA-Factory validates nothing here: a misspelt key is ignored, and a ``columns``/``tags`` block that
names some keys turns every omitted one into ``None`` (``DatasetAttr.join`` in ``llamafactory.data.parser``).
So our entries always spell out every column and tag they rely on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from lf_reasoning.atomic import write_atomic
from lf_reasoning.errors import UserError

DATA_CONFIG = "dataset_info.json"
META_KEY = "lf_reasoning"  # our key in an entry (LLaMA-Factory ignores it): {"template", "think", "thought_words"}
SOURCE_KEYS = ("file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
REMOTE_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
ENTRY_KEYS = (*SOURCE_KEYS, "formatting", "ranking", "subset", "split", "folder", "num_samples", "columns", "tags")
COLUMN_KEYS = (
    "prompt",
    "query",
    "response",
    "history",
    "messages",
    "system",
    "tools",
    "images",
    "videos",
    "audios",
    "chosen",
    "rejected",
    "kto_tag",
)
TAG_KEYS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")
FORMATTINGS = ("alpaca", "sharegpt", "openai")
FILE_TYPES = ("arrow", "csv", "json", "jsonl", "parquet", "txt")  # llamafactory.extras.constants.FILEEXT2TYPE
# What LLaMA-Factory uses when an entry has no columns/tags block at all (DatasetAttr defaults).
DEFAULT_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "messages": "conversations"}
DEFAULT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}

# The ShareGPT layout lf-reasoning writes: OpenAI-like role/content messages, every tag explicit.
SHAREGPT_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}


def sharegpt_entry(file_name: str) -> dict[str, Any]:
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "system": "system"},
        "tags": dict(SHAREGPT_TAGS),
    }


def with_tools_column(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` registering the ``tools`` column: only for data that has one. LLaMA-Factory's ShareGPT converter
    reads a registered column as ``example["tools"]``, a KeyError when no record has it; ``datasets`` gives the
    records without it ``None``, which the templates read as no tools."""
    return {**entry, "columns": {**entry["columns"], "tools": "tools"}}


def same_dataset(old: Any, new: dict[str, Any]) -> bool:
    """Two entries of the same dataset: they differ at most in what convert derives from the data and its options,
    a ``tools`` column (known once the data is written) and our ``lf_reasoning`` block (the thought words of
    ``--template``/``--think``), so re-converting it another way is not taken for another dataset."""

    def derived_dropped(entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        entry = {k: v for k, v in entry.items() if k != META_KEY}
        if isinstance(entry.get("columns"), dict):
            entry["columns"] = {k: v for k, v in entry["columns"].items() if k != "tools"}
        return entry

    return derived_dropped(old) == derived_dropped(new)


def alpaca_entry(file_name: str) -> dict[str, Any]:
    return {
        "file_name": file_name,
        "formatting": "alpaca",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
            "history": "history",
        },
    }


def load_dataset_info(dataset_dir: Path) -> dict[str, Any]:
    """The registry in ``dataset_dir`` (empty when there is none); an unreadable one is a user error."""
    path = dataset_dir / DATA_CONFIG
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from err
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        info = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise UserError(
            f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}. "
            "Fix it by hand; lf-reasoning will not overwrite a registry it cannot read."
        ) from err
    if not isinstance(info, dict):
        raise UserError(
            f"{path}: top level is a JSON {type(info).__name__}; LLaMA-Factory needs an object "
            "mapping dataset names to entries"
        )
    return info


def merge_entry(info: dict[str, Any], name: str, entry: dict[str, Any], *, force: bool) -> dict[str, Any]:
    """A copy of ``info`` with ``name`` set to ``entry``; every other entry keeps its content and order."""
    old = info.get(name)
    if old is not None and not same_dataset(old, entry) and not force:
        raise UserError(
            f"{DATA_CONFIG} already has a different entry '{name}': {orjson.dumps(old).decode()}. "
            "Choose another --name, or pass --force to replace it."
        )
    merged = dict(info)
    merged[name] = entry
    return merged


def dataset_info_bytes(info: dict[str, Any]) -> bytes:
    """``dataset_info.json`` as written (committed together with the data file, see ``atomic.commit_together``)."""
    return orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n"


def write_dataset_info(dataset_dir: Path, info: dict[str, Any]) -> None:
    """Replace ``dataset_info.json`` atomically (temp file in the same directory, then rename)."""
    write_atomic(dataset_dir / DATA_CONFIG, dataset_info_bytes(info))
