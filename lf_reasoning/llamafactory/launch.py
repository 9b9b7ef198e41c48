"""Run LLaMA-Factory training with custom templates registered first, in this process or under torchrun.

A training config may carry one key of ours, ``custom_templates``: a list of template YAML files (see
``lf_reasoning.llamafactory.custom_template``; relative paths are resolved against the config's folder).
``run_training`` removes it, registers the templates, then calls ``llamafactory.train.tuner.run_exp``.

Why a module of our own: templates live in LLaMA-Factory's in-process ``TEMPLATES`` dict. With several GPUs
or ``FORCE_TORCHRUN=1``, ``llamafactory-cli train`` re-execs ``torchrun .../llamafactory/launcher.py``; every
rank is a fresh interpreter that imports only LLaMA-Factory, so the registration is lost and it fails with
"Template X does not exist". Instead, start this module under torchrun::

    torchrun --nproc_per_node N -m lf_reasoning.llamafactory.launch train.yaml [key=value ...]

Each rank then loads the config, registers the templates and only then enters ``run_exp``.
``launcher_command`` builds that command from the same environment variables LLaMA-Factory's launcher
reads. Ray (``USE_RAY=1``) starts workers that import only LLaMA-Factory, so it is refused with custom
templates.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.custom_template import builtin_template_names, register_custom_template

CUSTOM_TEMPLATES_KEY = "custom_templates"
MODULE = "lf_reasoning.llamafactory.launch"


def _env_enabled(env: Mapping[str, str], name: str) -> bool:
    """``llamafactory.extras.misc.is_env_enabled`` on a given environment."""
    return env.get(name, "0").lower() in ("true", "y", "1")


def read_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Load a YAML/JSON config and apply ``key=value`` overrides as ``llamafactory-cli train`` does (OmegaConf)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not KEY=VALUE (e.g. max_steps=10)")
    try:
        if path.suffix == ".json":
            base = OmegaConf.create(json.loads(path.read_text(encoding="utf-8")))
        else:
            base = OmegaConf.load(path.absolute())
        config = OmegaConf.to_container(OmegaConf.merge(base, OmegaConf.from_cli(list(overrides))))
    except OSError as exc:
        raise UserError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    except (ValueError, OmegaConfBaseException) as exc:  # json/yaml syntax errors are ValueErrors
        raise UserError(f"{path}: cannot parse config: {exc}") from exc
    if not isinstance(config, dict):
        raise UserError(f"{path}: a training config is a mapping of LLaMA-Factory keys")
    return config


def _template_paths(config: Mapping[str, Any], config_dir: Path | None) -> list[Path]:
    value = config.get(CUSTOM_TEMPLATES_KEY) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise UserError(f"key '{CUSTOM_TEMPLATES_KEY}': must be a list of template YAML paths, got {value!r}")
    base = config_dir or Path.cwd()
    # an absolute path stays as is; ".." is resolved by name (the config's folder may not exist yet)
    return [Path(os.path.normpath(base / Path(p).expanduser())) for p in value]


def register_config_templates(config: Mapping[str, Any], config_dir: str | Path | None = None) -> list[str]:
    """Register every template in ``config['custom_templates']`` and return their names."""
    paths = _template_paths(config, Path(config_dir) if config_dir is not None else None)
    return [register_custom_template(path) for path in paths]


def needs_launcher(config: Mapping[str, Any]) -> bool:
    """True when ``llamafactory-cli train`` cannot run ``config``: it has custom templates or an unknown template."""
    if config.get(CUSTOM_TEMPLATES_KEY):
        return True
    template = config.get("template")
    return template is not None and template not in builtin_template_names()


def run_training(config: Mapping[str, Any], config_dir: str | Path | None = None) -> None:
    """Register the config's custom templates, then train with ``llamafactory.train.tuner.run_exp``.

    ``config`` is not modified. ``config_dir`` is the folder relative template paths are resolved against
    (default: the working directory). LLaMA-Factory mutates the template it trains with (``default_system``,
    ``enable_thinking``, tool formats); the run gets a copy, so a later run in this process starts clean.
    """
    args = dict(config)
    names = register_config_templates(args, config_dir)
    args.pop(CUSTOM_TEMPLATES_KEY, None)
    if names and _env_enabled(os.environ, "USE_RAY"):
        raise UserError("Ray workers (USE_RAY=1) cannot see custom templates; unset USE_RAY, use FORCE_TORCHRUN=1")
    template = args.get("template")
    if template is not None and template not in builtin_template_names() and template not in names:
        raise UserError(
            f"key 'template': '{template}' is neither built into LLaMA-Factory nor defined in "
            f"'{CUSTOM_TEMPLATES_KEY}'; add its YAML there or pick a built-in template"
        )

    from llamafactory.data.template import TEMPLATES
    from llamafactory.train.tuner import run_exp

    shared = TEMPLATES.get(template) if template is not None else None
    if shared is not None:
        TEMPLATES[template] = copy.deepcopy(shared)
    try:
        run_exp(args)
    finally:
        if shared is not None:
            TEMPLATES[template] = shared


def launcher_command(
    config_path: str | Path, overrides: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> list[str]:
    """The command that trains ``config_path`` with this module: plain Python, or torchrun when distributed.

    Mirrors ``llamafactory-cli train``'s choice: torchrun when ``FORCE_TORCHRUN`` is set or more than one
    accelerator is visible (and neither ``USE_RAY`` nor ``USE_KT``), with ``NNODES``, ``NODE_RANK``,
    ``NPROC_PER_NODE``, ``MASTER_ADDR`` and ``MASTER_PORT`` read from ``env`` (default ``os.environ``). It runs
    ``torch.distributed.run`` with this interpreter, so unlike LF's bare ``torchrun`` it needs no venv on PATH.
    """
    from llamafactory.extras.misc import find_available_port, get_device_count

    env = os.environ if env is None else env
    target = [MODULE, str(config_path), *overrides]
    if not _env_enabled(env, "FORCE_TORCHRUN") and (
        get_device_count() <= 1 or _env_enabled(env, "USE_RAY") or _env_enabled(env, "USE_KT")
    ):
        return [sys.executable, "-m", *target]
    nproc = env.get("NPROC_PER_NODE") or str(max(1, get_device_count()))
    port = env.get("MASTER_PORT") or str(find_available_port())
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", env.get("NNODES", "1"), "--node_rank", env.get("NODE_RANK", "0"),
        "--nproc_per_node", nproc, "--master_addr", env.get("MASTER_ADDR", "127.0.0.1"), "--master_port", port,
        "-m", *target,
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lf_reasoning.llamafactory.launch CONFIG.yaml [key=value ...]``: train, return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: python -m {MODULE} CONFIG.yaml [KEY=VALUE ...]", file=sys.stderr)
        return 0 if args else 2
    try:
        config_path = Path(args[0])
        run_training(read_config(config_path, args[1:]), config_dir=config_path.parent)
    except UserError as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
