"""The news-title classifier end to end, on the tiny local model and the CPU (what `make demo` runs).

Every stage is an `lf-reasoning` command (printed, with its elapsed time; its full output goes to
OUT/logs/STAGE.log):

  thoughts  a short rule-written thought per training title (thoughts.py), or with --teacher URL MODEL
            thoughts distilled from a reasoning model (lf-reasoning distill, then thoughts.py --distilled)
  convert   answer-only and with-thought training sets and the test set into dataset_info/
  config    train/predict YAMLs for each variant (--model TINY --hardware cpu --finetuning full)
  predict   the untrained model on the held-out titles
  train     answer-only, then with thoughts
  predict   each trained model on the held-out titles (greedy)
  eval      untrained vs answer-only vs with-thought: accuracy, macro-F1, thought format

The run fails (exit 1) unless each trained model beats the untrained one and chance (1 / number of classes) by a
clear margin. With the real model the same commands take `--model deepseek-ai/DeepSeek-R1-Distill-Qwen-7B
--hardware gpu`; their YAMLs are committed in gpu/ (regenerate them with `python run.py --gpu-configs`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXAMPLE = HERE.relative_to(ROOT)  # commands are run from the repository root with relative paths
DATASET_DIR = Path("dataset_info")
GPU_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
# A record is ~100 tokens with a Qwen tokenizer (about one per Chinese character: instruction, title, thought,
# label); 512 leaves room. Given by hand because the 7B tokenizer is not downloaded here to measure it.
GPU_CUTOFF_LEN = 512
# train.csv/test.csv columns → convert's fields; prompt.txt wraps the title into the instruction.
MAP = ["--map", "prompt=title", "--map", "answer=label", "--prompt-template", str(EXAMPLE / "prompt.txt")]
VARIANTS = {  # name: (dataset, config --method)
    "answer_only": ("news_answer_only", "answer-only"),
    "with_thought": ("news_with_thought", "cot"),
}
# The tiny model starts from random weights, so it learns from scratch: a rate ~1000x a 7B fine-tune's, a constant
# schedule, 12 epochs and a batch of 16 (the config's defaults are for fine-tuning a pretrained model).
TINY_TRAIN = [
    "num_train_epochs=12",
    "per_device_train_batch_size=16",
    "gradient_accumulation_steps=1",
    "learning_rate=3e-3",
    "lr_scheduler_type=constant",
    "warmup_steps=0",
    "logging_steps=20",
    "save_steps=100000",
]
TINY_PREDICT = ["do_sample=false", "max_new_tokens=96", "per_device_eval_batch_size=32"]
MARGIN = 0.15  # a trained model must beat the untrained one and chance by this much accuracy


def lf_reasoning(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("lf-reasoning")), *args]


class Stages:
    """Runs commands one by one, logging each and printing its elapsed time."""

    def __init__(self, logs: Path, cwd: Path = ROOT) -> None:
        self.logs, self.cwd = logs, cwd
        self.logs.mkdir(parents=True, exist_ok=True)
        self.times: list[tuple[str, float]] = []

    def run(self, stage: str, command: list[str]) -> str:
        shown = " ".join(shlex.quote(Path(a).name if a == command[0] else a) for a in command)
        print(f"$ {shown}", flush=True)
        started = time.perf_counter()
        log = self.logs / f"{stage}.log"
        result = subprocess.run(command, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log.write_text(result.stdout, encoding="utf-8")
        elapsed = time.perf_counter() - started
        self.times.append((stage, elapsed))
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-30:])
            sys.exit(f"{tail}\n\nstage {stage} failed (exit status {result.returncode}); full output: {log}")
        print(
            f"  [{elapsed:6.1f} s] {stage} (log: {log.relative_to(ROOT) if log.is_relative_to(ROOT) else log})",
            flush=True,
        )
        return result.stdout

    def summary(self) -> str:
        width = max(len(stage) for stage, _ in self.times)
        rows = [*self.times, ("total", sum(seconds for _, seconds in self.times))]
        return "\n".join(["elapsed per stage:", *(f"  {stage:<{width}}  {seconds:6.1f} s" for stage, seconds in rows)])


def write_corpus(with_thoughts: Path, path: Path) -> None:
    """The training texts as the model will see them, for the tiny model's tokenizer (training split only)."""
    template = (HERE / "prompt.txt").read_text(encoding="utf-8").removesuffix("\n")
    with with_thoughts.open(encoding="utf-8", newline="") as f:
        texts = [
            f"{template.replace('{prompt}', row['title'])}\n<think>\n{row['thought']}\n</think>\n\n{row['label']}"
            f"\n<think>\n\n</think>\n\n{row['label']}\n"
            for row in csv.DictReader(f)
        ]
    path.write_text("".join(texts), encoding="utf-8")


