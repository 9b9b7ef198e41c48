"""serve: the trained model as an OpenAI-compatible chat API (a thin wrapper of :mod:`lf_reasoning.commands.serve`)."""

from __future__ import annotations

from pathlib import Path

import click

from lf_reasoning.errors import EXIT_STATUS


@click.command(
    epilog=EXIT_STATUS
    + """

\b
Endpoints: POST /v1/chat/completions (stream or not), GET /v1/models, GET /health.
The served model's name (the request's "model") is the config's folder name unless --model-name says.

\b
Examples:
  lf-reasoning serve run/train.yaml --port 8000
  lf-reasoning distill prompts.jsonl --out mine.jsonl --base-url http://127.0.0.1:8000/v1 \\
      --model run --temperature 0 --api-key-env LF_REASONING_API_KEY
  LF_REASONING_API_KEY=secret lf-reasoning serve run/export.yaml --host 0.0.0.0

\b
Elsewhere: vllm serve run/export --reasoning-parser qwen3 (the parser per template
family is in the export.yaml header and the README).
"""
)
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback: this machine only).")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@click.option(
    "--api-key-env",
    default="LF_REASONING_API_KEY",
    show_default=True,
    metavar="VAR",
    help="When this environment variable is set, requests must send its value as a Bearer key (else 401).",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "huggingface", "vllm"]),
    default="auto",
    show_default=True,
    help="LLaMA-Factory's inference engine; auto: vLLM where it is installed and a GPU is there.",
)
@click.option("--model-name", help="Name clients send as model [default: the config's folder name].")
def serve(config: Path, host: str, port: int, api_key_env: str, backend: str, model_name: str | None) -> None:
    """Serve the model that CONFIG (a train, predict or export config) produced, thought in reasoning_content.

    A LoRA train config serves its base model plus the adapter in output_dir, a full fine-tune its output_dir, an
    export config the merged export_dir: through LLaMA-Factory's own engine with the training template and
    enable_thinking, so the model is prompted as it was trained. Replies carry the thought in reasoning_content
    and the answer in content (split at the template's thought words), with token usage; streams send the
    reasoning deltas, then the content deltas. `lf-reasoning distill` and any OpenAI client can call it.
    """
    from lf_reasoning.commands.serve import ServeOptions
    from lf_reasoning.commands.serve import serve as run_serve

    options = ServeOptions(config, host, port, api_key_env, backend, model_name)  # type: ignore[arg-type]
    try:
        run_serve(options, log=lambda msg: click.echo(msg, err=True))
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
