"""LLaMA-Factory configs for reasoning fine-tunes: build train/predict/export YAML and check them.

``build_configs`` turns a few choices (model, data, method, fine-tuning type, hardware) into the three YAML files,
recording why each non-default key has its value; ``write_configs`` writes them with that explanation as a
comment header. Every file is first checked by ``check_config``, which runs LLaMA-Factory's own argument parser
(``get_train_args`` / ``get_infer_args``) on the exact dict ``llamafactory-cli`` would build from the file, plus
the checks LLaMA-Factory leaves to run time (template, datasets, model, truncation). Only what describes a
machine other than this one is simulated; ``_target_machine`` lists each such substitution.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from unittest import mock

import yaml

from lf_reasoning import __version__
from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.dataset_info import DATA_CONFIG, REMOTE_KEYS, load_dataset_info
from lf_reasoning.llamafactory.launch import CUSTOM_TEMPLATES_KEY  # ours: popped before LF parses

if TYPE_CHECKING:
    from lf_reasoning.stats import LengthStats

Method = Literal["distill", "cot", "answer-only", "mixed"]
Finetuning = Literal["lora", "qlora", "full"]
Hardware = Literal["cpu", "gpu", "multi-gpu", "multi-node"]
Kind = Literal["train", "predict", "export"]
METHODS: tuple[Method, ...] = get_args(Method)
FINETUNINGS: tuple[Finetuning, ...] = get_args(Finetuning)
HARDWARE: tuple[Hardware, ...] = get_args(Hardware)
DISTRIBUTED: tuple[Hardware, ...] = ("multi-gpu", "multi-node")

DEFAULT_CUTOFF_LEN = 4096  # when nothing can be measured: reasoning records are long
EFFECTIVE_BATCH = 8  # records per optimizer step and device
TOKENS_PER_STEP = 2048  # padded tokens per forward pass and device that fit beside a 7B model on one GPU
HELD_OUT = 0.05  # val_size: share of records kept out of training and predicted on
COVERED_PERCENTILE = 99.0
# Recommended sampling for DeepSeek-R1 and Qwen3 in thinking mode (greedy decoding makes them repeat).
TEMPERATURE, TOP_P = 0.6, 0.95
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
_NOT_APPLICABLE: Any = object()  # enable_thinking has no effect on a plain template: the key is left out
_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
_UNUSED_KEYS = re.compile(r"not used by the HfArgumentParser: \[(.*)\]")


@dataclass(frozen=True)
class ConfigRequest:
    """What ``lf-reasoning config`` was asked for."""

    model: str  # hub id or local folder
    datasets: tuple[str, ...]  # names in dataset_dir/dataset_info.json
    dataset_dir: Path
    out: Path  # where train.yaml, predict.yaml, export.yaml (and outputs) go
    method: Method = "distill"
    finetuning: Finetuning = "lora"
    hardware: Hardware | None = None  # None: what this machine has
    template: str | None = None  # override of the template chosen from the model
    template_file: Path | None = None  # a custom template YAML (registered at run time)
    cutoff_len: int | None = None  # None: measured (p99, multiple of 256) when a tokenizer is at hand
    eval_dataset: str | None = None  # held-out data to predict on; None: a HELD_OUT split of the training data
    tokenizer: str | None = None  # for measuring lengths; default: the model's
    allow_truncation: bool = False
    liger_kernel: bool = False
    packing: bool = False
    relative_paths: bool = False  # write paths relative to the working directory (configs committed to a repo)


@dataclass
class ConfigFile:
    """One YAML file: LLaMA-Factory keys in order, and why each one we set has its value."""

    kind: Kind
    values: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def set(self, key: str, value: Any, why: str) -> None:
        self.values[key] = value
        self.reasons[key] = why

    @property
    def file_name(self) -> str:
        return f"{self.kind}.yaml"


@dataclass
class ConfigSet:
    """The three files, the DeepSpeed config beside them (if any) and what the user should read."""

    files: list[ConfigFile]
    hardware: Hardware
    deepspeed: tuple[str, dict[str, Any]] | None = None  # file name, JSON content
    notes: list[str] = field(default_factory=list)  # the choices made and why
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # checks that could not run on this machine
    relative_to: str | None = None  # the folder of the files, when their paths are relative to the working directory

    def __getitem__(self, kind: Kind) -> ConfigFile:
        return next(f for f in self.files if f.kind == kind)


# --------------------------------------------------------------------------------------------------- building


def default_hardware() -> Hardware:
    """The profile of this machine: no accelerator → cpu, one → gpu, several → multi-gpu."""
    from llamafactory.extras.misc import get_device_count

    count = get_device_count()
    return "cpu" if count == 0 else "gpu" if count == 1 else "multi-gpu"


def build_configs(req: ConfigRequest) -> ConfigSet:
    """Choose every key for ``req``, check each file with LLaMA-Factory's parser and return them (nothing written)."""
    from lf_reasoning.llamafactory.custom_template import load_custom_template, register_custom_template
    from lf_reasoning.llamafactory.templates import choose_template, is_reasoning_template

    hardware = req.hardware or default_hardware()
    if req.finetuning == "qlora" and hardware == "cpu":
        raise UserError("--finetuning qlora: 4-bit QLoRA needs a CUDA GPU (bitsandbytes); on a CPU use lora")
    if (req.packing or req.liger_kernel) and hardware == "cpu":
        raise UserError("--packing/--liger-kernel are GPU options (neat packing and Liger kernels target CUDA)")
    model_note = _check_model(req.model)
    dataset_dir = req.dataset_dir.expanduser().resolve()
    out = req.out.expanduser().resolve()

    def shown(path: Path) -> str:
        return os.path.relpath(path) if req.relative_paths else str(path)

    _check_datasets(dataset_dir, [*req.datasets, *([req.eval_dataset] if req.eval_dataset else [])], "--dataset")

    notes = [model_note]
    warnings: list[str] = []
    custom: list[str] = []
    if req.template_file is not None:
        path = req.template_file.expanduser().resolve()
        name = load_custom_template(path).name
        if req.template not in (None, name):
            raise UserError(f"--template {req.template} contradicts --template-file {path}, which defines {name}")
        register_custom_template(path)
        # lf-reasoning train resolves a relative template path against the config's own folder
        custom = [os.path.relpath(path, out) if req.relative_paths else str(path)]
        template, reasoning = name, is_reasoning_template(name)
        template_why = f"`{name}` is defined in {path}; lf-reasoning train registers it before LLaMA-Factory starts."
    else:
        choice = choose_template(req.model, override=req.template)
        template, reasoning, template_why = choice.template, choice.reasoning, choice.reason
        warnings += choice.warnings
    notes.append(f"template {template}: {template_why}")

    enable_thinking, thinking_why = _thinking_for(req.method, reasoning)
    if not reasoning:
        notes.append(
            f"enable_thinking left out: `{template}` is a plain template, so it has no effect; thoughts in "
            "the data are trained verbatim and answers without one get no empty block"
        )
    stats = _measure(req, dataset_dir, template, enable_thinking, warnings)
    if req.method == "answer-only":
        _refuse_thoughts(req, dataset_dir, stats, warnings)
    cutoff_len, cutoff_why = _choose_cutoff(req, stats, warnings)

    train, predict, export = ConfigFile("train"), ConfigFile("predict"), ConfigFile("export")
    train_dir, adapter = out / "train", req.finetuning != "full"
    for file in (train, predict, export):
        if file is train or adapter:
            file.set(
                "model_name_or_path",
                req.model,
                "the model to fine-tune." if file is train else "the base model the adapter was trained on.",
            )
        else:
            file.set("model_name_or_path", shown(train_dir), "full fine-tuning saves the model in train's output_dir.")
        if file is not train and adapter:
            file.set("adapter_name_or_path", shown(train_dir), "the LoRA adapter train.yaml writes to its output_dir.")
        if req.finetuning == "qlora" and file is not export:
            file.set("quantization_bit", 4, "QLoRA: the frozen base model is loaded in 4 bits (bitsandbytes NF4).")
    train.set("stage", "sft", "supervised fine-tuning on prompt → thought + answer.")
    predict.set("stage", "sft", "prediction runs through the SFT trainer (predict_with_generate).")
    train.set("do_train", True, "this file trains.")
    predict.set("do_predict", True, "this file generates predictions; llamafactory-cli eval is gone in 0.9.5.")
    predict.set("predict_with_generate", True, "LLaMA-Factory requires it to save generated_predictions.jsonl.")
    for file in (train, predict, export):
        file.set(
            "finetuning_type",
            "full" if not adapter else "lora",
            {
                "lora": "LoRA adapter (rank 8 on all linear layers: LLaMA-Factory's defaults).",
                "qlora": "QLoRA is LoRA on a 4-bit base model.",
                "full": "all weights are trained.",
            }[req.finetuning],
        )
    if custom:
        for file in (train, predict, export):
            file.set(
                CUSTOM_TEMPLATES_KEY,
                custom,
                "lf-reasoning's key: template YAML registered into "
                "LLaMA-Factory in every process before it parses this file (run with lf-reasoning train).",
            )
    for file in (train, predict, export):
        file.set("template", template, template_why)
        if enable_thinking is not _NOT_APPLICABLE:
            file.set("enable_thinking", enable_thinking, thinking_why + " Same value in all three files.")
    for file in (train, predict):
        file.set(
            "dataset_dir",
            shown(dataset_dir),
            "where dataset_info.json is (relative to the directory `lf-reasoning config` ran in: run from there)."
            if req.relative_paths
            else "where dataset_info.json is (absolute: runs start anywhere).",
        )
        file.set("cutoff_len", cutoff_len, cutoff_why)
    train.set("dataset", ",".join(req.datasets), "the converted dataset(s).")
    if req.eval_dataset:
        predict.set("eval_dataset", req.eval_dataset, "held-out data to predict on.")
    else:
        held_out = (
            f"{HELD_OUT:.0%} of the records (seed 42) are held out of training; predict.yaml uses the same "
            "split, so it predicts only on records the model has not seen."
        )
        train.set("val_size", HELD_OUT, held_out)
        predict.set("dataset", ",".join(req.datasets), "the same data as train.yaml, split the same way.")
        predict.set("val_size", HELD_OUT, held_out)
        warnings.append(
            f"no --eval-dataset: predict.yaml predicts on the {HELD_OUT:.0%} of {', '.join(req.datasets)} "
            "held out of training"
        )

    train.set("output_dir", shown(train_dir), "adapter/model, checkpoints, trainer_log.jsonl and training_loss.png.")
    predict.set("output_dir", shown(out / "predict"), "generated_predictions.jsonl and predict_results.json go here.")
    export.set("export_dir", shown(out / "export"), "the merged model and tokenizer (loadable with transformers).")
    if req.finetuning == "qlora":
        export.reasons["model_name_or_path"] = (
            "the unquantized base model: adapters cannot be merged into a 4-bit "
            "model, so QLoRA adapters are merged into the full-precision one."
        )
    _training_keys(train, req.finetuning, hardware, cutoff_len, req.packing, req.liger_kernel)
    predict.set("max_new_tokens", cutoff_len, "room for a thought as long as the longest trained record.")
    predict.set("temperature", TEMPERATURE, "sampling recommended for R1/Qwen3 thinking (greedy decoding repeats).")
    predict.set("top_p", TOP_P, "sampling recommended for R1/Qwen3 thinking.")
    predict.set("report_to", "none", "no experiment tracker.")
    if hardware != "cpu":
        predict.set("bf16", True, "bf16 inference on the GPU.")

    deepspeed = None
    if hardware in DISTRIBUTED:
        stage = 3 if req.finetuning == "full" else 2
        deepspeed = (f"ds_z{stage}_config.json", _deepspeed_config(stage))
        sharded = (
            "weights, gradients and optimizer state are sharded: full fine-tuning"
            if stage == 3
            else "gradients and optimizer state are sharded; LoRA weights are small"
        )
        train.set(
            "deepspeed",
            shown(out / deepspeed[0]),
            f"DeepSpeed ZeRO-{stage} ({sharded}); lf-reasoning train "
            "starts it under torchrun (FORCE_TORCHRUN=1), as LLaMA-Factory requires.",
        )
        train.set("ddp_timeout", 180000000, "rank 0 tokenizes the dataset first; the others must not time out.")

    configs = ConfigSet(
        [train, predict, export],
        hardware,
        deepspeed,
        notes,
        warnings,
        relative_to=shown(out) if req.relative_paths else None,
    )
    pending = {shown(train_dir)}  # produced by train.yaml: may not exist yet
    for file in configs.files:
        ds_content = deepspeed[1] if deepspeed and file is train else None
        configs.skipped += check_config(
            file.values, target=hardware, source=file.file_name, config_dir=out, pending=pending, deepspeed=ds_content
        )
    configs.skipped = list(dict.fromkeys(configs.skipped))
    return configs


