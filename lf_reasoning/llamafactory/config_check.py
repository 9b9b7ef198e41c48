"""Check LLaMA-Factory configs as LLaMA-Factory itself will, before anything runs.

``check_config`` runs LLaMA-Factory's own argument parser (``get_train_args`` / ``get_infer_args``) on the exact
dict ``llamafactory-cli`` would build from the file, plus the checks LLaMA-Factory leaves to run time (template,
datasets, model, truncation). Only what describes a machine other than this one is simulated;
``_target_machine`` lists each such substitution.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args
from unittest import mock

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.dataset_info import DATA_CONFIG, REMOTE_KEYS, load_dataset_info
from lf_reasoning.llamafactory.launch import CUSTOM_TEMPLATES_KEY  # ours: popped before LF parses
from lf_reasoning.llamafactory.ray_launch import RESOURCES_KEY, worker_resources  # ours, likewise
from lf_reasoning.llamafactory.thought_words import refuse_mismatch

Hardware = Literal["cpu", "gpu", "multi-gpu", "multi-node"]
Kind = Literal["train", "predict", "export"]
HARDWARE: tuple[Hardware, ...] = get_args(Hardware)
DISTRIBUTED: tuple[Hardware, ...] = ("multi-gpu", "multi-node")  # profiles trained under DeepSpeed

# Missing packages LLaMA-Factory requires for a key (``_check_extra_dependencies``), and the key to name.
_PACKAGE_KEYS = {
    "jieba": "predict_with_generate",
    "nltk": "predict_with_generate",
    "rouge_chinese": "predict_with_generate",
    "deepspeed": "deepspeed",
    "liger-kernel": "enable_liger_kernel",
    "matplotlib": "plot_loss",
}
_FIXES = {
    "bf16": "this machine has no bf16 GPU: set bf16: false (lf-reasoning config --hardware cpu writes none)",
    "fp16": "set fp16: false on a CPU",
    "train_on_prompt": "keep only one of train_on_prompt and mask_history",
    "mask_history": "keep only one of train_on_prompt and mask_history",
    "neat_packing": "packing is for SFT only: remove neat_packing or use stage: sft",
    "predict_with_generate": "install LLaMA-Factory's metric packages: pip install jieba nltk rouge-chinese",
    "output_dir": "pick a new output_dir or set overwrite_output_dir: true",
    "deepspeed": "pip install deepspeed here (or run on a machine that has it)",
}
_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
_UNUSED_KEYS = re.compile(r"not used by the HfArgumentParser: \[(.*)\]")


def config_kind(config: Mapping[str, Any]) -> Kind:
    """What a config does: export (has export_dir), predict (do_predict without do_train), or train."""
    if config.get("export_dir"):
        return "export"
    if config.get("do_predict") and not config.get("do_train"):
        return "predict"
    return "train"


def check_config(
    config: Mapping[str, Any],
    *,
    target: Hardware | None = None,
    source: str = "config",
    config_dir: Path | None = None,
    pending: set[str] = frozenset(),  # type: ignore[assignment]
    deepspeed: dict[str, Any] | None = None,
) -> list[str]:
    """Refuse (``UserError`` naming the key) what LLaMA-Factory would refuse at some point of the run.

    Runs LLaMA-Factory's ``get_train_args`` (train, predict) or ``get_infer_args`` (export) on ``config``, checks
    each value's type against the parser's own field types, and checks what LLaMA-Factory only finds out later:
    the model, the template, the datasets. ``target`` is the hardware profile the config is meant for (config
    time); None means this machine, as ``lf-reasoning train`` launches it. Paths in ``pending`` (outputs of a
    run that has not happened yet) are not required to exist. ``deepspeed`` is the DeepSpeed config's content
    when it is not yet on disk. Returns what could not be checked here (see ``_target_machine``).
    """
    from lf_reasoning.llamafactory.launch import register_config_templates

    config = dict(config)
    register_config_templates(config, config_dir)
    config.pop(CUSTOM_TEMPLATES_KEY, None)
    if RESOURCES_KEY in config:  # ours too: the Ray driver's worker resources
        worker_resources(config.pop(RESOURCES_KEY), gpu=False)
    kind = config_kind(config)
    _check_paths(config, kind, source, pending)
    _check_template_key(config, source)
    if config.get("dataset_dir") is not None or kind != "export":
        dataset_dir = Path(str(config.get("dataset_dir", "data"))).expanduser()
        for key in ("dataset", "eval_dataset"):
            names = [n.strip() for n in str(config[key]).split(",")] if config.get(key) else []
            check_datasets(dataset_dir, names, f"{source}: key '{key}':")
            if config.get("template") is not None:  # thoughts in other words would be trained as answer text
                refuse_mismatch(dataset_dir, names, str(config["template"]), f"{source}: key '{key}': ")
    ds_path = config.pop("deepspeed", None)
    zero_stage = _zero_stage(ds_path, deepspeed, source) if ds_path else 0
    distributed = bool(ds_path) or (target in DISTRIBUTED if target else _launches_distributed())
    skipped: list[str] = []
    if ds_path:
        skipped.append(
            "the deepspeed key is checked as a file and its ZeRO stage (transformers would import "
            "DeepSpeed and start a process group to parse it)"
        )
    _check_types(config, kind, source)
    import llamafactory.hparams.parser as lf_parser

    with _target_machine(target, zero_stage, distributed, skipped):
        try:
            if ds_path:  # the key is not parsed (see above), so LLaMA-Factory's own package check is run here
                lf_parser.check_version("deepspeed", mandatory=True)
            if kind == "export":
                from llamafactory.hparams import get_infer_args

                get_infer_args(config)
            else:
                from llamafactory.hparams import get_train_args

                get_train_args(config)
        except (ValueError, TypeError, ImportError) as err:
            raise _config_error(err, config, source) from err
    return skipped


def _launches_distributed() -> bool:
    """Whether ``lf-reasoning train`` on this machine starts torchrun (as ``llamafactory-cli train`` decides)."""
    from llamafactory.extras.misc import get_device_count, is_env_enabled

    return is_env_enabled("FORCE_TORCHRUN") or (get_device_count() > 1 and not is_env_enabled("USE_RAY"))


@contextlib.contextmanager
def _target_machine(target: Hardware | None, zero_stage: int, distributed: bool, skipped: list[str]) -> Iterator[None]:
    """Run LLaMA-Factory's checks as the target machine would; every substitution is listed in ``skipped``.

    - bf16 support (transformers' ``is_torch_bf16_gpu_available``) is the target's: no for cpu, yes for the GPU
      profiles, this machine's own answer when ``target`` is None.
    - the launch mode is the one ``lf-reasoning train`` will use (torchrun for DeepSpeed / several devices):
      ``TrainingArguments.parallel_mode`` reads DISTRIBUTED then, so LLaMA-Factory's distributed-only checks run.
    - ``is_deepspeed_zero3_enabled`` answers from the DeepSpeed file, so ZeRO-3 incompatibilities are caught.
    - at config time, a package LLaMA-Factory requires for a key (deepspeed, jieba, liger-kernel, ...) but that is
      missing here is reported, not refused: it must be installed where the config runs.
    LLaMA-Factory's log output is silenced meanwhile; the parser is built once (it is stateless).
    """
    import llamafactory.hparams.parser as lf_parser
    import transformers.training_args as hf_args
    from transformers.training_args import ParallelMode

    real_check_version = lf_parser.check_version

    def check_version(requirement: str, mandatory: bool = False) -> None:
        try:
            real_check_version(requirement, mandatory)
        except ImportError:
            skipped.append(f"`{requirement}` is not installed here; install it where the config runs")

    with contextlib.ExitStack() as stack:
        patch = stack.enter_context
        patch(mock.patch.object(lf_parser, "HfArgumentParser", _parser))
        patch(mock.patch.object(lf_parser, "_set_transformers_logging", lambda: None))
        patch(mock.patch.object(lf_parser, "is_deepspeed_zero3_enabled", lambda: zero_stage == 3))
        if distributed:
            patch(mock.patch.object(hf_args.TrainingArguments, "parallel_mode", ParallelMode.DISTRIBUTED))
        if target is not None:
            patch(mock.patch.object(hf_args, "is_torch_bf16_gpu_available", lambda: target != "cpu"))
            patch(mock.patch.object(lf_parser, "check_version", check_version))
            if target != "cpu":
                skipped.append(f"bf16 support is assumed for the {target} profile (this machine cannot tell)")
            if distributed:
                skipped.append("the torchrun launch is assumed (parallel_mode DISTRIBUTED)")
        lf_logger = logging.getLogger("llamafactory")
        level = lf_logger.level
        lf_logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            lf_logger.setLevel(level)


def _parser(dataclass_types: Sequence[type]) -> Any:
    """LLaMA-Factory's HfArgumentParser for these dataclasses, built once (building it costs ~50 ms)."""
    return _build_parser(tuple(dataclass_types))


@cache
def _build_parser(dataclass_types: tuple[type, ...]) -> Any:
    from transformers import HfArgumentParser

    return HfArgumentParser(dataclass_types)


def _parser_for(kind: Kind) -> Any:
    import llamafactory.hparams.parser as lf_parser

    return _parser(lf_parser._INFER_ARGS if kind == "export" else lf_parser._TRAIN_ARGS)


def _check_types(config: Mapping[str, Any], kind: Kind, source: str) -> None:
    """Each value through its parser field's own type and choices (LLaMA-Factory's dict path skips this)."""
    actions = {a.dest: a for a in _parser_for(kind)._actions}
    for key, value in config.items():
        action = actions.get(key)
        if action is None or value is None:
            continue  # unknown keys are refused by LLaMA-Factory's own parse, with the list of them
        for item in value if isinstance(value, list) and action.nargs in ("+", "*") else [value]:
            if not _fits(action, item):
                expected = (
                    f"one of {', '.join(map(str, action.choices))}"
                    if action.choices
                    else f"of type {getattr(action.type, '__name__', 'value')}"
                )
                raise UserError(f"{source}: key '{key}': {item!r} is not {expected}")


def _fits(action: Any, value: Any) -> bool:
    """Whether argparse would accept ``value`` (as written in YAML) for ``action``."""
    from argparse import ArgumentTypeError

    text = json.dumps(value) if isinstance(value, dict) else str(value)
    text = text.lower() if isinstance(value, bool) else text
    try:
        converted = action.type(text) if action.type else text
    except (ValueError, TypeError, ArgumentTypeError):
        return False
    return not action.choices or converted in action.choices


def _check_paths(config: Mapping[str, Any], kind: Kind, source: str, pending: set[str]) -> None:
    model = config.get("model_name_or_path")
    if model is None:
        raise UserError(f"{source}: key 'model_name_or_path' is missing")
    if str(model) not in pending:
        try:
            check_model(str(model))
        except UserError as err:
            raise UserError(f"{source}: key 'model_name_or_path': {err.message.split(': ', 1)[1]}") from err
    for adapter in str(config.get("adapter_name_or_path") or "").split(","):
        if adapter and adapter not in pending and not (Path(adapter) / "adapter_config.json").is_file():
            raise UserError(
                f"{source}: key 'adapter_name_or_path': {adapter} holds no LoRA adapter "
                f"(adapter_config.json){'; run train.yaml first' if kind != 'train' else ''}"
            )


def _check_template_key(config: Mapping[str, Any], source: str) -> None:
    from lf_reasoning.llamafactory.templates import template_exists

    template = config.get("template")
    if template is None:
        return
    if not template_exists(str(template)):
        from llamafactory.data.template import TEMPLATES

        close = difflib.get_close_matches(str(template), list(TEMPLATES), n=4)
        hint = f"did you mean {', '.join(close)}?" if close else "see llamafactory/data/template.py"
        raise UserError(
            f"{source}: key 'template': LLaMA-Factory has no template {template!r}; {hint} (a template of "
            f"your own goes in a YAML file listed under {CUSTOM_TEMPLATES_KEY})"
        )


def _zero_stage(path: Any, content: dict[str, Any] | None, source: str) -> int:
    if content is None:
        file = Path(str(path)).expanduser()
        try:
            content = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"{source}: key 'deepspeed': cannot read {file} as JSON: {err}") from err
    stage = (content or {}).get("zero_optimization", {}).get("stage", 0) if isinstance(content, dict) else None
    if stage not in (0, 1, 2, 3):
        raise UserError(f"{source}: key 'deepspeed': zero_optimization.stage must be 0-3, got {stage!r}")
    return int(stage)


