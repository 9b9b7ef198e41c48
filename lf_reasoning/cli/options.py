"""Option groups shared by several commands, spelt once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lf_reasoning.record.formats import FORMATS

MAP_HELP = "Read any table: map prompt, answer (required), thought, system, score, source, id, reference, query."


def input_options(map_help: str = MAP_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format``, ``--map`` and ``--split``: how SRC is read (they become a ``record.inputs.Inputs``)."""
    options = (
        click.option(
            "--format",
            "fmt",
            default="auto",
            show_default=True,
            metavar="auto|" + "|".join(FORMATS),
            help="Source shape; auto detects it from each file's first record and says why.",
        ),
        click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN", help=map_help),
        click.option(
            "--split",
            "hub_split",
            default="train",
            show_default=True,
            help="Split of a Hugging Face SRC, or of a folder whose files are named by split "
            "(train-00000-of-00002.parquet, test.jsonl).",
        ),
    )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def out_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--out FILE``: the JSON Lines file a command writes."""
    return click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help=help)


def workers_option(what: str = "Worker processes") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--workers N``: CPU-bound work in N processes (default: one per CPU)."""
    return click.option("--workers", type=click.IntRange(min=1), help=f"{what} [default: one per CPU].")


def judge_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--judge-base-url`` and ``--judge-model`` (required), named like ``RequestOptions``' fields."""
    command = click.option("--judge-model", "model", required=True, metavar="NAME", help="Model name of the judge.")(
        command
    )
    return click.option(
        "--judge-base-url", "base_url", required=True, metavar="URL", help="OpenAI-compatible API root of the judge."
    )(command)


def cutoff_len_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--cutoff-len", type=click.IntRange(min=1), default=2048, show_default=True, help=help)


def enable_thinking_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--enable-thinking true|false|none``, converted to LLaMA-Factory's value (True, False, None)."""
    return click.option(
        "--enable-thinking",
        type=click.Choice(["true", "false", "none"]),
        default="true",
        show_default=True,
        callback=lambda ctx, param, value: {"true": True, "false": False, "none": None}[value],
        help=help,
    )


def force_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--force``: replace an existing file that lf-reasoning did not write (inputs are never overwritten)."""
    return click.option("--force", is_flag=True, help=help)


def dataset_dir_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--dataset-dir DIR``: LLaMA-Factory's ``dataset_dir``, where ``dataset_info.json`` lives."""
    return click.option("--dataset-dir", required=True, type=click.Path(file_okay=False, path_type=Path), help=help)
