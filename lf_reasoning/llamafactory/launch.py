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
reads. Under Ray (``USE_RAY=1``) this module is the Ray driver: see ``lf_reasoning.llamafactory.ray_launch``,
whose workers register the templates too.
"""

from __future__ import annotations

import copy
import io
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.custom_template import (
    CustomTemplate,
    builtin_template_names,
    load_custom_template,
    register,
)

CUSTOM_TEMPLATES_KEY = "custom_templates"
MODULE = "lf_reasoning.llamafactory.launch"


def _env_enabled(env: Mapping[str, str], name: str) -> bool:
    """``llamafactory.extras.misc.is_env_enabled`` on a given environment."""
    return env.get(name, "0").lower() in ("true", "y", "1")


def read_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Load a YAML/JSON config and apply ``key=value`` overrides as ``llamafactory-cli train`` does (OmegaConf)."""
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from lf_reasoning.textfile import read_text

    path = Path(path)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not KEY=VALUE (e.g. max_steps=10)")
    try:
        cli = OmegaConf.from_cli(list(overrides))
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise UserError(f"overrides {' '.join(overrides)}: a value is not valid YAML ({problem}); quote it") from None
    text = read_text(path, "config")
    not_a_mapping = UserError(f"{path}: a training config is a mapping of LLaMA-Factory keys (`key: value` lines)")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            if not isinstance(data, dict):
                raise not_a_mapping
            base = OmegaConf.create(data)
        else:
            base = OmegaConf.load(io.StringIO(text))  # as llamafactory-cli reads it (1e-5 is a float)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        raise UserError(_yaml_error(path, exc)) from None
    except OSError:  # from a StringIO: OmegaConf's "Invalid loaded object type" (a scalar)
        raise not_a_mapping from None
    except OmegaConfBaseException as exc:  # e.g. an unclosed ${...} interpolation
        raise UserError(f"{path}: OmegaConf cannot read it: {' '.join(str(exc).split())}") from None
    if not isinstance(base, DictConfig):  # a list
        raise not_a_mapping
    try:
        config = OmegaConf.to_container(OmegaConf.merge(base, cli))
    except OmegaConfBaseException as exc:
        raise UserError(f"{path}: cannot apply the overrides: {' '.join(str(exc).split())}") from None
    assert isinstance(config, dict)
    return config


def _yaml_error(path: Path, exc: Exception) -> str:
    """A YAML syntax error as ``FILE:LINE:COLUMN: what``, with a hint for the usual cause (tabs)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    hint = "indent with spaces, not tabs" if "tab" in problem else "check the indentation and quoting on that line"
    return f"{where}: invalid YAML: {problem}{f' ({context})' if context else ''}; {hint}"


def template_paths(config: Mapping[str, Any], config_dir: Path | None) -> list[Path]:
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
    return [register(template) for template in _config_templates(config, config_dir)]


def _config_templates(config: Mapping[str, Any], config_dir: str | Path | None) -> list[CustomTemplate]:
    paths = template_paths(config, Path(config_dir) if config_dir is not None else None)
    return [load_custom_template(path) for path in paths]


def needs_launcher(config: Mapping[str, Any]) -> bool:
    """True when ``llamafactory-cli train`` cannot run ``config``: it has custom templates or an unknown template."""
    if config.get(CUSTOM_TEMPLATES_KEY):
        return True
    template = config.get("template")
    return template is not None and template not in builtin_template_names()


def run_training(config: Mapping[str, Any], config_dir: str | Path | None = None) -> None:
    """Register the config's custom templates, then train with ``llamafactory.train.tuner.run_exp`` (under
    ``USE_RAY=1``: on Ray workers that register them too, see ``ray_launch``).

    ``config`` is not modified. ``config_dir`` is the folder relative template paths are resolved against
    (default: the working directory). LLaMA-Factory mutates the template it trains with (``default_system``,
    ``enable_thinking``, tool formats); the run gets a copy, so a later run in this process starts clean.
    """
    args = dict(config)
    templates = _config_templates(args, config_dir)
    names = [register(t) for t in templates]
    args.pop(CUSTOM_TEMPLATES_KEY, None)
    template = args.get("template")
    if template is not None and template not in builtin_template_names() and template not in names:
        raise UserError(
            f"key 'template': '{template}' is neither built into LLaMA-Factory nor defined in "
            f"'{CUSTOM_TEMPLATES_KEY}'; add its YAML there or pick a built-in template"
        )

    if _env_enabled(os.environ, "USE_RAY"):
        from lf_reasoning.llamafactory.ray_launch import run_on_ray

        run_on_ray(args, templates)  # every worker is a fresh process: nothing here to restore
        return

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
