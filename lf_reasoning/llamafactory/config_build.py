"""Build LLaMA-Factory configs for reasoning fine-tunes: the train/predict/export YAML and why each key has its value.

``build_configs`` turns a few choices (a :class:`ConfigRequest`: model, data, method, fine-tuning type, hardware)
into the three files, recording why each non-default key has its value, and runs every file through
:func:`~lf_reasoning.llamafactory.config_check.check_config` for the target hardware. Writing them, with that
explanation as a comment header, is :mod:`lf_reasoning.llamafactory.config_write`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.config_check import (
    DISTRIBUTED,
    HARDWARE,
    Hardware,
    Kind,
    check_config,
    check_datasets,
    check_model,
)
from lf_reasoning.llamafactory.config_data import big_data_keys
from lf_reasoning.llamafactory.config_lengths import cutoff_len_for
from lf_reasoning.llamafactory.launch import CUSTOM_TEMPLATES_KEY
from lf_reasoning.llamafactory.thought_words import refuse_mismatch

if TYPE_CHECKING:
    from lf_reasoning.llamafactory.templates import TemplateChoice

Method = Literal["distill", "cot", "answer-only", "answer-only-masked", "mixed"]
Finetuning = Literal["lora", "qlora", "full"]
METHODS: tuple[Method, ...] = get_args(Method)
FINETUNINGS: tuple[Finetuning, ...] = get_args(Finetuning)

EFFECTIVE_BATCH = 8  # records per optimizer step and device
TOKENS_PER_STEP = 2048  # padded tokens per forward pass and device that fit beside a 7B model on one GPU
HELD_OUT = 0.05  # val_size: share of records kept out of training and predicted on
# Recommended sampling for DeepSeek-R1 and Qwen3 in thinking mode (greedy decoding makes them repeat).
TEMPERATURE, TOP_P = 0.6, 0.95
_NOT_APPLICABLE: Any = object()  # enable_thinking has no effect on a plain template: the key is left out


def default_hardware() -> Hardware:
    """The profile of this machine: no accelerator → cpu, one → gpu, several → multi-gpu."""
    from llamafactory.extras.misc import get_device_count

    count = get_device_count()
    return "cpu" if count == 0 else "gpu" if count == 1 else "multi-gpu"


@dataclass(frozen=True)
class ConfigRequest:
    """The options of ``lf-reasoning config``, checked on construction (``UserError`` naming the option)."""

    model: str  # hub id or local folder
    datasets: tuple[str, ...]  # names in dataset_dir/dataset_info.json
    dataset_dir: Path
    out: Path  # where train.yaml, predict.yaml, export.yaml (and outputs) go
    method: Method = "distill"
    finetuning: Finetuning = "lora"
    hardware: Hardware | None = None  # None: what this machine has (filled in on construction)
    template: str | None = None  # override of the template chosen from the model
    template_file: Path | None = None  # a custom template YAML (registered at run time)
    cutoff_len: int | None = None  # None: measured (p99, multiple of 256) when a tokenizer is at hand
    eval_dataset: str | None = None  # held-out data to predict on; None: a HELD_OUT split of the training data
    tokenizer: str | None = None  # for measuring lengths; default: the model's
    allow_truncation: bool = False
    liger_kernel: bool = False
    packing: bool = False
    relative_paths: bool = False  # write paths relative to the working directory (configs committed to a repo)

    def __post_init__(self) -> None:
        choices: tuple[tuple[str, object, tuple[object, ...]], ...] = (
            ("--method", self.method, METHODS),
            ("--finetuning", self.finetuning, FINETUNINGS),
            ("--hardware", self.hardware, (None, *HARDWARE)),
        )
        for option, value, allowed in choices:
            if value not in allowed:
                raise UserError(f"{option} {value}: not one of {', '.join(str(a) for a in allowed if a)}")
        if not self.datasets:
            raise UserError("--dataset: no dataset name given")
        if self.cutoff_len is not None and self.cutoff_len < 1:
            raise UserError(f"--cutoff-len {self.cutoff_len}: must be at least 1")
        if self.hardware is None:
            object.__setattr__(self, "hardware", default_hardware())  # frozen: set once, here
        if self.finetuning == "qlora" and self.hardware == "cpu":
            raise UserError("--finetuning qlora: 4-bit QLoRA needs a CUDA GPU (bitsandbytes); on a CPU use lora")
        if (self.packing or self.liger_kernel) and self.hardware == "cpu":
            raise UserError("--packing/--liger-kernel are GPU options (neat packing and Liger kernels target CUDA)")


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


@dataclass(frozen=True)
class _Paths:
    """The request's folders, resolved, and how the files name a path (``--relative-paths``: from the cwd)."""

    dataset_dir: Path
    out: Path
    relative: bool

    @property
    def train_dir(self) -> Path:
        return self.out / "train"

    def shown(self, path: Path) -> str:
        return os.path.relpath(path) if self.relative else str(path)


