"""Run a LLaMA-Factory config (train, predict or export): check it, pick the launcher, stream the output.

The launcher is ``llamafactory-cli train|export`` unless the config needs templates registered first (a
``custom_templates`` key or a template LLaMA-Factory does not know) or ``USE_RAY=1``: then training runs through
our ``lf_reasoning.llamafactory.launch`` module (under torchrun when distributed, so every rank registers; the Ray
driver under Ray) and an export runs in this process after the registration. DeepSpeed configs and multi-node
runs (``NNODES`` > 1) get ``FORCE_TORCHRUN=1``, which LLaMA-Factory requires for them.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lf_reasoning.errors import EXIT_INTERRUPTED
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
    overrides: tuple[str, ...] = ()  # the KEY=VALUE arguments, repeated in the command that resumes the run
    warnings: tuple[str, ...] = ()  # checks that could not run, truncation allowed

    def describe(self) -> str:
        """The exact command and the resolved config, as ``--dry-run`` prints them."""
        if self.command:
            command = shlex.join([*(f"{k}={v}" for k, v in self.env.items()), *self.command])
        else:
            command = "(in this process, after registering the custom templates) llamafactory.train.tuner.export_model"
        resolved = yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True, width=1000)
        return f"command: {command}\nresolved config ({self.kind}):\n{resolved}"


def plan_run(config_path: Path, overrides: Sequence[str] = (), *, allow_truncation: bool = False) -> RunPlan:
    """Read ``config_path`` with ``key=value`` overrides, refuse what LLaMA-Factory would refuse, choose the command.

    An override of a key that changes what ``cutoff_len`` truncates (``LENGTH_KEYS``) re-runs the truncation check
    ``lf-reasoning config`` ran when it wrote the file: refused unless ``allow_truncation``."""
    from llamafactory.extras.misc import is_env_enabled

    from lf_reasoning.llamafactory.config_lengths import LENGTH_KEYS, check_truncation
    from lf_reasoning.llamafactory.launch import launcher_command, needs_launcher, read_config
    from lf_reasoning.llamafactory.tokenized import check_tokenized_path

    config = read_config(config_path, overrides)
    check_config(config, source=str(config_path), config_dir=config_path.parent)
    kind = config_kind(config)
    warnings: list[str] = []
    if kind == "train" and any(o.partition("=")[0].strip() in LENGTH_KEYS for o in overrides):
        warnings = check_truncation(config, f"{config_path} with {' '.join(overrides)}", allow=allow_truncation)
    if kind == "train":
        warnings += check_tokenized_path(config, config_path.parent, str(config_path))
    # LLaMA-Factory runs DeepSpeed only under torchrun, which it starts by itself only with several local GPUs;
    # a node of a multi-node run (NNODES > 1) may have one GPU or none, and still needs torchrun's rendezvous
    ray = is_env_enabled("USE_RAY")
    multi_node = os.environ.get("NNODES", "1").strip() not in ("", "1")
    torchrun = kind == "train" and (config.get("deepspeed") or multi_node) and not ray
    env = {"FORCE_TORCHRUN": "1"} if torchrun else {}
    # under Ray our launcher is the driver (LLaMA-Factory's cannot place CPU workers: ray_launch.py)
    if not needs_launcher(config) and not (ray and kind == "train"):
        command = [*_llamafactory_cli(), "export" if kind == "export" else "train", str(config_path), *overrides]
    elif kind == "export":
        command = []
    else:
        command = launcher_command(config_path, overrides, env={**os.environ, **env})
    return RunPlan(config_path, config, kind, command, env, tuple(overrides), tuple(warnings))


def _llamafactory_cli() -> list[str]:
    """``llamafactory-cli`` of this interpreter's environment (a venv need not be on PATH)."""
    beside = Path(sys.executable).with_name("llamafactory-cli")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("llamafactory-cli")
    return [found] if found else [sys.executable, "-m", "llamafactory.cli"]


def run_plan(plan: RunPlan, echo: Echo) -> int:
    """Run ``plan``, streaming its output to ``echo``; returns the exit code (0 on success)."""
    if plan.kind == "train":
        from lf_reasoning.llamafactory.tokenized import record_tokenization_inputs

        record_tokenization_inputs(plan.config, plan.config_path.parent)
    if plan.command:
        code = _stream(plan.command, {**os.environ, **plan.env, "PYTHONUNBUFFERED": "1"}, echo)
    else:
        from llamafactory.train.tuner import export_model

        try:
            export_model({k: v for k, v in plan.config.items() if k != CUSTOM_TEMPLATES_KEY})
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
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


# After the second Ctrl-C (or an exception of ours while the child runs) the child and all it started get SIGTERM,
# then SIGKILL after this many seconds: a rank or dataloader worker that ignores SIGTERM must not outlive us.
STOP_GRACE_S = 5.0


