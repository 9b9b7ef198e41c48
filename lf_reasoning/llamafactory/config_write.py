"""Write a built :class:`~lf_reasoning.llamafactory.config_build.ConfigSet`: each YAML file behind a comment
header that says how to run it and why each key has its value, and the DeepSpeed JSON beside them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import yaml

from lf_reasoning import __version__
from lf_reasoning.atomic import AtomicFile, commit_together
from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.compat import llamafactory_version
from lf_reasoning.llamafactory.config_build import ConfigFile, ConfigSet
from lf_reasoning.llamafactory.config_check import DISTRIBUTED
from lf_reasoning.llamafactory.serving import serving_note
from lf_reasoning.paths import Target, check_targets


def write_configs(configs: ConfigSet, out: Path, *, force: bool = False) -> list[Path]:
    """Write the YAML files (and the DeepSpeed JSON) into ``out`` as one step; returns the paths written.

    A YAML file already there is replaced only when it is unedited since lf-reasoning wrote it (its last line
    holds the hash of the rest) or with ``force``: a hand-tuned train.yaml is never lost silently."""
    texts: dict[Path, str] = {}
    if configs.deepspeed:
        name, content = configs.deepspeed
        texts[out / name] = json.dumps(content, indent=2) + "\n"
    for file in configs.files:
        text = _header(file, configs) + yaml.safe_dump(file.values, sort_keys=False, allow_unicode=True, width=1000)
        texts[out / file.file_name] = _stamped(text)
    targets = [
        Target("the config", path, ours=is_unedited, foreign="was edited after lf-reasoning wrote it")
        if path.suffix == ".yaml"
        # JSON has no comment for a stamp, and the DeepSpeed file depends on its ZeRO stage (its name) alone: one
        # that differs from what lf-reasoning writes for that name was edited
        else Target(
            "the DeepSpeed config", path, ours=_same_bytes(text), foreign="differs from what lf-reasoning writes"
        )
        for path, text in texts.items()
    ]
    check_targets(targets, force=force, force_hint="pass --force to replace it (or write to another --out)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create it: {err.strerror}") from err
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(AtomicFile(path)) for path in texts]
        for f, text in zip(files, texts.values(), strict=True):
            f.write(text.encode())
        commit_together(files)
    return list(texts)


_STAMP = "# lf-reasoning sha256 of the lines above (edit freely: an edited file is never overwritten): "


def _stamped(text: str) -> str:
    return f"{text}{_STAMP}{hashlib.sha256(text.encode()).hexdigest()}\n"


def _same_bytes(text: str) -> Callable[[Path], bool]:
    return lambda path: path.read_bytes() == text.encode()


def is_unedited(path: Path) -> bool:
    """Whether ``path`` is a config lf-reasoning wrote and nobody changed since."""
    text = path.read_text(encoding="utf-8", errors="replace")
    body, _, last = text.removesuffix("\n").rpartition("\n")
    if not last.startswith(_STAMP):
        return False
    return hashlib.sha256((body + "\n").encode()).hexdigest() == last.removeprefix(_STAMP)


_RUN = {
    "train": "lf-reasoning train {path} [key=value ...]",
    "predict": "lf-reasoning train {path}   (after train.yaml)",
    "export": "lf-reasoning train {path}   (after train.yaml: merges, then aligns the chat template)",
}


def _header(file: ConfigFile, configs: ConfigSet) -> str:
    path = f"{configs.relative_to}/{file.file_name}" if configs.relative_to else file.file_name
    lines = [
        f"{file.file_name}: LLaMA-Factory {llamafactory_version()} config written by lf-reasoning {__version__} "
        f"(hardware profile: {configs.hardware}).",
        f"Run: {_RUN[file.kind].format(path=path)}",
    ]
    if configs.relative_to:
        lines.append(f"Its paths are relative: run it from the folder that holds {configs.relative_to}/.")
    if file.kind == "train" and configs.hardware in DISTRIBUTED:
        lines += [
            "DeepSpeed runs under torchrun: lf-reasoning train sets FORCE_TORCHRUN=1 (as for any run with NNODES "
            "above 1). Multi-node: run the same command on every node with NNODES (the node count), NODE_RANK (0 on "
            "the node at MASTER_ADDR, then 1, 2, …), MASTER_ADDR, MASTER_PORT (one free port, the same everywhere) "
            "and NPROC_PER_NODE (its GPUs); only global rank 0 saves output_dir. Nodes that share one file system "
            "(NFS) add data_shared_file_system=true, so that rank 0 alone tokenises. Ray instead of torchrun: "
            'USE_RAY=1 lf-reasoning train train.yaml ray_num_workers=N resources_per_worker=\'{"CPU": 8, '
            '"GPU": 1}\' (custom templates are registered in every worker).'
        ]
    if file.kind == "export":
        lines += [
            "llamafactory-cli export keeps the base tokenizer's chat template; lf-reasoning train checks it "
            "against the training template after the merge and replaces it when they differ."
        ]
        if file.values.get("template"):
            values = file.values
            lines += serving_note(values["template"], values.get("enable_thinking"), path, values["export_dir"])
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