def build_configs(req: ConfigRequest) -> ConfigSet:
    """Choose every key for ``req``, check each file with LLaMA-Factory's parser and return them (nothing written)."""
    hardware = req.hardware
    assert hardware is not None  # filled in by ConfigRequest.__post_init__
    notes = [check_model(req.model)]
    paths = _Paths(req.dataset_dir.expanduser().resolve(), req.out.expanduser().resolve(), req.relative_paths)
    names = [*req.datasets, *([req.eval_dataset] if req.eval_dataset else [])]
    check_datasets(paths.dataset_dir, names, "--dataset")
    choice, custom = _template_for(req, paths.out)
    notes.append(f"template {choice.template}: {choice.reason}")
    refuse_mismatch(paths.dataset_dir, names, choice.template, "--dataset: ")  # thoughts in another template's words
    warnings = list(choice.warnings)
    enable_thinking, thinking_why = _thinking_for(req.method, choice.reasoning)
    if not choice.reasoning:
        notes.append(
            f"enable_thinking left out: `{choice.template}` is a plain template, so it has no effect; thoughts in "
            "the data are trained verbatim and answers without one get no empty block"
        )
    measured_thinking = True if enable_thinking is _NOT_APPLICABLE else enable_thinking
    cutoff_len, cutoff_why = cutoff_len_for(req, paths.dataset_dir, choice.template, measured_thinking, warnings)

    train, predict, export = ConfigFile("train"), ConfigFile("predict"), ConfigFile("export")
    # a local folder (`run/train`, `~/m`) is written absolute like the other paths; --relative-paths: as given
    local = Path(req.model).expanduser()
    model = os.path.abspath(local) if local.is_dir() and not req.relative_paths else req.model
    _model_keys(model, req.finetuning, paths, train, predict, export)
    _task_keys(req.finetuning, train, predict, export)
    _template_keys((train, predict, export), choice, custom, enable_thinking, thinking_why)
    _data_keys(req, paths, (cutoff_len, cutoff_why), train, predict, warnings)
    _output_keys(req.finetuning, paths, train, predict, export)
    _training_keys(train, req.finetuning, hardware, cutoff_len, req.packing, req.liger_kernel)
    big_data_keys(req, train, hardware, _local_files(paths, req.datasets), paths.shown(paths.out / "tokenized"))
    _predict_keys(predict, hardware, cutoff_len)
    deepspeed = _deepspeed_keys(train, req.finetuning, paths) if hardware in DISTRIBUTED else None
    relative_to = paths.shown(paths.out) if req.relative_paths else None
    configs = ConfigSet([train, predict, export], hardware, deepspeed, notes, warnings, relative_to=relative_to)
    _check_files(configs, paths)
    return configs


def _local_files(paths: _Paths, names: Sequence[str]) -> list[Path] | None:
    """The data files of datasets ``names``, or None when one is remote (a hub or a URL: its size is unknown)."""
    from lf_reasoning.llamafactory.lengths import dataset_files

    try:
        return [f for name in names for f in dataset_files(paths.dataset_dir, name)[1]]
    except UserError:  # remote, or a format read only by LLaMA-Factory
        return None