def _config_error(err: Exception, config: Mapping[str, Any], source: str) -> UserError:
    """LLaMA-Factory's error as a UserError naming the offending key and a fix."""
    message = str(err).strip()
    unused = _UNUSED_KEYS.search(message)
    if unused:
        from dataclasses import fields

        import llamafactory.hparams.parser as lf_parser

        known = [f.name for cls in lf_parser._TRAIN_ARGS for f in fields(cls)]
        parts = []
        for key in re.findall(r"'([^']+)'", unused.group(1)):
            close = difflib.get_close_matches(key, known, n=1)
            parts.append(
                f"key '{key}': LLaMA-Factory has no such argument" + (f"; did you mean {close[0]}?" if close else "")
            )
        return UserError(f"{source}: {'; '.join(parts)}")
    keys = [k for k in _BACKTICKED.findall(message) if k in config]
    keys += [
        k for k in config if k not in keys and re.search(rf"(?<![A-Za-z0-9_]){re.escape(k)}(?![A-Za-z0-9_])", message)
    ]
    package = next((p for p in _PACKAGE_KEYS if f"'{p}'" in message or f"install {p}" in message), None)
    if package and not keys:
        keys = [_PACKAGE_KEYS[package]]
    named = ("keys " if len(keys) > 1 else "key ") + ", ".join(f"'{k}'" for k in keys) if keys else "a key"
    fix = next((_FIXES[k] for k in keys if k in _FIXES), "change the key or remove it")
    return UserError(f"{source}: {named}: LLaMA-Factory refuses it: {message.splitlines()[0]} Fix: {fix}.")


