"""The train.yaml keys for big data (110k–1.4M records with long thoughts): parallel tokenisation, a tokenised copy
reused by the next run, data-loader workers, and streaming for data too big to tokenise up front.

LLaMA-Factory tokenises the whole dataset before the first step, in one process unless
``preprocessing_num_workers`` says otherwise, and does it again on every run unless ``tokenized_path`` is set.
Streaming (``streaming: true``) tokenises on the fly instead, but then nothing can be split off (``val_size``), the
tokens cannot be saved (``tokenized_path``) and LLaMA-Factory requires ``max_steps``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lf_reasoning.llamafactory.config_build import ConfigFile, ConfigRequest
    from lf_reasoning.llamafactory.config_check import Hardware

# Above this much data on disk, train.yaml streams. Measured (tests/test_scale.py, tokenized_path of the tiny
# model): LLaMA-Factory stores input_ids as int32, attention_mask as int8 and labels as int64, 13 bytes a token
# (20 with the Arrow headers of a 421-token set). A real tokenizer makes a token of ~3.5 bytes of English or LaTeX,
# so the saved copy is ~3.7× the JSON Lines, the datasets library's map cache another ~3.7× and its Arrow copy of
# the JSON ~1×: ~8× the data, ~70 GB for 8 GiB (~500k records of 16 KiB), all written before the first step,
# after hours of tokenising. Beyond that, tokenising on the fly costs less than waiting for it and the disk.
STREAMING_BYTES = 8 * 2**30
# A worker per CPU, up to 16: each is a process with its own tokenizer; past ~16 the shards' write-out dominates.
MAX_PREPROCESSING_WORKERS = 16
# Below this much data one process is faster: starting a worker (fork, tokenizer, shard files) costs ~1 s.
PARALLEL_BYTES = 64 * 2**20
EPOCHS = 3  # LLaMA-Factory's num_train_epochs default, which train.yaml keeps


def cpu_count() -> int:
    """CPUs this process may use (the affinity mask, as in a container or under taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def data_bytes(files: Sequence[Path]) -> int:
    return sum(f.stat().st_size for f in files)


def count_records(files: Sequence[Path]) -> int:
    """Records in JSON Lines files (non-blank lines), as ``lf-reasoning convert`` writes them."""
    count = 0
    for path in files:
        with path.open("rb") as f:
            count += sum(1 for line in f if not line.isspace())
    return count


def big_data_keys(
    req: ConfigRequest,
    train: ConfigFile,
    hardware: Hardware,
    files: Sequence[Path] | None,
    tokenized_path: str,
) -> None:
    """Append the big-data keys to ``train``: ``files`` are the training data's local files (None: remote)."""
    from lf_reasoning.llamafactory.config_build import EFFECTIVE_BATCH  # records per optimizer step and device

    size = data_bytes(files) if files is not None else None
    cpus = cpu_count()
    shown = f"{size / 2**20:,.1f} MiB" if size is not None else "remote data"
    stream = size is not None and size > STREAMING_BYTES and req.eval_dataset is not None
    if stream:
        assert files is not None
        records = count_records(files)
        steps = math.ceil(EPOCHS * records / EFFECTIVE_BATCH)
        train.set(
            "streaming",
            True,
            f"{shown} of data is above {STREAMING_BYTES // 2**30} GiB: records are read and tokenised on the fly, "
            "nothing is written up front (tokenising first would write ~8× the data to disk before step 1).",
        )
        train.set(
            "max_steps",
            steps,
            f"streaming needs it (the length is unknown to the trainer): {EPOCHS} epochs × {records:,} records ÷ "
            f"{EFFECTIVE_BATCH} per step; on D devices (all nodes) divide by D, or each record is seen D× as often.",
        )
    else:
        workers = min(cpus, MAX_PREPROCESSING_WORKERS) if size is None or size >= PARALLEL_BYTES else 1
        train.set(
            "preprocessing_num_workers",
            workers,
            f"{shown}: tokenised in {workers} processes, one per CPU of this machine ({cpus}), at most "
            f"{MAX_PREPROCESSING_WORKERS}."
            if workers > 1
            else f"{shown}: tokenised in one process (below {PARALLEL_BYTES // 2**20} MiB starting workers costs more "
            f"than they save; larger data gets one per CPU, at most {MAX_PREPROCESSING_WORKERS}).",
        )
        train.set(
            "tokenized_path",
            tokenized_path,
            "the first run saves the tokenised data here, later runs load it and skip tokenising. LLaMA-Factory "
            "then ignores the data keys: after changing the data, dataset, template, enable_thinking, cutoff_len, "
            "val_size or the tokenizer, delete the folder (lf-reasoning train refuses a stale one).",
        )
        if size is not None and size > STREAMING_BYTES:
            train.reasons["tokenized_path"] += (
                f" {shown} is above {STREAMING_BYTES // 2**30} GiB: with --eval-dataset the data would be "
                "streamed instead (a streamed dataset cannot be split into predict.yaml's held-out part)."
            )
    loaders = 0 if hardware == "cpu" else 2
    train.set(
        "dataloader_num_workers",
        loaders,
        "batches are collated in the training process: on a CPU its cores are busy training."
        if loaders == 0
        else "two processes per device prepare the next batches while the GPU computes (collating "
        "tokenised records is cheap; every rank of a node starts its own).",
    )
