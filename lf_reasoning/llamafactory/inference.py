"""The model a train or export config produced, loaded in LLaMA-Factory's own inference engine (``ChatModel``).

``served_model`` reads the config the way training wrote its results: a LoRA run is the base model plus the adapter
in ``output_dir``, a full (or freeze) run is ``output_dir`` itself, an export is the merged ``export_dir``; the
template, ``enable_thinking`` and custom templates come with it, so the model is prompted exactly as it was
trained. ``Engine`` generates through ``ChatModel`` (Hugging Face on the CPU, vLLM where installed and a GPU is
there) and hands back raw text plus token counts; splitting the thought out is the server's business.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.config_check import config_kind
from lf_reasoning.llamafactory.launch import CUSTOM_TEMPLATES_KEY, read_config, register_config_templates

Backend = Literal["auto", "huggingface", "vllm"]
# Keys of a train config that also shape inference (how the model is loaded and prompted).
_CARRIED = ("trust_remote_code", "quantization_bit", "quantization_method", "preserve_thinking", "default_system")


@dataclass(frozen=True)
class ServedModel:
    """What ``lf-reasoning serve CONFIG`` loads: ``args`` go to ``llamafactory.chat.ChatModel``."""

    args: dict[str, Any]
    template: str
    enable_thinking: bool | None
    description: str  # "base model + adapter DIR", "model DIR", … for the start-up line


def served_model(config_path: Path, backend: Backend = "auto") -> ServedModel:
    """The model ``config_path`` (a train, predict or export config) produced; ``UserError`` when it is not there."""
    config = read_config(config_path)
    template = config.get("template")
    if not isinstance(template, str):
        raise UserError(f"{config_path}: no 'template' key: serve needs the template the model was trained with")
    names = register_config_templates(config, config_path.parent)
    from lf_reasoning.llamafactory.custom_template import builtin_template_names

    if template not in builtin_template_names() and template not in names:
        raise UserError(
            f"{config_path}: template '{template}' is not built into LLaMA-Factory nor in {CUSTOM_TEMPLATES_KEY}"
        )
    kind = config_kind(config)
    if kind != "export" and not config.get("model_name_or_path"):
        raise UserError(f"{config_path}: no 'model_name_or_path' key: which model was trained?")
    finetuning = config.get("finetuning_type", "lora")
    args: dict[str, Any] = {
        "template": template,
        "enable_thinking": config.get("enable_thinking", True),
        "infer_backend": _backend(backend),
    }
    args.update({key: config[key] for key in _CARRIED if key in config})
    if kind == "export":
        model = Path(config["export_dir"])
        _need(model / "config.json", config_path, f"the merged model (export_dir {model})", "export")
        args["model_name_or_path"] = str(model)
        description = f"merged model {model}"
    elif kind == "predict":  # it names the trained model (and adapter) itself
        args["model_name_or_path"] = config["model_name_or_path"]
        if config.get("adapter_name_or_path"):
            args.update(adapter_name_or_path=config["adapter_name_or_path"], finetuning_type=finetuning)
        description = f"model {args['model_name_or_path']}" + (
            f" + adapter {config['adapter_name_or_path']}" if config.get("adapter_name_or_path") else ""
        )
    else:
        out = Path(config.get("output_dir", "trainer_output"))
        if finetuning == "lora":
            _need(out / "adapter_config.json", config_path, f"the trained adapter (output_dir {out})", "train")
            args.update(
                model_name_or_path=config["model_name_or_path"], adapter_name_or_path=str(out), finetuning_type="lora"
            )
            description = f"base model {config['model_name_or_path']} + adapter {out}"
        else:
            _need(out / "config.json", config_path, f"the trained model (output_dir {out})", "train")
            args["model_name_or_path"] = str(out)
            description = f"model {out}"
    return ServedModel(args, template, args["enable_thinking"], description)


def _need(path: Path, config_path: Path, what: str, verb: str) -> None:
    if not path.is_file():
        raise UserError(
            f"{config_path}: {what} is missing ({path.name} not found); run `lf-reasoning train {config_path}` first"
            + ("" if verb == "train" else " (after training)")
        )


def _backend(backend: Backend) -> str:
    """LLaMA-Factory's ``infer_backend``: vLLM when asked, or on ``auto`` where it is installed and a GPU is there."""
    if backend == "auto":
        import torch

        return "vllm" if importlib.util.find_spec("vllm") and torch.cuda.is_available() else "huggingface"
    if backend == "vllm" and not importlib.util.find_spec("vllm"):
        raise UserError("--backend vllm: vLLM is not installed (pip install vllm), or use --backend huggingface")
    return backend


@dataclass(frozen=True)
class Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length


class Engine:
    """``ChatModel`` loaded for ``served``, with what the server needs to know about its template and tokenizer."""

    def __init__(self, served: ServedModel) -> None:
        from llamafactory.chat import ChatModel

        self.chat_model = ChatModel(dict(served.args))
        engine = self.chat_model.engine
        self.tokenizer = engine.tokenizer
        self.template = engine.template
        self.thought_words: tuple[str, str] = tuple(self.template.thought_words)  # type: ignore[assignment]
        self.max_new_tokens: int = engine.generating_args.get("max_new_tokens") or 1024
        # A thought word made of special tokens would be decoded away (LLaMA-Factory's default): keep them then, and
        # cut the text at the stop tokens, which are decoded too.
        special = set(self.tokenizer.all_special_tokens)
        self.keep_special = any(token in word for word in self.thought_words for token in special)
        stop_ids = self.template.get_stop_token_ids(self.tokenizer)
        self.stop_words: tuple[str, ...] = (
            tuple(self.tokenizer.convert_ids_to_tokens(stop_ids)) if self.keep_special else ()
        )

    def _kwargs(self, params: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: v for k, v in params.items() if v is not None}
        if self.keep_special:
            kwargs["skip_special_tokens"] = False
        return kwargs

    async def complete(
        self, messages: list[dict[str, str]], system: str | None, params: dict[str, Any]
    ) -> list[Generated]:
        """One reply per requested sequence (``params``: temperature, top_p, max_new_tokens, num_return_sequences)."""
        responses = await self.chat_model.achat(messages, system, **self._kwargs(params))
        return [
            Generated(
                r.response_text, r.prompt_length, r.response_length, "stop" if r.finish_reason == "stop" else "length"
            )
            for r in responses
        ]

    def stream(self, messages: list[dict[str, str]], system: str | None, params: dict[str, Any]) -> AsyncIterator[str]:
        """The reply's text as it is generated."""
        return self.chat_model.astream_chat(messages, system, **self._kwargs(params))

    def prompt_tokens(self, messages: list[dict[str, str]], system: str | None) -> int:
        """Length of the prompt as the engine encodes it (a stream reports no counts of its own)."""
        ids, _ = self.template.encode_oneturn(self.tokenizer, [*messages, {"role": "assistant", "content": ""}], system)
        return len(ids)

    def text_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))
