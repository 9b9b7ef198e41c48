"""Pin LLaMA-Factory 0.9.5's real label masks for reasoning data (via tests/lf_harness.py + the tiny model).

Each record is encoded by LLaMA-Factory itself; ``prompt_text`` is every masked token (label -100) decoded,
``label_text`` every trained token. Expected strings are exact, so any change in LLaMA-Factory shows up here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lf_harness import EncodedExample, encode_with_llamafactory

SHAREGPT_INFO = {
    "formatting": "sharegpt",
    "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
    "tags": {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "observation_tag": "observation",
        "function_tag": "function_call",
        "system_tag": "system",
    },
}
EMPTY = "<think>\n\n</think>\n\n"


def thought(tag: str) -> str:
    return f"<think>\nTHOUGHT-{tag}\n</think>\n\n"


def conversation(*turns: tuple[str, str]) -> dict[str, Any]:
    messages = []
    for query, answer in turns:
        messages += [{"role": "user", "content": query}, {"role": "assistant", "content": answer}]
    return {"conversations": messages, "system": "", "tools": ""}


RECORDS = [
    conversation(("Q-A", thought("A") + "ANSWER-A")),  # 0: one turn with a thought
    conversation(("Q-1", thought("1") + "ANSWER-1"), ("Q-2", thought("2") + "ANSWER-2")),  # 1: both turns
    conversation(("Q-P", "ANSWER-P")),  # 2: plain, no thought
    conversation(("Q-3", "ANSWER-3"), ("Q-4", thought("4") + "ANSWER-4")),  # 3: thought only in the last turn
]


@dataclass(frozen=True)
class Chat:
    """How a template renders a user turn and ends an assistant turn (as observed with the tiny model)."""

    bos: str
    user: str
    end: str

    def ask(self, query: str, *, first: bool = False) -> str:
        return (self.bos if first else "") + self.user.format(query)


CHATS = {
    # qwen3 has replace_eos: EOS becomes <|im_end|>; no BOS.
    "qwen3": Chat(bos="", user="<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n", end="<|im_end|>\n"),
    # deepseekr1 takes BOS/EOS from the tokenizer (the tiny one mimics DeepSeek-R1-Distill's).
    "deepseekr1": Chat(bos="<｜begin▁of▁sentence｜>", user="<｜User｜>{}<｜Assistant｜>", end="<｜end▁of▁sentence｜>"),
}

Encode = Callable[..., list[EncodedExample]]


def write_dataset(dataset_dir: Path, name: str, records: list[dict[str, Any]]) -> Path:
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / f"{name}.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    info = {name: {"file_name": f"{name}.json", **SHAREGPT_INFO}}
    (dataset_dir / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return dataset_dir


@pytest.fixture(scope="module")
def encode(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Encode:
    """Encode RECORDS with a template and options; results are memoized (each LF call costs ~0.3 s)."""
    dataset_dir = write_dataset(tmp_path_factory.mktemp("lf_data"), "reasoning", RECORDS)
    cache: dict[tuple[Any, ...], list[EncodedExample]] = {}

    def run(template: str, **kwargs: Any) -> list[EncodedExample]:
        key = (template, *sorted(kwargs.items()))
        if key not in cache:
            cache[key] = encode_with_llamafactory(tiny_model, dataset_dir, "reasoning", template, **kwargs)
        return cache[key]

    return run


def texts(example: EncodedExample) -> tuple[str, str]:
    return example.prompt_text, example.label_text


@pytest.mark.parametrize("template", sorted(CHATS))
def test_enable_thinking_true_trains_thoughts_and_empty_block(encode: Encode, template: str) -> None:
    c = CHATS[template]
    one, two, plain, mixed = encode(template, enable_thinking=True)
    assert texts(one) == (c.ask("Q-A", first=True), thought("A") + "ANSWER-A" + c.end)
    # Without mask_history every turn is trained, the history thought included.
    assert texts(two) == (
        c.ask("Q-1", first=True) + c.ask("Q-2"),
        thought("1") + "ANSWER-1" + c.end + thought("2") + "ANSWER-2" + c.end,
    )
    # No thought: the empty block is prepended to the response and trained.
    assert texts(plain) == (c.ask("Q-P", first=True), EMPTY + "ANSWER-P" + c.end)
    assert texts(mixed) == (
        c.ask("Q-3", first=True) + c.ask("Q-4"),
        EMPTY + "ANSWER-3" + c.end + thought("4") + "ANSWER-4" + c.end,
    )
    assert len(one.input_ids) == len(one.labels)


@pytest.mark.parametrize("template", sorted(CHATS))
def test_enable_thinking_false_strips_thoughts_and_masks_empty_block(encode: Encode, template: str) -> None:
    c = CHATS[template]
    one, two, plain, mixed = encode(template, enable_thinking=False)
    assert texts(one) == (c.ask("Q-A", first=True) + EMPTY, "ANSWER-A" + c.end)
    # Thoughts are stripped from every assistant turn (history too), not just masked.
    assert texts(two) == (
        c.ask("Q-1", first=True) + EMPTY + c.ask("Q-2") + EMPTY,
        "ANSWER-1" + c.end + "ANSWER-2" + c.end,
    )
    assert texts(plain) == (c.ask("Q-P", first=True) + EMPTY, "ANSWER-P" + c.end)
    assert texts(mixed) == (
        c.ask("Q-3", first=True) + EMPTY + c.ask("Q-4") + EMPTY,
        "ANSWER-3" + c.end + "ANSWER-4" + c.end,
    )
    for example in (one, two, mixed):
        assert "THOUGHT" not in example.prompt_text + example.label_text


@pytest.mark.parametrize("template", sorted(CHATS))
def test_enable_thinking_none_keeps_thoughts_but_masks_empty_block(encode: Encode, template: str) -> None:
    c = CHATS[template]
    one, two, plain, mixed = encode(template, enable_thinking=None)
    thinking = encode(template, enable_thinking=True)
    assert texts(one) == texts(thinking[0])
    assert texts(two) == texts(thinking[1])
    assert texts(plain) == (c.ask("Q-P", first=True) + EMPTY, "ANSWER-P" + c.end)
    assert texts(mixed) == (
        c.ask("Q-3", first=True) + EMPTY + c.ask("Q-4"),
        "ANSWER-3" + c.end + thought("4") + "ANSWER-4" + c.end,
    )


@pytest.mark.parametrize("template", sorted(CHATS))
def test_mask_history_trains_last_turn_and_drops_history_thoughts(encode: Encode, template: str) -> None:
    c = CHATS[template]
    one, two, plain, mixed = encode(template, enable_thinking=True, mask_history=True)
    assert texts(one) == texts(encode(template, enable_thinking=True)[0])
    # The history thought is deleted outright (no empty block either), the last turn is the only one trained.
    assert texts(two) == (
        c.ask("Q-1", first=True) + "ANSWER-1" + c.end + c.ask("Q-2"),
        thought("2") + "ANSWER-2" + c.end,
    )
    assert texts(plain) == (c.ask("Q-P", first=True), EMPTY + "ANSWER-P" + c.end)
    assert texts(mixed) == (
        c.ask("Q-3", first=True) + "ANSWER-3" + c.end + c.ask("Q-4"),
        thought("4") + "ANSWER-4" + c.end,
    )


@pytest.mark.parametrize("template", sorted(CHATS))
def test_preserve_thinking_keeps_history_thoughts_only_with_mask_history(encode: Encode, template: str) -> None:
    c = CHATS[template]
    one, two, plain, mixed = encode(template, enable_thinking=True, mask_history=True, preserve_thinking=True)
    assert texts(one) == (c.ask("Q-A", first=True), thought("A") + "ANSWER-A" + c.end)
    assert texts(plain) == (c.ask("Q-P", first=True), EMPTY + "ANSWER-P" + c.end)
    assert texts(two) == (
        c.ask("Q-1", first=True) + thought("1") + "ANSWER-1" + c.end + c.ask("Q-2"),
        thought("2") + "ANSWER-2" + c.end,
    )
    # A history turn without a thought gets the empty block, masked like the rest of the history.
    assert texts(mixed) == (
        c.ask("Q-3", first=True) + EMPTY + "ANSWER-3" + c.end + c.ask("Q-4"),
        thought("4") + "ANSWER-4" + c.end,
    )
    # Without mask_history, preserve_thinking changes nothing in SFT.
    assert [texts(e) for e in encode(template, enable_thinking=True, preserve_thinking=True)] == [
        texts(e) for e in encode(template, enable_thinking=True)
    ]


def test_nothink_template_ignores_enable_thinking_and_adds_no_empty_block(encode: Encode) -> None:
    c = CHATS["qwen3"]
    # A plain template: even with enable_thinking=False, thoughts in the data are trained verbatim.
    one, two, plain, mixed = encode("qwen3_nothink", enable_thinking=False)
    assert texts(one) == (c.ask("Q-A", first=True), thought("A") + "ANSWER-A" + c.end)
    assert texts(plain) == (c.ask("Q-P", first=True), "ANSWER-P" + c.end)
    assert thought("1") in two.label_text
    assert texts(mixed) == (
        c.ask("Q-3", first=True) + c.ask("Q-4"),
        "ANSWER-3" + c.end + thought("4") + "ANSWER-4" + c.end,
    )


def test_calls_do_not_share_cache_or_template_state(tiny_model: Path, tmp_path: Path) -> None:
    record = conversation(("Q-X", "ANSWER-X"))
    first = write_dataset(tmp_path / "a", "same_name", [record])
    second = write_dataset(tmp_path / "b", "same_name", [conversation(("Q-Y", "ANSWER-Y"))])
    (a,) = encode_with_llamafactory(tiny_model, first, "same_name", "qwen3", default_system="SYS-X")
    (b,) = encode_with_llamafactory(tiny_model, second, "same_name", "qwen3")
    assert a.prompt_text.startswith("<|im_start|>system\nSYS-X<|im_end|>\n")
    assert "ANSWER-X" in a.label_text
    # Same dataset name, other folder: fresh rows; and default_system did not stick to the global template.
    assert b.prompt_text == CHATS["qwen3"].ask("Q-Y")
    assert b.label_text == EMPTY + "ANSWER-Y" + CHATS["qwen3"].end
