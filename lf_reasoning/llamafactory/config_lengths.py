"""cutoff_len for a config, from the measured record lengths; and the thoughts ``--method answer-only`` refuses.

Lengths are measured when a tokenizer is at hand (``--tokenizer`` or the model's, local) and the data is local;
cutoff_len then covers p99 of them, rounded up to a multiple of 256, and a cutoff_len that would truncate records
(LLaMA-Factory cuts them silently) is refused unless ``--allow-truncation``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.config_check import hub_file
from lf_reasoning.llamafactory.dataset_info import REMOTE_KEYS, load_dataset_info
from lf_reasoning.llamafactory.lengths import LengthStats, count_thoughts, measure_lengths, suggest_cutoff_len

if TYPE_CHECKING:
    from lf_reasoning.llamafactory.config_build import ConfigRequest

DEFAULT_CUTOFF_LEN = 4096  # when nothing can be measured: reasoning records are long
COVERED_PERCENTILE = 99.0


def cutoff_len_for(
    req: ConfigRequest, dataset_dir: Path, template: str, enable_thinking: bool | None, warnings: list[str]
) -> tuple[int, str]:
    """cutoff_len for ``req`` and why, measured with ``template`` and ``enable_thinking`` where possible.

    Refuses (``UserError``) a cutoff_len that truncates records without ``allow_truncation``, and thoughts in the
    data of ``--method answer-only``; what could not be measured or checked is appended to ``warnings``.
    """
    stats = _measure(req, dataset_dir, template, enable_thinking, warnings)
    if req.method in ("answer-only", "answer-only-masked"):
        _refuse_thoughts(req, dataset_dir, stats, warnings)
    return _choose_cutoff(req, stats, template, warnings)


def _local_datasets(dataset_dir: Path, names: Sequence[str]) -> bool:
    info = load_dataset_info(dataset_dir)
    return all(isinstance(info.get(n), dict) and not any(k in info[n] for k in REMOTE_KEYS) for n in names)


def _tokenizer_at_hand(tokenizer: str) -> bool:
    path = Path(tokenizer).expanduser()
    if path.is_dir():
        return (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file()
    return hub_file(tokenizer, "tokenizer_config.json") is not None


def _measure(
    req: ConfigRequest, dataset_dir: Path, template: str, enable_thinking: bool | None, warnings: list[str]
) -> LengthStats | None:
    """Token lengths of all training datasets, or None (with a warning) when no tokenizer or no local data."""
    tokenizer = req.tokenizer or req.model
    if req.tokenizer is None and not _tokenizer_at_hand(tokenizer):
        warnings.append(
            f"no local tokenizer for {tokenizer}: record lengths were not measured, so truncation by "
            "cutoff_len is not checked; pass --tokenizer PATH or download the model"
        )
        return None
    if not _local_datasets(dataset_dir, req.datasets):
        warnings.append("remote datasets: record lengths were not measured; convert them to local files first")
        return None
    return LengthStats.concatenate(
        [
            measure_lengths(dataset_dir, name, tokenizer, template, enable_thinking=enable_thinking)
            for name in req.datasets
        ]
    )


def _refuse_thoughts(req: ConfigRequest, dataset_dir: Path, stats: LengthStats | None, warnings: list[str]) -> None:
    """answer-only trains with enable_thinking true: thoughts in the data would be trained, so refuse them
    (answer-only-masked would strip them without a word: refused the same way)."""
    if stats is not None and req.method == "answer-only":  # measured with enable_thinking false, thoughts are 0
        with_thought = int((stats.thought > 0).sum())
    elif _local_datasets(dataset_dir, req.datasets):
        with_thought = count_thoughts(dataset_dir, req.datasets)
    else:
        warnings.append(f"--method {req.method}: remote data not checked for thoughts; it must have none")
        return
    if with_thought:
        raise UserError(
            f"--method {req.method}: {with_thought} record(s) of {', '.join(req.datasets)} have a thought, "
            "which would be trained (answer-only) or stripped (answer-only-masked). "
            "Re-convert with `lf-reasoning convert … --think drop` (or "
            "--think empty), or use --method distill to train the thoughts."
        )


def _choose_cutoff(
    req: ConfigRequest, stats: LengthStats | None, template: str, warnings: list[str]
) -> tuple[int, str]:
    """cutoff_len and why; refuses one that would truncate records unless ``allow_truncation``."""
    if stats is None:
        if req.cutoff_len is not None:
            return req.cutoff_len, "set with --cutoff-len (record lengths not measured)."
        warnings.append(
            f"cutoff_len {DEFAULT_CUTOFF_LEN} is a guess; measure with lf-reasoning stats or pass --cutoff-len"
        )
        return DEFAULT_CUTOFF_LEN, "a default for long reasoning records: lengths could not be measured."
    longest = stats.percentile(100.0)
    if req.cutoff_len is not None:
        cutoff, why = req.cutoff_len, f"set with --cutoff-len; the longest record has {longest} tokens."
    else:
        cutoff = suggest_cutoff_len(stats, COVERED_PERCENTILE)
        why = (
            f"covers p{COVERED_PERCENTILE:g} of the measured record lengths ({stats.percentile(COVERED_PERCENTILE)} "
            f"tokens; longest {longest}), rounded up to a multiple of 256."
        )
    count = _refuse_truncation(
        stats, cutoff, req.tokenizer or req.model, template, "--cutoff-len ", req.allow_truncation, warnings
    )
    if count:
        why += f" Truncates {count} record(s): allowed with --allow-truncation."
    return cutoff, why


def _refuse_truncation(
    stats: LengthStats, cutoff: int, tokenizer: str, template: str, set_cutoff: str, allow: bool, warnings: list[str]
) -> int:
    """How many records ``cutoff`` truncates; refused (``UserError`` with the fixes) unless ``allow``, then a
    warning. ``set_cutoff`` spells how the user sets cutoff_len: ``--cutoff-len `` or ``cutoff_len=``."""
    share = stats.truncated_share(cutoff)
    if share == 0:
        return 0
    count = round(share * stats.n)
    message = (
        f"cutoff_len {cutoff} would truncate {count} of {stats.n} records ({share:.1%}): LLaMA-Factory "
        "cuts their tail silently, the answer and EOS first."
    )
    if not allow:
        raise UserError(
            f"{message} Fix: drop them with `lf-reasoning convert … --max-tokens {cutoff} --tokenizer "
            f"{tokenizer} --template {template}`, or set {set_cutoff}{suggest_cutoff_len(stats, 100.0)} "
            "(covers every record), or pass --allow-truncation to accept it."
        )
    warnings.append(message + " (allowed with --allow-truncation)")
    return count


# Keys that change what cutoff_len truncates: a train override of one of them re-runs config's truncation check.
LENGTH_KEYS = frozenset({"cutoff_len", "dataset", "dataset_dir", "template", "enable_thinking", "model_name_or_path"})


def check_truncation(config: Mapping[str, Any], source: str, *, allow: bool = False) -> list[str]:
    """``config``'s truncation check for a training config as it will run: its cutoff_len (LLaMA-Factory's default
    2048 when unset) against its datasets measured with its model's tokenizer, template and enable_thinking.
    Refuses (``UserError``) unless ``allow``; returns warnings (what could not be measured, truncation allowed)."""
    tokenizer = str(config.get("model_name_or_path"))
    datasets = [n.strip() for n in str(config.get("dataset") or "").split(",") if n.strip()]
    dataset_dir = Path(str(config.get("dataset_dir", "data"))).expanduser()
    if not _tokenizer_at_hand(tokenizer):
        return [f"{source}: no local tokenizer for {tokenizer}: truncation by cutoff_len was not checked"]
    if not datasets or not _local_datasets(dataset_dir, datasets):
        return [f"{source}: remote datasets: truncation by cutoff_len was not checked"]
    template = config.get("template")
    if template is None:  # LLaMA-Factory would parse the tokenizer's chat template: not measurable here
        return [f"{source}: no template key: truncation by cutoff_len was not checked"]
    thinking = config.get("enable_thinking", True)
    stats = LengthStats.concatenate(
        [measure_lengths(dataset_dir, n, tokenizer, str(template), enable_thinking=thinking) for n in datasets]
    )
    from llamafactory.hparams import DataArguments

    cutoff = int(config.get("cutoff_len", DataArguments.__dataclass_fields__["cutoff_len"].default))
    warnings: list[str] = []
    try:
        _refuse_truncation(stats, cutoff, tokenizer, str(template), "cutoff_len=", allow, warnings)
    except UserError as err:
        raise UserError(f"{source}: {err.message}") from None
    return [f"{source}: {w}" for w in warnings]