def _thinking_for(method: Method, reasoning: bool) -> tuple[Any, str]:
    """``enable_thinking`` for ``method`` and why (``_NOT_APPLICABLE`` for a plain template)."""
    if not reasoning:
        return _NOT_APPLICABLE, ""
    if method in ("distill", "cot"):
        return True, "thoughts are kept and trained (`<think>\\n…\\n</think>\\n\\n` before each answer)."
    if method == "answer-only":
        return True, (
            "the data has no thoughts, so LLaMA-Factory prepends the empty block "
            "`<think>\\n\\n</think>\\n\\n` to each answer and trains it: the model itself writes the empty "
            "thought at inference, whatever chat template or enable_thinking flag the serving stack uses "
            "(false would put the block in the prompt, so every inference stack would have to add it)."
        )
    return None, (
        "mixed data: records with a thought train it; records without one get the empty block in the "
        "prompt, masked (LLaMA-Factory's inference then adds the empty block: no thinking by default)."
    )


def _check_model(model: str) -> str:
    """Refuse a model that is neither a local folder, nor in the Hugging Face cache, nor listed by LLaMA-Factory."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"--model {model}: the folder has no config.json; point it at a model folder")
        return f"model {model}: local folder."
    if path.exists() or model.startswith((".", "/", "~")):
        raise UserError(f"--model {model}: no such model folder")
    if _hub_file(model, "config.json"):
        return f"model {model}: found in the Hugging Face cache."
    from llamafactory.extras.constants import SUPPORTED_MODELS

    if any(model == hub_id for sources in SUPPORTED_MODELS.values() for hub_id in sources.values()):
        return f"model {model}: listed by LLaMA-Factory, downloaded when training starts."
    raise UserError(
        f"--model {model}: unknown model id with no local files (not a folder, not in the Hugging Face "
        f"cache, not listed by LLaMA-Factory). Download it first (huggingface-cli download {model}) or "
        "pass a local folder."
    )


def _hub_file(repo_id: str, name: str) -> str | None:
    """A file of a hub model from the local cache only (never the network)."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(repo_id, name)
    except HFValidationError:
        return None
    return found if isinstance(found, str) else None


