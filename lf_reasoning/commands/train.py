"""Run a LLaMA-Factory config (train, predict or export): check it, pick the launcher, stream the output.

The launcher is ``llamafactory-cli train|export`` unless the config needs templates registered first (a
``custom_templates`` key or a template LLaMA-Factory does not know): then training runs through our
``lf_reasoning.llamafactory.launch`` module (under torchrun when distributed, so every rank registers) and an
export runs in this process after the registration. DeepSpeed configs get ``FORCE_TORCHRUN=1``, which
LLaMA-Factory requires for them.
"""

from __future__ import annotations

import codecs
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lf_reasoning.llamafactory.chat_template import align_chat_template
from lf_reasoning.llamafactory.config_check import Kind, check_config, config_kind
from lf_reasoning.llamafactory.launch import CUSTOM_TEMPLATES_KEY

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RunPlan:
    """What ``lf-reasoning train CONFIG`` will run."""

    config_path: Path
    config: dict[str, Any]  # overrides applied
    kind: Kind
    command: list[str]  # empty for an in-process export
    env: dict[str, str] = field(default_factory=dict)  # set on top of the current environment

    def describe(self) -> str:
        """The exact command and the resolved config, as ``--dry-run`` prints them."""
        if self.command:
            command = shlex.join([*(f"{k}={v}" for k, v in self.env.items()), *self.command])
        else:
            command = "(in this process, after registering the custom templates) llamafactory.train.tuner.export_model"
        resolved = yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True, width=1000)
        return f"command: {command}\nresolved config ({self.kind}):\n{resolved}"


def plan_run(config_path: Path, overrides: Sequence[str] = ()) -> RunPlan:
    """Read ``config_path`` with ``key=value`` overrides, refuse what LLaMA-Factory would refuse, choose the command."""
    from llamafactory.extras.misc import is_env_enabled

    from lf_reasoning.llamafactory.launch import launcher_command, needs_launcher, read_config

    config = read_config(config_path, overrides)
    check_config(config, source=str(config_path), config_dir=config_path.parent)
    kind = config_kind(config)
    # LLaMA-Factory runs DeepSpeed only under torchrun, which it starts by itself only with several local GPUs
    torchrun = kind == "train" and config.get("deepspeed") and not is_env_enabled("USE_RAY")
    env = {"FORCE_TORCHRUN": "1"} if torchrun else {}
    if not needs_launcher(config):
        command = [*_llamafactory_cli(), "export" if kind == "export" else "train", str(config_path), *overrides]
    elif kind == "export":
        command = []
    else:
        command = launcher_command(config_path, overrides, env={**os.environ, **env})
    return RunPlan(config_path, config, kind, command, env)


def _llamafactory_cli() -> list[str]:
    """``llamafactory-cli`` of this interpreter's environment (a venv need not be on PATH)."""
    beside = Path(sys.executable).with_name("llamafactory-cli")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("llamafactory-cli")
    return [found] if found else [sys.executable, "-m", "llamafactory.cli"]


def run_plan(plan: RunPlan, echo: Echo) -> int:
    """Run ``plan``, streaming its output to ``echo``; returns the exit code (0 on success)."""
    if plan.command:
        code = _stream(plan.command, {**os.environ, **plan.env, "PYTHONUNBUFFERED": "1"}, echo)
    else:
        from llamafactory.train.tuner import export_model

        export_model({k: v for k, v in plan.config.items() if k != CUSTOM_TEMPLATES_KEY})
        code = 0
    if code == 0 and plan.kind == "export":
        template = plan.config.get("template")
        if template is None:
            echo("no template in the config: the exported chat template was not checked against training\n")
        else:
            check = align_chat_template(
                Path(plan.config["export_dir"]),
                template,
                plan.config.get("enable_thinking", True),
                bool(plan.config.get("preserve_thinking", False)),
            )
            echo(check.message + "\n")
    return code


def _stream(command: list[str], env: dict[str, str], echo: Echo) -> int:
    """Run ``command``, passing its combined output through as it comes (progress bars included)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while chunk := os.read(process.stdout.fileno(), 65536):
            echo(decoder.decode(chunk))
        echo(decoder.decode(b"", final=True))
        return process.wait()
    except KeyboardInterrupt:  # the child got the same SIGINT: let it stop and report its code
        return process.wait()


def result_paths(plan: RunPlan) -> list[tuple[str, Path]]:
    """Where a successful run left its results: (what, path) for each file or folder that exists."""
    if plan.kind == "export":
        candidates = [("merged model", Path(plan.config["export_dir"]))]
    else:
        out = Path(plan.config.get("output_dir", "trainer_output"))
        if plan.kind == "predict":
            candidates = [
                ("predictions", out / "generated_predictions.jsonl"),
                ("metrics", out / "predict_results.json"),
            ]
        else:
            adapter = plan.config.get("finetuning_type", "lora") == "lora"
            candidates = [
                ("adapter" if adapter else "model", out),
                ("loss plot", out / "training_loss.png"),
                ("training log", out / "trainer_log.jsonl"),
            ]
    return [(what, path) for what, path in candidates if path.exists()]