def _template_for(req: ConfigRequest, out: Path) -> tuple[TemplateChoice, list[str]]:
    """The template to train with, and the ``custom_templates`` key: the template file to register, if any."""
    from lf_reasoning.llamafactory.custom_template import load_custom_template, register
    from lf_reasoning.llamafactory.templates import TemplateChoice, choose_template, is_reasoning_template

    if req.template_file is None:
        return choose_template(req.model, override=req.template), []
    path = req.template_file.expanduser().resolve()
    template = load_custom_template(path)
    if req.template not in (None, template.name):
        raise UserError(f"--template {req.template} contradicts --template-file {path}, which defines {template.name}")
    register(template)
    why = f"`{template.name}` is defined in {path}; lf-reasoning train registers it before LLaMA-Factory starts."
    # lf-reasoning train resolves a relative template path against the config's own folder
    custom = os.path.relpath(path, out) if req.relative_paths else str(path)
    return TemplateChoice(template.name, why, is_reasoning_template(template.name)), [custom]


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
    if method == "answer-only-masked":
        return False, (
            "the data has no thoughts and the model keeps its thinking: LLaMA-Factory puts the empty block "
            "`<think>\\n\\n</think>\\n\\n` in the prompt, masked, and trains only the answer, so the model is "
            "not taught to skip thinking; infer with enable_thinking false to get direct answers."
        )
    return None, (
        "mixed data: records with a thought train it; records without one get the empty block in the "
        "prompt, masked (LLaMA-Factory's inference then adds the empty block: no thinking by default)."
    )


# ------------------------------------------------------------------------------------------------ the keys
# Each step appends its keys to the files in the order they are written: the order of the YAML files.


def _model_keys(
    model: str, finetuning: Finetuning, paths: _Paths, train: ConfigFile, predict: ConfigFile, export: ConfigFile
) -> None:
    """The model (base or fine-tuned), the adapter and the quantization each file loads."""
    adapter = finetuning != "full"
    for file in (train, predict, export):
        if file is train or adapter:
            file.set(
                "model_name_or_path",
                model,
                "the model to fine-tune." if file is train else "the base model the adapter was trained on.",
            )
        else:
            file.set(
                "model_name_or_path",
                paths.shown(paths.train_dir),
                "full fine-tuning saves the model in train's output_dir.",
            )
        if file is not train and adapter:
            file.set(
                "adapter_name_or_path",
                paths.shown(paths.train_dir),
                "the LoRA adapter train.yaml writes to its output_dir.",
            )
        if finetuning == "qlora" and file is not export:
            file.set("quantization_bit", 4, "QLoRA: the frozen base model is loaded in 4 bits (bitsandbytes NF4).")


def _task_keys(finetuning: Finetuning, train: ConfigFile, predict: ConfigFile, export: ConfigFile) -> None:
    """What each file runs: the stage, train or predict, and the fine-tuning type."""
    train.set("stage", "sft", "supervised fine-tuning on prompt → thought + answer.")
    predict.set("stage", "sft", "prediction runs through the SFT trainer (predict_with_generate).")
    train.set("do_train", True, "this file trains.")
    predict.set("do_predict", True, "this file generates predictions; llamafactory-cli eval is gone in 0.9.5.")
    predict.set("predict_with_generate", True, "LLaMA-Factory requires it to save generated_predictions.jsonl.")
    why = {
        "lora": "LoRA adapter (rank 8 on all linear layers: LLaMA-Factory's defaults).",
        "qlora": "QLoRA is LoRA on a 4-bit base model.",
        "full": "all weights are trained.",
    }[finetuning]
    for file in (train, predict, export):
        file.set("finetuning_type", "full" if finetuning == "full" else "lora", why)


def _template_keys(
    files: Sequence[ConfigFile], choice: TemplateChoice, custom: list[str], enable_thinking: Any, thinking_why: str
) -> None:
    """The same template (and custom template file, and enable_thinking) in every file."""
    for file in files:
        if custom:
            file.set(
                CUSTOM_TEMPLATES_KEY,
                custom,
                "lf-reasoning's key: template YAML registered into "
                "LLaMA-Factory in every process before it parses this file (run with lf-reasoning train).",
            )
        file.set("template", choice.template, choice.reason)
        if enable_thinking is not _NOT_APPLICABLE:
            file.set("enable_thinking", enable_thinking, thinking_why + " Same value in all three files.")