def check_model(model: str) -> str:
    """Refuse a model that is neither a local folder, nor in the Hugging Face cache, nor listed by LLaMA-Factory."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"--model {model}: the folder has no config.json; point it at a model folder")
        return f"model {model}: local folder."
    if path.exists() or model.startswith((".", "/", "~")):
        raise UserError(f"--model {model}: no such model folder")
    if hub_file(model, "config.json"):
        return f"model {model}: found in the Hugging Face cache."
    from llamafactory.extras.constants import SUPPORTED_MODELS

    if any(model == hub_id for sources in SUPPORTED_MODELS.values() for hub_id in sources.values()):
        return f"model {model}: listed by LLaMA-Factory, downloaded when training starts."
    raise UserError(
        f"--model {model}: unknown model id with no local files (not a folder, not in the Hugging Face "
        f"cache, not listed by LLaMA-Factory). Download it first (huggingface-cli download {model}) or "
        "pass a local folder."
    )


def hub_file(repo_id: str, name: str) -> str | None:
    """A file of a hub model from the local cache only (never the network)."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(repo_id, name)
    except HFValidationError:
        return None
    return found if isinstance(found, str) else None


def check_datasets(dataset_dir: Path, names: Sequence[str], option: str) -> None:
    """Each name must be in dataset_dir/dataset_info.json, and a local entry's file must exist."""
    info = load_dataset_info(dataset_dir)
    registry = dataset_dir / DATA_CONFIG
    for name in names:
        if name not in info:
            close = difflib.get_close_matches(name, list(info), n=3, cutoff=0.5)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else (f"it has: {', '.join(sorted(info)[:20])}" if info else "create it with lf-reasoning convert")
            )
            raise UserError(f"{option} {name}: no such dataset in {registry}; {hint}")
        entry = info[name]
        if (
            isinstance(entry, dict)
            and not any(k in entry for k in REMOTE_KEYS)
            and isinstance(entry.get("file_name"), str)
            and not (dataset_dir / entry["file_name"]).exists()
        ):
            raise UserError(
                f"{option} {name}: its file {dataset_dir / entry['file_name']} is missing (file_name in {registry})"
            )
