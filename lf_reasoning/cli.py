"""The ``lf-reasoning`` command line: parses options, calls library functions, prints results."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import click

from lf_reasoning import __version__
from lf_reasoning.formats import FORMATS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lf-reasoning")
def main() -> None:
    """Reasoning data and configs for LLaMA-Factory, correct by default.

    \b
    Typical flow:
      lf-reasoning convert data.jsonl --name my_r1 --dataset-dir data
      lf-reasoning validate --dataset-dir data
    """


THINK_HELP = (
    "keep: train the thought as given (default); drop: answer only (method 3: LLaMA-Factory's "
    "reasoning templates then add an empty thought themselves); empty: write an explicit empty "
    "<think> block before every answer."
)


@main.command(
    epilog="""\b
Exit status: 0 all input records were valid; 2 the dataset was written but some
input records were invalid (listed in the rejects file); 1 an error, nothing written.

\b
Examples:
  lf-reasoning convert distill_r1_110k.jsonl --name r1_110k --dataset-dir data --min-score 9
  lf-reasoning convert medical_o1_sft.json --name medical --dataset-dir data \\
      --prompt-template examples/medical_prompt.txt
  lf-reasoning convert titles.csv --name news --dataset-dir data --map prompt=title --map answer=label
"""
)
@click.argument("sources", nargs=-1, required=True, metavar="SRC...")
@click.option("--name", required=True, help="Dataset name to register (also the data file name).")
@click.option(
    "--dataset-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="LLaMA-Factory `dataset_dir`: the data file and dataset_info.json go here.",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    metavar="auto|" + "|".join(FORMATS),
    help="Source shape; auto detects it from each file's first record and says why.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Read any table: map prompt, answer (required), thought, system, score, source, id, reference.",
)
@click.option(
    "--style",
    type=click.Choice(["sharegpt", "alpaca"]),
    default="sharegpt",
    show_default=True,
    help="Output layout (sharegpt is written with explicit role/content tags).",
)
@click.option(
    "--think", type=click.Choice(["keep", "drop", "empty"]), default="keep", show_default=True, help=THINK_HELP
)
@click.option("--system", help="System prompt for every record (replaces the source's).")
@click.option(
    "--prompt-template",
    type=click.File(encoding="utf-8"),
    help="Text file with a {prompt} placeholder, wrapped around every prompt (the file's final newline "
    "is not part of it).",
)
@click.option("--min-score", type=float, help="Drop records whose score is below X (or that have none).")
@click.option("--require-verified", is_flag=True, help="Drop records without a positive verification verdict.")
@click.option(
    "--dedup",
    type=click.Choice(["normalized", "exact", "off"]),
    default="normalized",
    show_default=True,
    help="Drop repeated prompts: normalized folds case, full-width forms and spacing.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Drop (never truncate) records longer than N tokens; set it to your cutoff_len.",
)
@click.option("--tokenizer", help="Tokenizer path or id used by --max-tokens.")
@click.option("--template", help="LLaMA-Factory template used by --max-tokens (e.g. qwen3, deepseekr1).")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected records go with their reason [default: DIR/NAME.rejects.jsonl].",
)
@click.option("--strict", is_flag=True, help="Stop at the first invalid record instead of rejecting it.")
@click.option("--force", is_flag=True, help="Replace an existing different entry NAME (other entries are kept).")
@click.option("--split", "hub_split", default="train", show_default=True, help="Split of a Hugging Face dataset SRC.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes [default: one per CPU].")
def convert(
    sources: tuple[str, ...],
    name: str,
    dataset_dir: Path,
    fmt: str,
    mapping: tuple[str, ...],
    style: str,
    think: str,
    system: str | None,
    prompt_template: TextIO | None,
    min_score: float | None,
    require_verified: bool,
    dedup: str,
    max_tokens: int | None,
    tokenizer: str | None,
    template: str | None,
    rejects: Path | None,
    strict: bool,
    force: bool,
    hub_split: str,
    workers: int | None,
) -> None:
    """Convert SRC (files, directories or a Hugging Face dataset) into a LLaMA-Factory dataset.

    Reads every known reasoning shape (R1 distill dumps, OpenR1, s1K, CoT sets, OpenAI messages with
    reasoning fields, ShareGPT with thought markup, Alpaca), writes DIR/NAME.jsonl with thoughts in
    LLaMA-Factory's exact `<think>\\n…\\n</think>\\n\\n` form, and adds NAME to DIR/dataset_info.json
    keeping every other entry. Files: .json .jsonl .jsonl.gz .jsonl.zst .parquet .csv.
    """
    from lf_reasoning.convert import convert as run_convert
    from lf_reasoning.convert import format_report

    report = run_convert(
        sources,
        name,
        dataset_dir,
        fmt=fmt,
        mapping=mapping,
        style=style,
        think=think,  # type: ignore[arg-type]
        system=system,
        prompt_template=prompt_template.read().removesuffix("\n") if prompt_template else None,
        min_score=min_score,
        require_verified=require_verified,
        dedup=dedup,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        tokenizer=tokenizer,
        template=template,
        rejects=rejects,
        strict=strict,
        force=force,
        hub_split=hub_split,
        workers=workers,
        log=lambda msg: click.echo(msg, err=True),
        progress=True,
    )
    click.echo(format_report(report))
    if report.invalid:
        sys.exit(2)


@main.command()
@click.option(
    "--dataset-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).",
)
@click.argument("names", nargs=-1)
def validate(dataset_dir: Path, names: tuple[str, ...]) -> None:
    """Check DIR/dataset_info.json the way LLaMA-Factory will read it.

    Reports every problem at once: unknown (misspelt) keys, partial columns/tags blocks, missing files,
    columns absent from the data, mixed file types in a folder, thought markup LLaMA-Factory will not
    recognise. Remote (hub) entries are listed, not checked. Exits 1 when there is an error.
    """
    from lf_reasoning.llamafactory.validate import format_problems, validate_dataset_info

    problems = validate_dataset_info(dataset_dir, list(names) or None)
    click.echo(format_problems(problems))
    if any(p.severity == "error" for p in problems):
        sys.exit(1)


@main.command(
    "config",
    epilog="""\b