def _data_keys(
    req: ConfigRequest,
    paths: _Paths,
    cutoff: tuple[int, str],
    train: ConfigFile,
    predict: ConfigFile,
    warnings: list[str],
) -> None:
    """The datasets trained and predicted on (a held-out split without --eval-dataset), and cutoff_len."""
    for file in (train, predict):
        file.set(
            "dataset_dir",
            paths.shown(paths.dataset_dir),
            "where dataset_info.json is (relative to the directory `lf-reasoning config` ran in: run from there)."
            if paths.relative
            else "where dataset_info.json is (absolute: runs start anywhere).",
        )
        file.set("cutoff_len", *cutoff)
    train.set("dataset", ",".join(req.datasets), "the converted dataset(s).")
    if req.eval_dataset:
        predict.set("eval_dataset", req.eval_dataset, "held-out data to predict on.")
        return
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


def _output_keys(
    finetuning: Finetuning, paths: _Paths, train: ConfigFile, predict: ConfigFile, export: ConfigFile
) -> None:
    """Where each file writes its results (folders of ``out``)."""
    shown = paths.shown
    train.set(
        "output_dir", shown(paths.train_dir), "adapter/model, checkpoints, trainer_log.jsonl and training_loss.png."
    )
    predict.set(
        "output_dir", shown(paths.out / "predict"), "generated_predictions.jsonl and predict_results.json go here."
    )
    export.set(
        "export_dir", shown(paths.out / "export"), "the merged model and tokenizer (loadable with transformers)."
    )
    if finetuning == "qlora":
        export.reasons["model_name_or_path"] = (
            "the unquantized base model: adapters cannot be merged into a 4-bit "
            "model, so QLoRA adapters are merged into the full-precision one."
        )


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


def _predict_keys(predict: ConfigFile, hardware: Hardware, cutoff_len: int) -> None:
    predict.set("max_new_tokens", cutoff_len, "room for a thought as long as the longest trained record.")
    predict.set("temperature", TEMPERATURE, "sampling recommended for R1/Qwen3 thinking (greedy decoding repeats).")
    predict.set("top_p", TOP_P, "sampling recommended for R1/Qwen3 thinking.")
    predict.set("report_to", "none", "no experiment tracker.")
    if hardware != "cpu":
        predict.set("bf16", True, "bf16 inference on the GPU.")


def _deepspeed_keys(train: ConfigFile, finetuning: Finetuning, paths: _Paths) -> tuple[str, dict[str, Any]]:
    """The DeepSpeed keys of a distributed train.yaml; returns the DeepSpeed file's name and content."""
    stage = 3 if finetuning == "full" else 2
    name = f"ds_z{stage}_config.json"
    sharded = (
        "weights, gradients and optimizer state are sharded: full fine-tuning"
        if stage == 3
        else "gradients and optimizer state are sharded; LoRA weights are small"
    )
    train.set(
        "deepspeed",
        paths.shown(paths.out / name),
        f"DeepSpeed ZeRO-{stage} ({sharded}); lf-reasoning train "
        "starts it under torchrun (FORCE_TORCHRUN=1), as LLaMA-Factory requires.",
    )
    train.set("ddp_timeout", 180000000, "rank 0 tokenizes the dataset first; the others must not time out.")
    return name, _deepspeed_config(stage)


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


def _check_files(configs: ConfigSet, paths: _Paths) -> None:
    """Each file through ``check_config`` for the target profile; what could not be checked here goes to skipped."""
    pending = {paths.shown(paths.train_dir)}  # produced by train.yaml: may not exist yet
    for file in configs.files:
        ds_content = configs.deepspeed[1] if configs.deepspeed and file.kind == "train" else None
        configs.skipped += check_config(
            file.values,
            target=configs.hardware,
            source=file.file_name,
            config_dir=paths.out,
            pending=pending,
            deepspeed=ds_content,
        )
    configs.skipped = list(dict.fromkeys(configs.skipped))
