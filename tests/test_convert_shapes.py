"""Every source shape, converted and then encoded by LLaMA-Factory itself: the label mask is what we expect.

Each bundled example file in examples/data is converted with ``lf-reasoning convert``; the dataset is loaded
with LLaMA-Factory's own loader and templates (qwen3 with enable_thinking true/false, deepseekr1) over the
tiny local model, and the trained/masked text is compared with the thought and answer written by hand below.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from lf_harness import encode_with_llamafactory

from lf_reasoning.cli import main

DATA = Path(__file__).parents[1] / "examples" / "data"
BOXED = "请一步步推理，并把最终答案放到 \\boxed{}。"

# file → (thought, answer) of the last assistant turn of every record written, in order (None: no thought).
EXPECTED: dict[str, list[tuple[str | None, str]]] = {
    "r1_distill.jsonl": [
        ("12 × 15 = 12 × 10 + 12 × 5 = 120 + 60 = 180。", "12 × 15 = 180。\n\n最终答案是 \\boxed{180}。"),
        ("用户想要一句关于秋天的诗，可以用桂花和落叶的意象，押韵。", "秋风送爽桂花香，落叶知秋入画廊。"),
        ("Spiders are arachnids; arachnids have eight legs, unlike insects with six.", "A spider has eight legs."),
        ("2 + 2 = 5.", "\\boxed{5}"),
    ],
    "r1_distill_sft.jsonl": [
        (
            "光合作用是植物利用光能把二氧化碳和水转化为有机物并释放氧气的过程。",
            "光合作用是绿色植物利用光能，把二氧化碳和水合成有机物并释放氧气的过程。",
        ),
        ("The question asks for the capital city of France; that is Paris.", "The capital of France is Paris."),
    ],
    "messages_reasoning.jsonl": [
        ("17 is not divisible by 2, 3 (sqrt(17) < 5), so it is prime.", "Yes, 17 is prime."),
        ("4 × 4 = 16.", "16"),
    ],
    "am_distilled.jsonl": [("Subtract 3: 2x = 8, so x = 4.", "x = \\boxed{4}")],
    "openr1_math.jsonl": [("Use n(n+1)/2 with n = 10: 55.", "The sum is $\\boxed{55}$.")],
    "medical_o1_sft.json": [
        (
            "Crushing chest pain radiating to the left arm in a middle-aged man is classic for acute coronary "
            "syndrome; an ECG and troponin would confirm a myocardial infarction.",
            "The most likely diagnosis is an acute myocardial infarction.",
        ),
        (
            "Scurvy results from impaired collagen synthesis, which needs vitamin C as a cofactor.",
            "Vitamin C (ascorbic acid) deficiency causes scurvy.",
        ),
    ],
    "s1k.jsonl": [
        ("A tetrahedron has 4 vertices, each pair joined by an edge: C(4,2) = 6.", "A tetrahedron has 6 edges.")
    ],
    "openthoughts_sharegpt.jsonl": [
        ("By the power rule, d/dx x^n = n x^(n-1), so the derivative is 2x.", "The derivative of x^2 is 2x."),
    ],
    "lf_v1_reasoning.jsonl": [
        (
            "I cannot browse, so I should say I lack live data.",
            "I don't have live weather data; please check a weather service.",
        )
    ],
    "alpaca_plain.jsonl": [(None, "体育"), (None, "财经")],
}
EMPTY_BLOCK = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("datasets")
    for file in EXPECTED:
        name = file.split(".")[0]
        result = CliRunner().invoke(main, ["convert", str(DATA / file), "--name", name, "--dataset-dir", str(out)])
        assert result.exit_code == 0, result.output
    return out


def test_every_example_file_is_covered() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in DATA.iterdir())


@pytest.mark.parametrize("file", sorted(EXPECTED))
@pytest.mark.parametrize(("template", "enable_thinking"), [("qwen3", True), ("qwen3", False), ("deepseekr1", True)])
def test_label_mask(tiny_model: Path, dataset_dir: Path, file: str, template: str, enable_thinking: bool) -> None:
    examples = encode_with_llamafactory(
        tiny_model, dataset_dir, file.split(".")[0], template, enable_thinking=enable_thinking
    )
    expected = EXPECTED[file]
    assert len(examples) == len(expected)
    for example, (thought, answer) in zip(examples, expected, strict=True):
        assert answer in example.label_text  # the answer is always trained
        assert answer not in example.prompt_text
        if thought is None:
            # plain data: LLaMA-Factory adds the empty block itself, trained iff enable_thinking
            assert example.label_text.startswith(EMPTY_BLOCK) == enable_thinking
            assert example.prompt_text.endswith(EMPTY_BLOCK) != enable_thinking
        elif enable_thinking:
            assert f"<think>\n{thought}\n</think>\n\n{answer}" in example.label_text
        else:
            # the thought is stripped from every turn, and an empty block is masked at the end of the prompt
            assert thought not in example.label_text and thought not in example.prompt_text
            assert example.prompt_text.endswith(EMPTY_BLOCK)
            assert "<think>" not in example.label_text


def test_history_thoughts(tiny_model: Path, dataset_dir: Path) -> None:
    """Earlier turns: trained with their thought by default; masked and stripped with mask_history."""
    _, second = encode_with_llamafactory(tiny_model, dataset_dir, "messages_reasoning", "qwen3")
    history = "<think>\n3 × 3 = 9.\n</think>\n\n9"
    assert history in second.label_text and "What is 3 squared?" in second.prompt_text
    _, masked = encode_with_llamafactory(tiny_model, dataset_dir, "messages_reasoning", "qwen3", mask_history=True)
    assert "3 × 3 = 9." not in masked.label_text + masked.prompt_text  # history thought dropped
    assert "9" in masked.prompt_text and masked.label_text.startswith("<think>\n4 × 4 = 16.\n</think>\n\n16")
    _, kept = encode_with_llamafactory(
        tiny_model, dataset_dir, "messages_reasoning", "qwen3", mask_history=True, preserve_thinking=True
    )
    assert history in kept.prompt_text and history not in kept.label_text


@pytest.mark.parametrize(("think", "trained_prefix"), [("drop", EMPTY_BLOCK), ("empty", EMPTY_BLOCK)])
def test_answer_only_modes(tiny_model: Path, tmp_path: Path, think: str, trained_prefix: str) -> None:
    """Method 3: thoughts removed at conversion; the model still learns a consistent empty thought."""
    result = CliRunner().invoke(
        main,
        ["convert", str(DATA / "r1_distill.jsonl"), "--name", "ao", "--dataset-dir", str(tmp_path), "--think", think],
    )
    assert result.exit_code == 0, result.output
    for example, (thought, answer) in zip(
        encode_with_llamafactory(tiny_model, tmp_path, "ao", "qwen3"), EXPECTED["r1_distill.jsonl"], strict=True
    ):
        assert thought not in example.label_text
        assert example.label_text.startswith(trained_prefix + answer)


def test_prompt_template_and_system(tiny_model: Path, tmp_path: Path) -> None:
    """The medical-o1 prompt style: the template wraps the question; the thought stays in the response."""
    template = Path(__file__).parents[1] / "examples" / "medical_prompt.txt"
    result = CliRunner().invoke(
        main,
        [
            "convert",
            str(DATA / "medical_o1_sft.json"),
            "--name",
            "med",
            "--dataset-dir",
            str(tmp_path),
            "--prompt-template",
            str(template),
            "--system",
            "SYS-MED",
        ],
    )
    assert result.exit_code == 0, result.output
    example = encode_with_llamafactory(tiny_model, tmp_path, "med", "qwen3")[1]
    assert "SYS-MED" in example.prompt_text
    assert "### Question:\nWhich vitamin deficiency causes scurvy?" in example.prompt_text
    assert example.label_text.startswith("<think>\nScurvy results")


def test_max_tokens_drops_exactly_what_cutoff_would_cut(tiny_model: Path, tmp_path: Path) -> None:
    """Counts are LLaMA-Factory's own: a record kept at N tokens encodes to at most N tokens, untruncated."""
    full = encode_with_llamafactory(tiny_model, _convert(tmp_path / "all", []), "d", "qwen3", cutoff_len=100_000)
    lengths = sorted(len(e.input_ids) for e in full)
    limit = lengths[len(lengths) // 2]  # keeps the shorter half, the record at exactly `limit` included
    kept_dir = _convert(
        tmp_path / "cut", ["--max-tokens", str(limit), "--tokenizer", str(tiny_model), "--template", "qwen3"]
    )
    kept = encode_with_llamafactory(tiny_model, kept_dir, "d", "qwen3", cutoff_len=100_000)
    assert sorted(len(e.input_ids) for e in kept) == [n for n in lengths if n <= limit]
    assert "too_long" in (kept_dir / "d.rejects.jsonl").read_text()


def _convert(out: Path, extra: list[str]) -> Path:
    result = CliRunner().invoke(
        main, ["convert", str(DATA / "r1_distill.jsonl"), "--name", "d", "--dataset-dir", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    return out


def test_alpaca_style_trains_like_sharegpt(tiny_model: Path, dataset_dir: Path, tmp_path: Path) -> None:
    """--style alpaca (history as [query, response] pairs) gives LLaMA-Factory the very same tokens and labels."""
    result = CliRunner().invoke(
        main,
        [
            "convert",
            str(DATA / "messages_reasoning.jsonl"),
            "--name",
            "alp",
            "--dataset-dir",
            str(tmp_path),
            "--style",
            "alpaca",
        ],
    )
    assert result.exit_code == 0, result.output
    for enable_thinking in (True, False):
        alpaca = encode_with_llamafactory(tiny_model, tmp_path, "alp", "qwen3", enable_thinking=enable_thinking)
        sharegpt = encode_with_llamafactory(
            tiny_model, dataset_dir, "messages_reasoning", "qwen3", enable_thinking=enable_thinking
        )
        assert [(e.input_ids, e.labels) for e in alpaca] == [(e.input_ids, e.labels) for e in sharegpt]