def _stream(command: list[str], env: dict[str, str], echo: Echo) -> int:
    """Run ``command``, passing its combined output through as it comes (progress bars included); returns its exit
    code, or ``EXIT_INTERRUPTED`` after Ctrl-C (or a SIGINT that ended the child).

    The child stays in our process group (and on our terminal), so the terminal's Ctrl-C reaches it and every
    process it started: after the first one its output keeps draining while it stops by itself; the second stops
    it and its descendants (``_stop_tree``), as does any exception of ours while it still runs."""
    import psutil  # noqa: F401  (the [train] extra: missing, it fails here, not in the middle of a Ctrl-C)

    ctrl_c = _CtrlC()
    with ctrl_c.installed():
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while True:
                try:
                    while chunk := os.read(process.stdout.fileno(), 65536):
                        echo(decoder.decode(chunk))
                    process.wait()  # the output may end before the child does
                    break
                except KeyboardInterrupt:
                    ctrl_c.raised()
                    if ctrl_c.count < 2:  # Python's own handler raised the first: the child stops by itself
                        continue
                    if process.poll() is None:
                        _stop_tree(process, ctrl_c)
                    elif ctrl_c.count > 2:  # the tree is gone: what still holds the output open is not ours
                        break
            echo(decoder.decode(b"", final=True))
        finally:
            if process.poll() is None:  # an exception: the child must not outlive us (poll: wait_procs may reap it)
                _stop_tree(process, ctrl_c)
            process.stdout.close()
    code = process.wait()
    return EXIT_INTERRUPTED if ctrl_c.count or code in (-signal.SIGINT, 128 + signal.SIGINT) else code


class _CtrlC:
    """Counts Ctrl-C during a run. The first only counts: a KeyboardInterrupt right after ``os.read`` returned would
    lose that chunk, the child's first words on Ctrl-C. Later ones raise KeyboardInterrupt to leave a blocking
    read, except while the tree is being stopped, where they only cut the grace short."""

    def __init__(self) -> None:
        self.count = 0
        self.stopping = False
        self._ours = False

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count > 1 and not self.stopping:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        # only in place of Python's own handler (an ignored SIGINT stays ignored); only the main thread may set one
        self._ours = threading.current_thread() is threading.main_thread()
        self._ours = self._ours and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if self._ours:
            signal.signal(signal.SIGINT, self)
        try:
            yield
        finally:
            if self._ours:
                signal.signal(signal.SIGINT, signal.default_int_handler)

    def raised(self) -> None:
        """A KeyboardInterrupt was caught: where Python's own handler raised it, count it here."""
        if not self._ours:
            self.count += 1


def _stop_tree(process: subprocess.Popen[bytes], ctrl_c: _CtrlC) -> None:
    """SIGTERM to ``process`` and all its descendants, SIGKILL to those left after ``STOP_GRACE_S`` seconds or at
    the next Ctrl-C; returns once ``process`` is reaped. The descendants are collected first: once one dies, its
    children are reparented out of reach."""
    import psutil

    ctrl_c.stopping, hurry = True, ctrl_c.count + 1
    try:
        root = psutil.Process(process.pid)  # not reaped yet, so still ours (a zombie at worst)
        alive = [root, *root.children(recursive=True)]
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):  # gone, or one that changed user
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        while alive and time.monotonic() < deadline and ctrl_c.count < hurry:
            _, alive = psutil.wait_procs(alive, timeout=0.05)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.kill()
        process.wait()  # the exit status is lost (0) where wait_procs reaped it first
    finally:
        ctrl_c.stopping = False


def interrupted_message(plan: RunPlan) -> str:
    """What to do after Ctrl-C: the command that resumes from the last checkpoint under output_dir, if any."""
    if plan.kind != "train":
        return f"interrupted; nothing to resume: run `lf-reasoning train {shlex.quote(str(plan.config_path))}` again"
    checkpoint = last_checkpoint(plan)
    if checkpoint is None:
        output_dir = plan.config.get("output_dir", "trainer_output")
        return (
            f"interrupted before the first checkpoint (save_steps: {plan.config.get('save_steps', 500)}) was saved "
            f"under {output_dir}; nothing to resume from: run `lf-reasoning train "
            f"{shlex.quote(str(plan.config_path))}` again to start over"
        )
    keep = [o for o in plan.overrides if not o.startswith("resume_from_checkpoint=")]
    command = shlex.join(
        ["lf-reasoning", "train", str(plan.config_path), *keep, f"resume_from_checkpoint={checkpoint}"]
    )
    return f"interrupted; resume with `{command}`"


def last_checkpoint(plan: RunPlan) -> Path | None:
    """The newest ``checkpoint-N`` folder under the run's output_dir (as the Hugging Face trainer names them)."""
    output_dir = Path(str(plan.config.get("output_dir", "trainer_output"))).expanduser()
    if not output_dir.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(output_dir))
    return Path(found) if found else None


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
            saved = out / ("adapter_config.json" if adapter else "config.json")  # not on a node of rank > 0
            candidates = [
                ("adapter" if adapter else "model", out),
                ("loss plot", out / "training_loss.png"),
                ("training log", out / "trainer_log.jsonl"),
            ]
            if not saved.is_file():
                candidates = []
    return [(what, path) for what, path in candidates if path.exists()]