def prepare_data(
    stages: Stages, out: Path, dataset_dir: Path = DATASET_DIR, teacher: tuple[str, str] | None = None
) -> Path:
    """Thoughts (OUT/train_with_thoughts.csv, returned): rule-written, or distilled from ``teacher`` (base URL,
    model); then the three datasets (answer-only, with thoughts, test) converted into dataset_dir."""
    with_thoughts, train = out / "train_with_thoughts.csv", str(EXAMPLE / "data" / "train.csv")
    if teacher is None:
        stages.run("thoughts", [sys.executable, str(EXAMPLE / "thoughts.py"), train, str(with_thoughts)])
    else:
        # The instruction (prompt.txt's first line) as the system prompt, the title as the question; the label is
        # kept as the reference answer, and thoughts.py keeps the replies that name it.
        instruction = (HERE / "prompt.txt").read_text(encoding="utf-8").splitlines()[0]
        distilled = out / "distilled.jsonl"
        stages.run(
            "distill",
            lf_reasoning(
                "distill",
                train,
                "--map",
                "prompt=title",
                "--map",
                "reference=label",
                "--system",
                instruction,
                "--base-url",
                teacher[0],
                "--model",
                teacher[1],
                "--concurrency",
                "32",
                "--out",
                str(distilled),
            ),
        )
        stages.run(
            "thoughts",
            [sys.executable, str(EXAMPLE / "thoughts.py"), "--distilled", str(distilled), str(with_thoughts)],
        )
    common = ["--dataset-dir", str(dataset_dir), "--force", *MAP]
    stages.run(
        "convert_answer_only",
        lf_reasoning(
            "convert", str(EXAMPLE / "data" / "train.csv"), "--name", "news_answer_only", "--think", "drop", *common
        ),
    )
    stages.run(
        "convert_with_thought",
        lf_reasoning("convert", str(with_thoughts), "--name", "news_with_thought", "--map", "thought=thought", *common),
    )
    stages.run(
        "convert_test",
        lf_reasoning("convert", str(EXAMPLE / "data" / "test.csv"), "--name", "news_test", "--think", "drop", *common),
    )
    return with_thoughts


def config_args(variant: str, model: str, out: Path, dataset_dir: Path = DATASET_DIR) -> list[str]:
    dataset, method = VARIANTS[variant]
    return [
        "config",
        "--model",
        model,
        "--template",
        "deepseekr1",
        "--dataset",
        dataset,
        "--eval-dataset",
        "news_test",
        "--dataset-dir",
        str(dataset_dir),
        "--out",
        str(out / variant),
        "--method",
        method,
    ]


def predictions(run_dir: Path) -> Path:
    return run_dir / "predict" / "generated_predictions.jsonl"


