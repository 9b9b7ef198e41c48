"""config and train: LLaMA-Factory configs written, checked and run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lf_reasoning.cli.options import dataset_dir_option, force_option
from lf_reasoning.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_STATUS

if TYPE_CHECKING:
    from lf_reasoning.llamafactory.config_build import Finetuning, Method
    from lf_reasoning.llamafactory.config_check import Hardware


@click.command(
    "config",
    epilog=EXIT_STATUS
    + """

\b
Methods (enable_thinking is written only for reasoning templates such as qwen3, deepseekr1):
  distill, cot   thoughts kept and trained             enable_thinking: true
  answer-only    data without thoughts (convert --think drop); the empty
                 <think> block is trained before each answer  enable_thinking: true
  answer-only-masked  the same data; the empty block sits in the prompt,
                 masked, so thinking is not unlearnt  enable_thinking: false
  mixed          records with and without thoughts      enable_thinking: null

\b
Example:
  lf-reasoning config --model deepseek-ai/DeepSeek-R1-Distill-Qwen-7B --dataset r1 \\
      --dataset-dir data --out runs/r1 --hardware gpu
  lf-reasoning train runs/r1/train.yaml
""",
)
@click.option("--model", required=True, help="Hub id or local folder of the model to fine-tune.")
@click.option("--dataset", "datasets", required=True, metavar="NAME[,NAME]", help="Dataset(s) in dataset_info.json.")
@dataset_dir_option("Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for train.yaml, predict.yaml, export.yaml and the run outputs.",
)
@click.option(
    "--method",
    type=click.Choice(["distill", "cot", "answer-only", "answer-only-masked", "mixed"]),
    default="distill",
    show_default=True,
    help="What is trained (see below).",
)
@click.option("--finetuning", type=click.Choice(["lora", "qlora", "full"]), default="lora", show_default=True)
@click.option(
    "--hardware",
    type=click.Choice(["cpu", "gpu", "multi-gpu", "multi-node"]),
    help="Hardware profile [default: what this machine has].",
)
@click.option("--template", help="LLaMA-Factory template; default: chosen from the model, with the reason.")
@click.option(
    "--template-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A custom template YAML (registered into LLaMA-Factory when lf-reasoning train runs).",
)
@click.option(
    "--cutoff-len",
    type=click.IntRange(min=1),
    help="Token limit per record [default: measured p99, a multiple of 256, when a tokenizer is at hand].",
)
@click.option("--eval-dataset", metavar="NAME", help="Held-out dataset for predict.yaml [default: 5% of the data].")
@click.option("--tokenizer", help="Tokenizer used to measure record lengths [default: the model's].")
@click.option("--allow-truncation", is_flag=True, help="Accept a cutoff_len that truncates some records.")
@click.option("--packing", is_flag=True, help="GPU: neat packing (records never attend to each other).")
@click.option("--liger-kernel", is_flag=True, help="GPU: Liger kernels (needs pip install liger-kernel).")
@click.option(
    "--relative-paths",
    is_flag=True,
    help="Write dataset_dir and output paths relative to the current "
    "directory (configs committed to a repository, run from its root) [default: absolute].",
)
@force_option("Replace a train/predict/export YAML in OUT that was edited since lf-reasoning wrote it.")
def config_command(
    model: str,
    datasets: str,
    dataset_dir: Path,
    out: Path,
    method: Method,
    finetuning: Finetuning,
    hardware: Hardware | None,
    template: str | None,
    template_file: Path | None,
    cutoff_len: int | None,
    eval_dataset: str | None,
    tokenizer: str | None,
    allow_truncation: bool,
    packing: bool,
    liger_kernel: bool,
    relative_paths: bool,
    force: bool,
) -> None:
    """Write OUT/train.yaml, predict.yaml and export.yaml for a reasoning fine-tune.

    Each file explains in its header why each key has its value, and each was parsed by LLaMA-Factory's own
    argument parser first: a mistake is an error naming the key, never a file that fails later.
    """
    from lf_reasoning.llamafactory.config_build import ConfigRequest, build_configs
    from lf_reasoning.llamafactory.config_write import write_configs

    request = ConfigRequest(
        model=model,
        datasets=tuple(n.strip() for n in datasets.split(",") if n.strip()),
        dataset_dir=dataset_dir,
        out=out,
        method=method,
        finetuning=finetuning,
        hardware=hardware,
        template=template,
        template_file=template_file,
        cutoff_len=cutoff_len,
        eval_dataset=eval_dataset,
        tokenizer=tokenizer,
        allow_truncation=allow_truncation,
        packing=packing,
        liger_kernel=liger_kernel,
        relative_paths=relative_paths,
    )
    configs = build_configs(request)
    for note in configs.notes:
        click.echo(note)
    for warning in configs.warnings:
        click.echo(f"warning: {warning}", err=True)
    for path in write_configs(configs, out, force=force):
        click.echo(f"wrote {path}")
    checked = "checked with LLaMA-Factory's argument parser"
    click.echo(f"{checked} ({configs.hardware} profile)" + "".join(f"\n  simulated: {s}" for s in configs.skipped))
    click.echo(f"next: lf-reasoning train {out / 'train.yaml'}")


@click.command(
    context_settings={"ignore_unknown_options": True},
    epilog=EXIT_STATUS
    + """
A failed run exits 1 (LLaMA-Factory's own exit status is printed).

\b
Examples:
  lf-reasoning train runs/r1/train.yaml max_steps=100 --dry-run
  lf-reasoning train runs/r1/predict.yaml
  lf-reasoning train runs/r1/export.yaml

\b
Multi-node (the same command on every node; node 0 is at MASTER_ADDR):
  NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 NPROC_PER_NODE=8 lf-reasoning train runs/r1/train.yaml
Ray (custom templates are registered in every worker):
  USE_RAY=1 lf-reasoning train runs/r1/train.yaml ray_num_workers=4 resources_per_worker='{"CPU": 8, "GPU": 1}'
""",
)
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--dry-run", is_flag=True, help="Print the exact command and the resolved config; run nothing.")
@click.option(
    "--allow-truncation",
    is_flag=True,
    help="Accept an override (cutoff_len=, dataset=, template=, …) whose cutoff_len truncates records; without it "
    "such an override is refused, as config refuses it.",
)
def train(config_path: Path, overrides: tuple[str, ...], dry_run: bool, allow_truncation: bool) -> None:
    """Run a LLaMA-Factory config (train, predict or export) and stream its output.

    The config is checked first (LLaMA-Factory's parser, template, datasets, model). It runs with
    llamafactory-cli, or with lf-reasoning's launcher (under torchrun when distributed) when it uses custom
    templates or USE_RAY=1. NNODES above 1 or a deepspeed key start torchrun (FORCE_TORCHRUN=1). An export is
    followed by a check of the saved chat template against the training template.
    """
    from lf_reasoning.commands.train import interrupted_message, plan_run, result_paths, run_plan

    plan = plan_run(config_path, overrides, allow_truncation=allow_truncation)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if dry_run:
        click.echo(plan.describe(), nl=False)
        return
    code = run_plan(plan, echo=lambda text: click.echo(text, nl=False))
    if code == EXIT_INTERRUPTED:
        click.echo(interrupted_message(plan), err=True)
        sys.exit(EXIT_INTERRUPTED)
    if code:  # LLaMA-Factory's own status is printed; ours is the table's "error"
        click.echo(f"{plan.kind} failed: LLaMA-Factory exited with status {code}", err=True)
        sys.exit(EXIT_ERROR)
    for what, path in result_paths(plan):
        click.echo(f"{what}: {path}")