def _check_datasets(dataset_dir: Path, names: Sequence[str], option: str) -> None:
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


def _local_datasets(dataset_dir: Path, names: Sequence[str]) -> bool:
    info = load_dataset_info(dataset_dir)
    return all(isinstance(info.get(n), dict) and not any(k in info[n] for k in REMOTE_KEYS) for n in names)


def _tokenizer_at_hand(tokenizer: str) -> bool:
    path = Path(tokenizer).expanduser()
    if path.is_dir():
        return (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file()
    return _hub_file(tokenizer, "tokenizer_config.json") is not None


def _measure(
    req: ConfigRequest, dataset_dir: Path, template: str, enable_thinking: Any, warnings: list[str]
) -> LengthStats | None:
    """Token lengths of all training datasets, or None (with a warning) when no tokenizer or no local data."""
    import numpy as np

    from lf_reasoning.stats import LengthStats, measure_lengths

    tokenizer = req.tokenizer or req.model
    if req.tokenizer is None and not _tokenizer_at_hand(tokenizer):
        warnings.append(
            f"no local tokenizer for {tokenizer}: record lengths were not measured, so truncation by "
            "cutoff_len is not checked; pass --tokenizer PATH or download the model"
        )
        return None
    if not _local_datasets(dataset_dir, req.datasets):
        warnings.append("remote datasets: record lengths were not measured; convert them to local files first")
        return None
    thinking = True if enable_thinking is _NOT_APPLICABLE else enable_thinking
    parts = [measure_lengths(dataset_dir, name, tokenizer, template, enable_thinking=thinking) for name in req.datasets]
    if len(parts) == 1:
        return parts[0]
    return LengthStats(
        *(np.concatenate([getattr(p, a) for p in parts]) for a in ("prompt", "thought", "answer")),
        dropped=sum(p.dropped for p in parts),
    )


def _refuse_thoughts(req: ConfigRequest, dataset_dir: Path, stats: LengthStats | None, warnings: list[str]) -> None:
    """answer-only trains with enable_thinking true: thoughts in the data would be trained, so refuse them."""
    if stats is not None:
        with_thought = int((stats.thought > 0).sum())
    elif _local_datasets(dataset_dir, req.datasets):
        with_thought = _count_thoughts(dataset_dir, req.datasets)
    else:
        warnings.append("--method answer-only: remote data not checked for thoughts; it must have none")
        return
    if with_thought:
        raise UserError(
            f"--method answer-only: {with_thought} record(s) of {', '.join(req.datasets)} have a thought, "
            "which would be trained. Re-convert with `lf-reasoning convert … --think drop` (or "
            "--think empty), or use --method distill to train the thoughts."
        )


def _count_thoughts(dataset_dir: Path, names: Sequence[str]) -> int:
    from lf_reasoning.llamafactory.tokens import iter_conversations
    from lf_reasoning.stats import dataset_files

    count = 0
    for name in names:
        entry, files = dataset_files(dataset_dir, name)
        for conversation in iter_conversations(name, entry, files):
            if conversation and any(
                m["role"] == "assistant" and re.search(r"<think>\s*\S", m["content"]) for m in conversation[1]
            ):
                count += 1
    return count


def _choose_cutoff(req: ConfigRequest, stats: LengthStats | None, warnings: list[str]) -> tuple[int, str]:
    """cutoff_len and why; refuses one that would truncate records unless ``allow_truncation``."""
    from lf_reasoning.stats import suggest_cutoff_len

    if stats is None:
        if req.cutoff_len is not None:
            return req.cutoff_len, "set with --cutoff-len (record lengths not measured)."
        warnings.append(
            f"cutoff_len {DEFAULT_CUTOFF_LEN} is a guess; measure with lf-reasoning stats or pass --cutoff-len"
        )
        return DEFAULT_CUTOFF_LEN, "a default for long reasoning records: lengths could not be measured."
    longest = stats.percentile(100.0)
    if req.cutoff_len is not None:
        cutoff, why = req.cutoff_len, f"set with --cutoff-len; the longest record has {longest} tokens."
    else:
        cutoff = suggest_cutoff_len(stats, COVERED_PERCENTILE)
        why = (
            f"covers p{COVERED_PERCENTILE:g} of the measured record lengths ({stats.percentile(COVERED_PERCENTILE)} "
            f"tokens; longest {longest}), rounded up to a multiple of 256."
        )
    share = stats.truncated_share(cutoff)
    if share > 0:
        count = round(share * stats.n)
        message = (
            f"cutoff_len {cutoff} would truncate {count} of {stats.n} records ({share:.1%}): LLaMA-Factory "
            "cuts their tail silently, the answer and EOS first."
        )
        if not req.allow_truncation:
            raise UserError(
                f"{message} Fix: drop them with `lf-reasoning convert … --max-tokens {cutoff} --tokenizer "
                f"{req.tokenizer or req.model}`, or pass --cutoff-len {suggest_cutoff_len(stats, 100.0)} "
                "(covers every record), or --allow-truncation to accept it."
            )
        warnings.append(message + " (allowed with --allow-truncation)")
        why += f" Truncates {count} record(s): allowed with --allow-truncation."
    return cutoff, why


def _training_keys(
    train: ConfigFile, finetuning: Finetuning, hardware: Hardware, cutoff_len: int, packing: bool, liger_kernel: bool
) -> None:
    full = finetuning == "full"
    # At most 2048 tokens per device step whatever the record length, in a power of two so that accumulation
    # makes up an effective batch of exactly 8.
    batch = next(b for b in (EFFECTIVE_BATCH, 4, 2, 1) if b * cutoff_len <= TOKENS_PER_STEP or b == 1)
    train.set(
        "per_device_train_batch_size",
        batch,
        f"records of up to {cutoff_len} tokens: {batch} per device step (at most {TOKENS_PER_STEP} tokens)."
        if batch > 1
        else "long reasoning records: one per device, accumulate instead.",
    )
    train.set(
        "gradient_accumulation_steps",
        EFFECTIVE_BATCH // batch,
        f"an effective batch of {EFFECTIVE_BATCH} records per device.",
    )
    train.set(
        "learning_rate",
        1.0e-5 if full else 1.0e-4,
        "full fine-tuning moves every weight: a small rate." if full else "a usual rate for LoRA.",
    )
    train.set("lr_scheduler_type", "cosine", "decays smoothly to zero.")
    train.set("warmup_steps", 0.1, "the first 10% of steps warm up (a float below 1 is a ratio).")
    train.set("logging_steps", 10, "a loss entry in trainer_log.jsonl every 10 steps.")
    train.set("save_steps", 500, "a checkpoint every 500 steps; an interrupted run resumes from the last one.")
    train.set("plot_loss", True, "writes training_loss.png into output_dir.")
    train.set("report_to", "none", "no experiment tracker (set wandb/tensorboard here if you use one).")
    if hardware != "cpu":
        train.set("bf16", True, "bf16 mixed precision: every recent NVIDIA GPU (Ampere or newer) has it.")
    if packing:
        train.set(
            "neat_packing",
            True,
            "packs several records into one cutoff_len sequence without letting them "
            "attend to each other (block-diagonal attention), so packing cannot mix thoughts; SFT only.",
        )
    if liger_kernel:
        train.set(
            "enable_liger_kernel",
            True,
            "Liger's fused kernels cut activation memory; needs `pip install liger-kernel` where it runs.",
        )


def _deepspeed_config(stage: int) -> dict[str, Any]:
    """LLaMA-Factory's examples/deepspeed/ds_z{2,3}_config.json: "auto" values are filled from the YAML."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": False, "contiguous_gradients": True}
    if stage == 2:
        zero |= {
            "allgather_partitions": True,
            "allgather_bucket_size": 5e8,
            "reduce_scatter": True,
            "reduce_bucket_size": 5e8,
            "round_robin_gradients": True,
        }
    else:
        zero |= {
            "sub_group_size": 1e9,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_max_live_parameters": 1e9,
            "stage3_max_reuse_distance": 1e9,
            "stage3_gather_16bit_weights_on_model_save": True,
        }
    return {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        "fp16": {
            "enabled": "auto",
            "loss_scale": 0,
            "loss_scale_window": 1000,
            "initial_scale_power": 16,
            "hysteresis": 2,
            "min_loss_scale": 1,
        },
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
    }


# ---------------------------------------------------------------------------------------------------- writing


def write_configs(configs: ConfigSet, out: Path) -> list[Path]:
    """Write the YAML files (and the DeepSpeed JSON) into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if configs.deepspeed:
        name, content = configs.deepspeed
        written.append(_write(out / name, json.dumps(content, indent=2) + "\n"))
    for file in configs.files:
        text = _header(file, configs) + yaml.safe_dump(file.values, sort_keys=False, allow_unicode=True, width=1000)
        written.append(_write(out / file.file_name, text))
    return written


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


_RUN = {
    "train": "lf-reasoning train {path} [key=value ...]",
    "predict": "lf-reasoning train {path}   (after train.yaml)",
    "export": "lf-reasoning train {path}   (after train.yaml: merges, then aligns the chat template)",
}


def _header(file: ConfigFile, configs: ConfigSet) -> str:
    path = f"{configs.relative_to}/{file.file_name}" if configs.relative_to else file.file_name
    lines = [
        f"{file.file_name}: LLaMA-Factory 0.9.5 config written by lf-reasoning {__version__} "
        f"(hardware profile: {configs.hardware}).",
        f"Run: {_RUN[file.kind].format(path=path)}",
    ]
    if configs.relative_to:
        lines.append(f"Its paths are relative: run it from the folder that holds {configs.relative_to}/.")
    if file.kind == "train" and configs.hardware in DISTRIBUTED:
        lines += [
            "DeepSpeed runs under torchrun: lf-reasoning train sets FORCE_TORCHRUN=1. Multi-node: on every node "
            "set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (and NPROC_PER_NODE) before the same command. Ray "
            "instead of torchrun: USE_RAY=1 lf-reasoning train train.yaml ray_num_workers=N (not with "
            "custom_templates: Ray workers import only LLaMA-Factory)."
        ]
    if file.kind == "export":
        lines += [
            "llamafactory-cli export keeps the base tokenizer's chat template; lf-reasoning train checks it "
            "against the training template after the merge and replaces it when they differ."
        ]
    lines += [
        f"Checked with LLaMA-Factory's own argument parser{'; simulated: ' if configs.skipped else ''}"
        + "; ".join(configs.skipped)
        + ".",
        "",
        "Why each key has its value:",
    ]
    out = ["# " + line if line else "#" for text in lines for line in (textwrap.wrap(text, 116) or [""])]
    for key, why in file.reasons.items():
        out += ["#   " + line for line in textwrap.wrap(f"{key}: {why}", 114, subsequent_indent="    ")]
    return "\n".join(out) + "\n\n"


# --------------------------------------------------------------------------------------------------- checking


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
    kind = config_kind(config)
    _check_paths(config, kind, source, pending)
    _check_template_key(config, source)
    if config.get("dataset_dir") is not None or kind != "export":
        dataset_dir = Path(str(config.get("dataset_dir", "data"))).expanduser()
        for key in ("dataset", "eval_dataset"):
            names = [n.strip() for n in str(config[key]).split(",")] if config.get(key) else []
            _check_datasets(dataset_dir, names, f"{source}: key '{key}':")
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
            _check_model(str(model))
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
