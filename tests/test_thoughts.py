"""Every thought-markup variant of FORMATS.md splits into the same (thought, answer)."""

import pytest

from lf_reasoning.errors import RecordError
from lf_reasoning.record.thoughts import merge_thought, render_response, split_thought


@pytest.mark.parametrize(
    "text",
    [
        "<think>\nT\n</think>\n\nA",
        "<think>T</think>A",
        "<think>  T \n</think>\nA\n",
        "\n<think>\nT\n</think>\n\nA",
        "T</think>\n\nA",  # opening tag prefilled by the R1-distill chat template
        "\nT\n</think>A",
        "<|begin_of_thought|>\n\nT\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\nA\n\n<|end_of_solution|>",
        "<reasoning>T</reasoning><answer>A</answer>",
        "<think>T</think>\n<answer>A</answer>",
    ],
)
def test_variants_normalise_to_one_form(text: str) -> None:
    assert split_thought(text) == ("T", "A")
    assert render_response(*split_thought(text)) == "<think>\nT\n</think>\n\nA"


def test_no_markup_means_no_thought() -> None:
    assert split_thought("  just an answer\n") == (None, "just an answer")


def test_empty_thought_is_kept_as_empty_not_none() -> None:
    assert split_thought("<think>\n\n</think>\n\nA") == ("", "A")
    assert render_response("", "A") == "<think>\n\n</think>\n\nA"  # LLaMA-Factory's empty block exactly


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<think>a</think><think>b</think>c", "multiple_thoughts"),
        ("<think>never closed", "unclosed_thought"),
        ("</think>x<think>y", "unbalanced_thought"),
        ("preamble <think>t</think>a", "text_before_thought"),
        ("<think>t</think><answer>a", "unclosed_answer"),
        ("<think>t</think><answer>a</answer> trailing", "text_after_answer"),
    ],
)
def test_malformed_markup_is_rejected_with_reason(text: str, reason: str) -> None:
    with pytest.raises(RecordError) as err:
        split_thought(text)
    assert err.value.reason == reason


def test_reasoning_field_and_content() -> None:
    assert merge_thought("  T  ", "\nA") == ("T", "A")
    assert merge_thought(None, "T</think>A") == ("T", "A")  # vLLM without a reasoning parser
    assert merge_thought("", "A") == ("", "A")
    with pytest.raises(RecordError) as err:
        merge_thought("T", "<think>U</think>A")
    assert err.value.reason == "two_thoughts"
