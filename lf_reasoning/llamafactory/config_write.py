"""Write a built :class:`~lf_reasoning.llamafactory.config_build.ConfigSet`: each YAML file behind a comment
header that says how to run it and why each key has its value, and the DeepSpeed JSON beside them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import yaml

from lf_reasoning import __version__
from lf_reasoning.llamafactory.config_build import ConfigFile, ConfigSet
from lf_reasoning.llamafactory.config_check import DISTRIBUTED


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