def final_loss(run_dir: Path) -> str:
    entries = [json.loads(line) for line in (run_dir / "train" / "trainer_log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in entries if "loss" in e]
    return f"loss {losses[0]:.2f} → {losses[-1]:.2f}" if losses else "no loss logged"


def demo(out: Path, teacher: tuple[str, str] | None) -> int:
    stages = Stages(out / "logs")
    # Distilled thoughts go to a dataset_dir of this run's own: dataset_info/ holds the rule-written ones, which
    # the committed GPU configs train.
    dataset_dir = out / "dataset_info" if teacher else DATASET_DIR
    with_thoughts = prepare_data(stages, out, dataset_dir, teacher)
    # A random tiny model whose tokenizer learnt the training texts: whole words and characters as tokens, where
    # the built-in tokenizer would spell most Chinese characters as three bytes.
    write_corpus(with_thoughts, out / "corpus.txt")
    tiny = out / "tiny_model"
    shutil.rmtree(tiny, ignore_errors=True)
    stages.run("model", [sys.executable, "-m", "lf_reasoning.tiny_model", str(tiny), str(out / "corpus.txt")])
    for variant in VARIANTS:
        # a new tiny model (and data distilled anew): the tokens a previous run saved are not this run's
        shutil.rmtree(out / variant / "tokenized", ignore_errors=True)
        (out / variant / "tokenized.inputs.json").unlink(missing_ok=True)
        args = config_args(variant, str(tiny), out, dataset_dir)
        # --force: the work folder is the demo's own; a re-run replaces configs an older version wrote
        stages.run(f"config_{variant}", lf_reasoning(*args, "--hardware", "cpu", "--finetuning", "full", "--force"))
    # The untrained model: answer_only's predict.yaml pointed at the base model instead of the trained one.
    untrained = out / "untrained"
    stages.run(
        "predict_untrained",
        lf_reasoning(
            "train",
            str(out / "answer_only" / "predict.yaml"),
            *TINY_PREDICT,
            f"model_name_or_path={tiny}",
            f"output_dir={untrained / 'predict'}",
        ),
    )
    for variant in VARIANTS:
        stages.run(f"train_{variant}", lf_reasoning("train", str(out / variant / "train.yaml"), *TINY_TRAIN))
        print(f"  {final_loss(out / variant)}")
        stages.run(f"predict_{variant}", lf_reasoning("train", str(out / variant / "predict.yaml"), *TINY_PREDICT))
    runs = [predictions(untrained), *(predictions(out / variant) for variant in VARIANTS)]
    eval_args = ["eval", *map(str, runs), "--task", "classify", "--labels", str(EXAMPLE / "labels.txt")]
    report = stages.run("eval", lf_reasoning(*eval_args, "--plot", str(out / "confusion.png")))
    scores = json.loads(stages.run("eval_json", lf_reasoning(*eval_args, "--json")))
    print(f"\n{report}\n{stages.summary()}")
    return check(scores, len(read_labels()))


def read_labels() -> list[str]:
    return (HERE / "labels.txt").read_text(encoding="utf-8").split()


def check(scores: list[dict], classes: int) -> int:
    """Exit status: 0 when every trained model clearly beats the untrained one and chance."""
    untrained, *trained = (s["accuracy"] or 0.0 for s in scores)
    chance = 1 / classes
    print(
        f"\nchance {chance:.1%}, untrained {untrained:.1%}; trained: "
        + ", ".join(f"{name} {acc:.1%}" for name, acc in zip(VARIANTS, trained, strict=True))
    )
    failed = [name for name, acc in zip(VARIANTS, trained, strict=True) if acc < max(untrained, chance) + MARGIN]
    if failed:
        print(f"FAILED: {', '.join(failed)} not above max(untrained, chance) + {MARGIN:.0%}", file=sys.stderr)
        return 1
    return 0


def gpu_configs(stages: Stages) -> None:
    """Write the committed GPU YAMLs (gpu/VARIANT/*.yaml, paths relative to the repository root) with the same
    commands a user runs."""
    for variant in VARIANTS:
        stages.run(
            f"gpu_config_{variant}",
            lf_reasoning(
                *config_args(variant, GPU_MODEL, EXAMPLE / "gpu"),
                "--hardware",
                "gpu",
                "--cutoff-len",
                str(GPU_CUTOFF_LEN),
                "--relative-paths",
            ),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "demo_out" / "news",
        help="work folder: tiny model, runs, logs [default: demo_out/news]",
    )
    parser.add_argument(
        "--gpu-configs", action="store_true", help=f"only write gpu/*/*.yaml for {GPU_MODEL} (nothing is trained)"
    )
    parser.add_argument(
        "--teacher",
        nargs=2,
        metavar=("BASE_URL", "MODEL"),
        help="distil the thoughts from this OpenAI-compatible server instead of writing them by rule "
        "(the API key is read from OPENAI_API_KEY)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.gpu_configs:
        gpu_configs(Stages(args.out.resolve() / "logs"))
        return 0
    return demo(args.out.resolve(), tuple(args.teacher) if args.teacher else None)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the stage's own command got the Ctrl-C too; every write it makes is atomic
        sys.exit("\ninterrupted: run it again to start over (dataset_info/ holds whole files only)")
