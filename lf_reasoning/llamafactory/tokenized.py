"""Refuse a stale ``tokenized_path``: LLaMA-Factory loads a saved tokenised dataset and ignores every data key.

Before the run that creates the folder, ``lf-reasoning train`` records what the tokens were made from beside it
(``<tokenized_path>.inputs.json``: the keys that change tokenisation, each data file's size, modification time and
content hash, the hash of each tokenizer file of a local model folder and of each custom template file). A later
run whose inputs differ is refused, naming what changed; a folder without that record (made by hand or by
llamafactory-cli) is used with a warning. A data file rewritten with the same bytes (``convert`` run again) is the
same input: its hash is read only when its modification time changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lf_reasoning.atomic import write_atomic
from lf_reasoning.errors import UserError

DATA_FILES_KEY = "data files"
# What transformers builds a tokenizer from (vocabularies, merges, special tokens, the chat template).
_TOKENIZER_FILES = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "vocab.txt", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
}  # fmt: skip
_CHUNK = 1 << 20

# The keys whose value changes the tokens LLaMA-Factory saves (beside the data files themselves).
TOKENIZATION_KEYS = (
    "model_name_or_path", "tokenizer_name_or_path", "adapter_name_or_path", "stage", "template", "enable_thinking",
    "preserve_thinking", "default_system", "tool_format", "dataset", "eval_dataset", "dataset_dir", "cutoff_len",
    "val_size", "max_samples", "mix_strategy", "interleave_probs", "train_on_prompt", "mask_history", "packing",
    "neat_packing", "seed",
)  # fmt: skip


def inputs_path(tokenized_path: Path) -> Path:
    return tokenized_path.with_name(tokenized_path.name + ".inputs.json")


def _has_tokens(path: Path) -> bool:
    """LLaMA-Factory's ``has_tokenized_data``: a non-empty folder is loaded as the tokenised dataset."""
    return path.is_dir() and any(path.iterdir())


def tokenization_inputs(config: Mapping[str, Any], config_dir: Path) -> dict[str, Any]:
    """What the tokens of ``config`` are made from, as JSON-able values."""
    from lf_reasoning.llamafactory.launch import CUSTOM_TEMPLATES_KEY, template_paths
    from lf_reasoning.llamafactory.lengths import dataset_files

    inputs: dict[str, Any] = {key: config.get(key) for key in TOKENIZATION_KEYS}
    dataset_dir = Path(str(config.get("dataset_dir", "data"))).expanduser()
    files: dict[str, list[int]] = {}
    for key in ("dataset", "eval_dataset"):
        for name in (n.strip() for n in str(config.get(key) or "").split(",") if n.strip()):
            try:
                found = dataset_files(dataset_dir, name)[1]
            except UserError:  # remote: its revision is the dataset key itself
                continue
            for path in found:
                stat = path.stat()
                files[str(path)] = {"size": stat.st_size, "modified_ns": stat.st_mtime_ns}
    inputs[DATA_FILES_KEY] = files
    inputs["tokenizer files"] = {  # a local model folder rebuilt or replaced at the same path
        str(path): _sha256(path)
        for key in ("model_name_or_path", "tokenizer_name_or_path")
        if config.get(key) and Path(str(config[key])).expanduser().is_dir()
        for path in sorted(Path(str(config[key])).expanduser().iterdir())
        if path.name in _TOKENIZER_FILES and path.is_file()
    }
    inputs[CUSTOM_TEMPLATES_KEY] = {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in template_paths(config, config_dir)
    }
    return inputs


def check_tokenized_path(config: Mapping[str, Any], config_dir: Path, source: str) -> list[str]:
    """Refuse a saved tokenised dataset made from other inputs (``UserError``); returns warnings."""
    if not config.get("tokenized_path"):
        return []
    path = Path(str(config["tokenized_path"])).expanduser()
    if not _has_tokens(path):
        return []
    record = inputs_path(path)
    if not record.is_file():
        return [f"tokenized_path {path} holds tokens of unknown inputs (no {record.name}): LLaMA-Factory loads them "
                "and ignores the data keys; delete the folder if the data or template changed"]  # fmt: skip
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    current = tokenization_inputs(config, config_dir)
    changed = [key for key in current if key != DATA_FILES_KEY and recorded.get(key) != current[key]]
    changed += [f"data file {path}" for path in _changed_files(recorded.get(DATA_FILES_KEY), current[DATA_FILES_KEY])]
    if changed:
        raise UserError(
            f"{source}: key 'tokenized_path': {path} was tokenised from other inputs ({', '.join(changed)} changed "
            f"since, see {record}); LLaMA-Factory would train on the old tokens: delete the folder (rm -r {path}) "
            "to tokenise again, or set tokenized_path to a new folder"
        )
    return []


def _changed_files(recorded: Any, current: dict[str, dict[str, int]]) -> list[str]:
    """The data files that are not what the tokens were made from: gone, new, of another size, or modified since
    and holding other bytes (the hash is read only then)."""
    recorded = recorded if isinstance(recorded, dict) else {}
    gone = sorted(set(recorded) - set(current))
    return gone + [path for path, now in current.items() if not _unchanged(recorded.get(path), now, Path(path))]


def _unchanged(then: Any, now: dict[str, int], path: Path) -> bool:
    if not isinstance(then, dict) or then.get("size") != now["size"]:
        return False
    return then.get("modified_ns") == now["modified_ns"] or then.get("sha256") == _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record_tokenization_inputs(config: Mapping[str, Any], config_dir: Path) -> None:
    """Before a run that will save the tokens: record their inputs beside ``tokenized_path`` (no-op without one)."""
    if not config.get("tokenized_path") or config.get("streaming"):
        return
    path = Path(str(config["tokenized_path"])).expanduser()
    if _has_tokens(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = tokenization_inputs(config, config_dir)
    for file, seen in inputs[DATA_FILES_KEY].items():
        seen["sha256"] = _sha256(Path(file))
    text = json.dumps(inputs, indent=1, sort_keys=True, default=str) + "\n"
    write_atomic(inputs_path(path), text.encode())
