"""Encode a dataset with LLaMA-Factory's own SFT code path, for tests that assert real label masks.

Nothing here reimplements LLaMA-Factory: arguments go through ``get_train_args``, the tokenizer through
``load_tokenizer`` and ``get_template_and_fix_tokenizer``, the rows through ``get_dataset(stage="sft")``.
Each call uses a fresh temporary output and ``datasets`` cache directory plus ``overwrite_cache``, and a
private copy of the registered template (``get_template_and_fix_tokenizer`` mutates the global one), so
repeated calls in one process never see each other's state.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DISABLE_VERSION_CHECK": "1",
}


@dataclass(frozen=True)
class EncodedExample:
    """One tokenized SFT example as LLaMA-Factory would train on it."""

    input_ids: list[int]
    labels: list[int]
    prompt_text: str  # decode of the masked tokens (label == -100), special tokens kept
    label_text: str  # decode of the trained labels (label != -100), special tokens kept


def encode_with_llamafactory(
    model_path: str | Path,
    dataset_dir: str | Path,
    dataset: str,
    template: str,
    *,
    enable_thinking: bool | None = True,
    cutoff_len: int = 1024,
    **data_args: Any,
) -> list[EncodedExample]:
    """Tokenize ``dataset`` (a name in ``dataset_dir/dataset_info.json``) exactly as ``llamafactory-cli train``
    with ``stage: sft`` would, and return one ``EncodedExample`` per kept row, in file order.

    Extra keyword arguments (``mask_history=True``, ``preserve_thinking=True``, ``train_on_prompt``, ...)
    are passed to LLaMA-Factory's argument parser unchanged.
    """
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)

    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    with tempfile.TemporaryDirectory(prefix="lf-harness-") as tmp:
        args: dict[str, Any] = {
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "model_name_or_path": str(model_path),
            "dataset": dataset,
            "dataset_dir": str(dataset_dir),
            "template": template,
            "cutoff_len": cutoff_len,
            "enable_thinking": enable_thinking,
            "output_dir": str(Path(tmp) / "output"),
            "cache_dir": str(Path(tmp) / "cache"),  # datasets' arrow and map caches live here
            "overwrite_cache": True,
            "preprocessing_num_workers": None,
            "report_to": "none",
            **data_args,
        }
        model_args, data_args_, training_args, _, _ = get_train_args(args)
        tokenizer_module = load_tokenizer(model_args)
        tokenizer = tokenizer_module["tokenizer"]

        shared = TEMPLATES.get(template)
        if shared is not None:
            TEMPLATES[template] = copy.deepcopy(shared)
        try:
            lf_template = get_template_and_fix_tokenizer(tokenizer, data_args_)
            module = get_dataset(lf_template, model_args, data_args_, training_args, stage="sft", **tokenizer_module)
        finally:
            if shared is not None:
                TEMPLATES[template] = shared

        rows = module["train_dataset"].select_columns(["input_ids", "labels"]).to_list()

    examples = []
    for row in rows:
        ids, labels = row["input_ids"], row["labels"]
        masked = [tok for tok, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX]
        trained = [lab for lab in labels if lab != IGNORE_INDEX]  # labels, not ids: efficient_eos shifts EOS
        examples.append(
            EncodedExample(
                input_ids=ids,
                labels=labels,
                prompt_text=tokenizer.decode(masked, skip_special_tokens=False),
                label_text=tokenizer.decode(trained, skip_special_tokens=False),
            )
        )
    return examples