Methods (enable_thinking is written only for reasoning templates such as qwen3, deepseekr1):
  distill, cot   thoughts kept and trained             enable_thinking: true
  answer-only    data without thoughts (convert --think drop); the empty
                 <think> block is trained before each answer  enable_thinking: true
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
@click.option(
    "--dataset-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for train.yaml, predict.yaml, export.yaml and the run outputs.",
)
@click.option(
    "--method",
    type=click.Choice(["distill", "cot", "answer-only", "mixed"]),
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
def config_command(
    model: str,
    datasets: str,
    dataset_dir: Path,
    out: Path,
    method: str,
    finetuning: str,
    hardware: str | None,
    template: str | None,
    template_file: Path | None,
    cutoff_len: int | None,
    eval_dataset: str | None,
    tokenizer: str | None,
    allow_truncation: bool,
    packing: bool,
    liger_kernel: bool,
    relative_paths: bool,
) -> None:
    """Write OUT/train.yaml, predict.yaml and export.yaml for a reasoning fine-tune.

    Each file explains in its header why each key has its value, and each was parsed by LLaMA-Factory's own
    argument parser first: a mistake is an error naming the key, never a file that fails later.
    """
    from lf_reasoning.llamafactory.config import ConfigRequest, build_configs, write_configs

    request = ConfigRequest(
        model=model,
        datasets=tuple(n.strip() for n in datasets.split(",") if n.strip()),
        dataset_dir=dataset_dir,
        out=out,
        method=method,
        finetuning=finetuning,
        hardware=hardware,
        template=template,  # type: ignore[arg-type]
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
    for path in write_configs(configs, out):
        click.echo(f"wrote {path}")
    checked = "checked with LLaMA-Factory's argument parser"
    click.echo(f"{checked} ({configs.hardware} profile)" + "".join(f"\n  simulated: {s}" for s in configs.skipped))
    click.echo(f"next: lf-reasoning train {out / 'train.yaml'}")


@main.command(
    context_settings={"ignore_unknown_options": True},
    epilog="""\b
Examples:
  lf-reasoning train runs/r1/train.yaml max_steps=100 --dry-run
  lf-reasoning train runs/r1/predict.yaml
  lf-reasoning train runs/r1/export.yaml
""",
)
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--dry-run", is_flag=True, help="Print the exact command and the resolved config; run nothing.")
def train(config_path: Path, overrides: tuple[str, ...], dry_run: bool) -> None:
    """Run a LLaMA-Factory config (train, predict or export) and stream its output.

    The config is checked first (LLaMA-Factory's parser, template, datasets, model). It runs with
    llamafactory-cli, or with lf-reasoning's launcher (under torchrun when distributed) when it uses custom
    templates. An export is followed by a check of the saved chat template against the training template.
    """
    from lf_reasoning.train import plan_run, result_paths, run_plan

    plan = plan_run(config_path, overrides)
    if dry_run:
        click.echo(plan.describe(), nl=False)
        return
    code = run_plan(plan, echo=lambda text: click.echo(text, nl=False))
    if code:
        click.echo(f"{plan.kind} failed: exit status {code}", err=True)
        sys.exit(code)
    for what, path in result_paths(plan):
        click.echo(f"{what}: {path}")


@main.command()
@click.argument("name")
@click.option(
    "--dataset-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).",
)
@click.option("--tokenizer", required=True, help="Tokenizer path or id of the model you will train.")
@click.option(
    "--template",
    help="LLaMA-Factory template you will train with [default: chosen from the tokenizer's model, with the reason].",
)
@click.option(
    "--cutoff-len",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="The cutoff_len you plan to train with.",
)
@click.option(
    "--enable-thinking",
    type=click.Choice(["true", "false", "none"]),
    default="true",
    show_default=True,
    help="LLaMA-Factory's enable_thinking data argument (use the value you will train with).",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a histogram PNG of lengths.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def stats(
    name: str,
    dataset_dir: Path,
    tokenizer: str,
    template: str | None,
    cutoff_len: int,
    enable_thinking: str,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Token lengths of dataset NAME exactly as LLaMA-Factory's template and cutoff_len see them.

    Prints percentiles of prompt, thought, answer and total tokens per record and the share of records
    each cutoff_len would truncate (LLaMA-Factory cuts the tail: the answer and EOS).
    """
    import orjson

    from lf_reasoning.stats import format_stats, measure_lengths, plot_lengths, stats_json

    if not template:
        from lf_reasoning.llamafactory.templates import choose_template

        choice = choose_template(tokenizer)  # a UserError asks for --template when the model says nothing
        template = choice.template
        click.echo(f"template: {template} ({choice.reason})", err=True)
    thinking = {"true": True, "false": False, "none": None}[enable_thinking]
    lengths = measure_lengths(dataset_dir, name, tokenizer, template, enable_thinking=thinking)
    if plot:
        plot_lengths(lengths, plot, cutoff_len, f"{name}: tokens per record ({template})")
    if as_json:
        click.echo(orjson.dumps(stats_json(lengths, cutoff_len), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_stats(lengths, cutoff_len) + (f"\nhistogram written to {plot}" if plot else ""))


def _request_limits(command: Callable[..., None]) -> Callable[..., None]:
    """The rate-limit and retry options shared by the commands that call an API (distill, score)."""
    for option in reversed(
        (
            click.option("--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests per minute limit."),
            click.option("--tpm", type=click.FloatRange(min=0, min_open=True), help="Tokens per minute limit."),
            click.option(
                "--max-retries",
                type=click.IntRange(min=0),
                default=8,
                show_default=True,
                help="Retries on 429, 5xx, timeouts, resets, empty replies.",
            ),
            click.option(
                "--backoff",
                type=click.FloatRange(min=0),
                default=1.0,
                show_default=True,
                help="First retry delay in seconds, doubled per retry (jittered; Retry-After wins).",
            ),
        )
    ):
        command = option(command)
    return command


@main.command(
    epilog="""\b
Exit status: 0 no request failed; 2 some requests failed for good
(listed in the failures file; run the same command again to retry them); 1 an error.

\b
Examples:
  export DEEPSEEK_API_KEY=...
  lf-reasoning distill math.jsonl --out r1.jsonl --base-url https://api.deepseek.com/v1 \\
      --model deepseek-reasoner --api-key-env DEEPSEEK_API_KEY --concurrency 32 \\
      --prompt-suffix '请一步步推理，并把最终答案放到 \\boxed{}。' --price-in 0.55 --price-out 2.19
  lf-reasoning distill prompts.jsonl --out qwen3.jsonl --base-url http://localhost:8000/v1 \\
      --model Qwen/Qwen3-8B --n 4 --temperature 0.6 --stream
  lf-reasoning convert r1.jsonl --name r1 --dataset-dir data
"""
)
@click.argument("sources", nargs=-1, required=True, metavar="SRC...")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON Lines output (R1-distill shape, read by convert); appended to and resumed.",
)
@click.option("--base-url", required=True, help="OpenAI-compatible API root, e.g. http://localhost:8000/v1.")
@click.option("--model", required=True, help="Model name sent with every request.")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Requests in flight at once."
)
@click.option(
    "--n", "n", type=click.IntRange(min=1), default=1, show_default=True, help="Samples per prompt (one request each)."
)
@click.option("--stream", is_flag=True, help="Stream replies (server-sent events).")
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the API key (the key itself is never written anywhere).",
)
@click.option("--temperature", type=float, help="Sampling temperature [default: the server's].")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Completion token limit (thought + answer).")
@click.option("--system", help="System prompt for every request (replaces the source's).")
@click.option("--prompt-suffix", help="Text added on a new line after every prompt.")
@click.option("--extra-body", metavar="JSON", help="More request fields, e.g. '{\"top_p\": 0.95}'.")
@_request_limits
@click.option(
    "--retry-bad",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Re-requests of a reply cut off (finish_reason length), without answer or thought.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=900,
    show_default=True,
    help="Seconds allowed per request.",
)
@click.option("--allow-no-thought", is_flag=True, help="Keep replies that come without a thought.")
@click.option("--price-in", type=click.FloatRange(min=0), help="Price per million prompt tokens (for the summary).")
@click.option("--price-out", type=click.FloatRange(min=0), help="Price per million completion tokens.")
@click.option(
    "--failures",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where failed requests are listed [default: OUT without .jsonl + .failures.jsonl].",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Read prompts from any table: prompt (required), query (appended), system, reference, id, source.",
)
@click.option("--split", "hub_split", default="train", show_default=True, help="Split of a Hugging Face dataset SRC.")
def distill(
    sources: tuple[str, ...],
    out: Path,
    base_url: str,
    model: str,
    concurrency: int,
    n: int,
    stream: bool,
    api_key_env: str,
    temperature: float | None,
    max_tokens: int | None,
    system: str | None,
    prompt_suffix: str | None,
    extra_body: str | None,
    rpm: float | None,
    tpm: float | None,
    max_retries: int,
    retry_bad: int,
    backoff: float,
    timeout: float,
    allow_no_thought: bool,
    price_in: float | None,
    price_out: float | None,
    failures: Path | None,
    mapping: tuple[str, ...],
    hub_split: str,
) -> None:
    """Ask a reasoning model (OpenAI-compatible API) for a thought and an answer per prompt of SRC.

    Prompts are read from any shape convert reads, or from a table with a prompt/question/problem column
    (its reference answer is kept). Writes one record per (prompt, sample) to OUT as soon as it completes;
    re-running the same command after a crash, Ctrl-C or kill -9 sends only what is missing. Reasoning is read
    from reasoning_content, reasoning, reasoning_details or inline <think> markup.
    """
    import orjson

    from lf_reasoning.distill import distill as run_distill
    from lf_reasoning.distill import format_summary
    from lf_reasoning.errors import UserError

    extra: dict[str, object] | None = None
    if extra_body:
        try:
            extra = orjson.loads(extra_body)
        except orjson.JSONDecodeError as err:
            raise UserError(f"--extra-body: not JSON ({err})") from None
        if not isinstance(extra, dict):
            raise UserError("--extra-body: expected a JSON object, e.g. '{\"top_p\": 0.95}'")
    report = run_distill(
        sources,
        out,
        base_url=base_url,
        model=model,
        n=n,
        concurrency=concurrency,
        stream=stream,
        api_key_env=api_key_env,
        temperature=temperature,
        max_tokens=max_tokens,
        system=system,
        prompt_suffix=prompt_suffix,
        extra_body=extra,
        rpm=rpm,
        tpm=tpm,
        max_retries=max_retries,
        retry_bad=retry_bad,
        backoff=backoff,
        timeout=timeout,
        allow_no_thought=allow_no_thought,
        price_in=price_in,
        price_out=price_out,
        failures=failures,
        mapping=mapping,
        hub_split=hub_split,
        log=lambda msg: click.echo(msg, err=True),
        progress=True,
    )
    click.echo(format_summary(report))
    if report.failed:
        sys.exit(2)


@main.command(
    epilog="""\b
Exit status: 0 every input record was read; 2 OUT was written but some input lines
or records were invalid (each named with file and line); 1 an error, nothing written.

\b
Examples:
  lf-reasoning verify distilled.jsonl --out verified.jsonl --timeout 10
  lf-reasoning convert verified.jsonl --name r1_math --dataset-dir data --require-verified
"""
)
@click.argument("src", metavar="IN")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON Lines file to write (written to a temp file, renamed into place at the end).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes [default: one per CPU].")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds one answer may take; the worker is then stopped and the answer reported as timeout.",
)
@click.option(
    "--judge-base-url",
    metavar="URL",
    help="OpenAI-compatible API of an LLM judge: answers no rule can decide get a 10/0 verdict from it.",
)
@click.option("--judge-model", metavar="NAME", help="Model name of the judge (required with --judge-base-url).")
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the judge's API key (never written anywhere).",
)
def verify(
    src: str,
    out: Path,
    workers: int | None,
    timeout: float,
    judge_base_url: str | None,
    judge_model: str | None,
    api_key_env: str,
) -> None:
    """Check every answer of IN against its reference answer with Math-Verify.

    IN is a file or directory in any shape convert reads (distill output, R1 distill dumps with
    `reference_answer`, OpenR1 `answer`, AM `reference_answer`…). Each record is written to OUT unchanged
    plus a `verify` object: method, extracted gold and prediction, verdict (true/false/null), score
    (10/0/null), and the reason when there is no verdict. Multiple-choice references (A-E) are compared as
    letters; records without a reference or with an answer no rule can extract are `unverifiable`.
    """
    import contextlib

    from lf_reasoning.errors import UserError
    from lf_reasoning.verify import format_report, verify_file

    if bool(judge_base_url) != bool(judge_model):
        raise UserError("--judge-base-url and --judge-model go together")
    with contextlib.ExitStack() as stack:
        judge = None
        if judge_base_url and judge_model:
            from lf_reasoning.judge import CorrectnessJudge

            judge = stack.enter_context(
                CorrectnessJudge(
                    judge_base_url, judge_model, api_key_env=api_key_env, log=lambda msg: click.echo(msg, err=True)
                )
            )
        report = verify_file(
            src,
            out,
            workers=workers,
            timeout=timeout,
            judge=judge,
            log=lambda msg: click.echo(msg, err=True),
            progress=True,
        )
    click.echo(format_report(report))
    if report.invalid:
        sys.exit(2)


@main.command(
    "eval",
    epilog="""\b
Exit status: 0 every line was read; 2 the report was printed but some lines were
not valid JSON records (each named with file and line); 1 an error.

\b
Examples:
  lf-reasoning eval saves/predict/generated_predictions.jsonl --task classify --labels labels.txt --plot cm.png
  lf-reasoning eval --compare answer_only.jsonl with_thought.jsonl --task classify --json
  lf-reasoning eval untrained.jsonl answer_only.jsonl with_thought.jsonl --task classify
""",
)
@click.argument("predictions", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--task",
    required=True,
    type=click.Choice(["classify", "math", "free"]),
    help="classify: accuracy, macro-F1, per-class table; math: Math-Verify accuracy; free: format and length only.",
)
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="classify: the label set, one label per line [default: the gold labels seen].",
)
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="A B",
    help="Two predictions files of the same dataset side by side (the same as giving both as PREDICTIONS).",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="classify: write a confusion-matrix PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def eval_command(
    predictions: tuple[Path, ...],
    task: str,
    labels_file: Path | None,
    compare: tuple[Path, Path] | None,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Score PREDICTIONS: LLaMA-Factory's generated_predictions.jsonl (`predict`, `label`) or distill/verify output
    (`content`, `reasoning_content`, `reference_answer`). Several files of the same dataset (e.g. the untrained
    model, answer-only, with thoughts) are put side by side in one table and one plot.

    The thought is separated from the answer with convert's rules. Every task reports the thought format
    (well-formed in LLaMA-Factory's exact form, empty, none, malformed), mean thought and answer length in
    characters and the share cut off without an answer. classify compares answers after normalising
    (NFKC full-width forms, case, whitespace, surrounding punctuation; a label inside a sentence counts only when
    it is the only label found) and counts ambiguous, out-of-set and empty answers as wrong.
    """
    import orjson

    from lf_reasoning.errors import UserError
    from lf_reasoning.evaluate import compare as compare_runs
    from lf_reasoning.evaluate import evaluate, format_report, plot_confusion, read_labels

    if bool(predictions) == bool(compare):
        raise UserError("give either PREDICTIONS or --compare A B")
    if (labels_file or plot) and task != "classify":
        raise UserError("--labels and --plot apply to --task classify only")
    labels = read_labels(labels_file) if labels_file else None
    paths = predictions or compare
    reports = compare_runs(paths, task, labels) if len(paths) > 1 else [evaluate(paths[0], task, labels)]
    for report in reports:
        for message in report.invalid + report.warnings:
            click.echo(f"warning: {message}", err=True)
    key = plot_confusion(reports, plot) if plot else None
    if as_json:
        data = [r.to_json() for r in reports]
        click.echo(orjson.dumps(data if len(paths) > 1 else data[0], option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_report(*reports))
    if plot:
        click.echo(
            f"confusion matrix written to {plot}"
            + (f" (no CJK font installed, so the classes are numbered: {key})" if key else ""),
            err=as_json,
        )
    if any(r.invalid for r in reports):
        sys.exit(2)


@main.command(
    epilog="""\b
Exit status: 0 no request failed; 2 some requests failed for good (listed in the
failures file; run the same command again to retry them); 1 an error.

\b
Examples:
  lf-reasoning score r1.jsonl --out scored.jsonl --judge-base-url http://localhost:8000/v1 \\
      --judge-model Qwen/Qwen2.5-72B-Instruct --concurrency 32
  lf-reasoning convert scored.jsonl --name r1_good --dataset-dir data --min-score 8
"""
)
@click.argument("src", metavar="IN")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON Lines output: every record plus a `judge` object; appended to and resumed.",
)
@click.option("--judge-base-url", required=True, metavar="URL", help="OpenAI-compatible API root of the judge.")
@click.option("--judge-model", required=True, metavar="NAME", help="Model name of the judge.")
@click.option(
    "--rubric",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rubric prompt file with {prompt}, {answer} (and {reference}) placeholders [default: ours].",
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Requests in flight at once."
)
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the API key (the key itself is never written anywhere).",
)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="Sampling temperature of the judge.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Completion token limit of a judge reply.")
@_request_limits
@click.option(
    "--retry-bad",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Re-requests of a reply that cannot be parsed (then the record is written unscored).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300,
    show_default=True,
    help="Seconds allowed per request.",
)
@click.option(
    "--failures",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where failed requests are listed [default: OUT without .jsonl + .failures.jsonl].",
)
def score(
    src: str,
    out: Path,
    judge_base_url: str,
    judge_model: str,
    rubric: Path | None,
    concurrency: int,
    api_key_env: str,
    temperature: float,
    max_tokens: int | None,
    rpm: float | None,
    tpm: float | None,
    max_retries: int,
    retry_bad: int,
    backoff: float,
    timeout: float,
    failures: Path | None,
) -> None:
    """Score every record of IN 0-10 with an LLM judge: harmlessness, helpfulness, correctness and overall.

    IN is a file or directory in any shape convert reads. Each record is written to OUT unchanged plus a
    `judge` object (the three ratings, score, reason, model) and a top-level `score` when it has none, so
    `convert --min-score` filters on it. A judge reply that cannot be parsed is asked for again, then the
    record is written with score null and the error: scores are never guessed. Re-running the same command
    sends only what is missing.
    """
    from lf_reasoning.judge import format_score_summary, load_rubric
    from lf_reasoning.judge import score as run_score

    report = run_score(
        src,
        out,
        base_url=judge_base_url,
        model=judge_model,
        concurrency=concurrency,
        api_key_env=api_key_env,
        rubric=load_rubric(rubric) if rubric else None,
        temperature=temperature,
        max_tokens=max_tokens,
        rpm=rpm,
        tpm=tpm,
        max_retries=max_retries,
        retry_bad=retry_bad,
        backoff=backoff,
        timeout=timeout,
        failures=failures,
        log=lambda msg: click.echo(msg, err=True),
        progress=True,
    )
    click.echo(format_score_summary(report))
    if report.failed:
        sys.exit(2)
