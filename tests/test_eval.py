"""``eval``: normalisation rules, thought-format shares, metrics and every bad input on hand-written predictions."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from lf_reasoning.commands.evaluate import (
    AMBIGUOUS,
    EMPTY,
    OUT_OF_SET,
    compare,
    evaluate,
    match_label,
    normalize,
    read_labels,
    run_names,
)
from lf_reasoning.errors import EXIT_PARTIAL, UserError
from tests.cli_runner import run

LABELS = {normalize(x): x for x in ("体育", "财经", "科技", "Sports")}


def write(path: Path, records: list[dict | str]) -> Path:
    """A predictions file; a string record is written as the raw line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records),
        encoding="utf-8",
    )
    return path


def pred(predict: str, label: str | None = "体育", prompt: str = "标题：x\n") -> dict:
    record = {"prompt": prompt, "predict": predict}
    return record if label is None else record | {"label": label}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  体育 \n", "体育"),  # surrounding whitespace
        ("体  育", "体 育"),  # inner whitespace collapsed
        ("ＳＰＯＲＴＳ", "sports"),  # full-width → half-width, Latin case
        ("体育。", "体育"),
        ("“体育”", "体育"),
        ("！体育？", "体育"),  # CJK punctuation
        ("体育：", "体育"),
        ("「体育」，", "体育"),
        ("(Sports).", "sports"),
        ('"sports!"', "sports"),  # ASCII punctuation
        ("C++", "c++"),  # symbols are not punctuation
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (" 体育。", "体育"),
        ("ｓｐｏｒｔｓ！", "Sports"),
        ("这条新闻属于体育类。", "体育"),  # one label inside a sentence
        ("The answer is SPORTS.", "Sports"),
        ("体育还是财经？", AMBIGUOUS),  # two labels inside a sentence
        ("娱乐", OUT_OF_SET),
        ("esports news", OUT_OF_SET),  # a Latin label counts only as a whole word
        ("。 ", EMPTY),
    ],
)
def test_match_label(answer: str, expected: str) -> None:
    assert match_label(answer, LABELS) == expected


def test_label_contained_in_a_longer_label_is_not_ambiguous() -> None:
    labels = {normalize(x): x for x in ("科技", "科技新闻")}
    assert match_label("这是科技新闻", labels) == "科技新闻"


def test_classify_metrics_against_hand_computation(tmp_path: Path) -> None:
    pairs = [
        ("体育", "体育"),
        ("体育", "体育"),
        ("体育", "财经"),
        ("财经", "财经"),
        ("财经", ""),
        ("科技", "科技"),
        ("科技", "体育"),
    ]
    path = write(tmp_path / "p.jsonl", [pred(p, gold, f"标题{i}") for i, (gold, p) in enumerate(pairs)])
    report = evaluate(path, "classify")
    assert report.labels == sorted(["体育", "财经", "科技"])
    assert (report.correct, report.scored) == (4, 7)
    per_class = report.per_class()
    assert per_class["体育"].precision == pytest.approx(2 / 3) and per_class["体育"].recall == pytest.approx(2 / 3)
    assert per_class["财经"].f1 == pytest.approx(1 / 2)
    assert per_class["科技"].precision == 1 and per_class["科技"].recall == 0.5 and per_class["科技"].support == 2
    assert report.macro_f1 == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert report.outcomes == {"wrong label": 2, EMPTY: 1}
    assert report.cut_off == 1 and report.confusion["财经"][EMPTY] == 1


def test_bad_predictions_counted_not_fatal(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl",
        [
            pred("体育"),
            pred("娱乐"),
            pred(""),
            pred("体育或财经"),
            pred("体育", label=None),
            pred("体育", label="军事"),
            pred("科技", label="科技"),
            pred("财经", label="财经"),
        ],
    )
    report = evaluate(path, "classify", ["体育", "财经", "科技"])
    assert report.outcomes == {OUT_OF_SET: 1, EMPTY: 1, AMBIGUOUS: 1}
    assert report.excluded == {"no gold": 1, "gold out of set": 1}
    assert (report.correct, report.scored) == (3, 6)
    assert any(w.startswith(f"{path}:5: no gold") for w in report.warnings)
    assert any(w.startswith(f"{path}:6: gold label '军事' is not in the label set") for w in report.warnings)


def test_thought_format_shares_and_cut_off(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl",
        [
            pred("<think>\n关于足球。\n</think>\n\n体育"),  # well-formed, LLaMA-Factory's exact form
            pred("<think>\n\n</think>\n\n体育"),  # empty thought
            pred("体育"),  # none
            pred("<think>关于足球</think>体育"),  # markup not in the exact form
            pred("<think>\na\n</think>\n\n<think>\nb\n</think>\n\n体育"),  # two thoughts
            pred("<think>\n想了很久还没"),  # never closed: cut off
            pred("<think>\n想完了\n</think>\n\n"),  # well-formed thought, empty answer: cut off
            pred("足球。\n</think>\n\n体育", prompt="标题：x\n<think>\n"),  # thought opened by the chat template
        ],
    )
    report = evaluate(path, "free")
    assert report.formats == {"well_formed": 3, "empty": 1, "none": 1, "malformed": 3}
    assert report.cut_off == 2
    assert report.thought_chars == [len("关于足球。"), 0, len("关于足球"), len("想完了"), len("足球。")]
    assert report.answer_chars == [2, 2, 2, 2, 0, 0, 2]  # the two-thoughts record has no separable answer
    assert report.to_json()["format"]["malformed"] == pytest.approx(3 / 8)


def test_malformed_json_line_named_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", [pred("体育"), "{not json", "[1, 2]", pred("财经", label="财经")])
    code, out = run("eval", str(path), "--task", "classify")
    assert code == EXIT_PARTIAL
    assert f"{path}:2: not valid JSON" in out and f"{path}:3: expected an object" in out
    assert "accuracy" in out and "100.0% (2/2)" in out


def test_distill_shape_and_math_verify(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl",
        [
            {
                "input": "1/2?",
                "reasoning_content": "half",
                "content": "答案是 $\\boxed{\\frac{1}{2}}$",
                "reference_answer": "0.5",
            },
            {"input": "2+2?", "reasoning_content": "", "content": "\\boxed{5}", "reference_answer": "4"},
            {"input": "x?", "content": "The answer is $x^2+2x+1$.", "reference_answer": "(x+1)^2"},
            {"input": "y?", "content": "<think>\n没想完"},
        ],
    )
    report = evaluate(path, "math")
    assert (report.correct, report.scored) == (2, 3)
    assert report.outcomes == {"wrong": 1}
    assert report.excluded == {"no gold": 1}
    assert report.formats == {"well_formed": 1, "empty": 1, "none": 1, "malformed": 1}  # "" reasoning: empty
    lf = write(
        tmp_path / "lf.jsonl",
        [
            pred("<think>\n算一下\n</think>\n\n$\\boxed{4}$", label="4"),
            pred("<think>\n算一下\n</think>\n\n", label="4"),
        ],
    )
    report = evaluate(lf, "math")
    assert (report.correct, report.scored, report.outcomes) == (1, 2, {EMPTY: 1})


def test_compare_side_by_side_json_and_plot(tmp_path: Path) -> None:
    prompts = ["标题：a\n", "标题：b\n"]
    a = write(tmp_path / "answer_only.jsonl", [pred("体育", "体育", prompts[0]), pred("体育", "财经", prompts[1])])
    b = write(
        tmp_path / "with_thought.jsonl",
        [  # the first prompt as a template with enable_thinking=false has it
            pred("<think>\n足球\n</think>\n\n体育", "体育", prompts[0] + "<think>\n\n</think>\n\n"),
            pred("<think>\n股票\n</think>\n\n财经", "财经", prompts[1]),
        ],
    )
    first, second = compare([a, b], "classify")
    assert (first.accuracy, second.accuracy) == (0.5, 1.0)
    code, out = run("eval", "--compare", str(a), str(b), "--task", "classify", "--plot", str(tmp_path / "cm.png"))
    assert code == 0 and "answer_only.jsonl" in out and "with_thought.jsonl" in out
    assert "answer_only.jsonl P" in out and "confusion matrix written to" in out
    assert (tmp_path / "cm.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    untrained = write(tmp_path / "untrained.jsonl", [pred("", "体育", prompts[0]), pred("教育", "财经", prompts[1])])
    code, out = run("eval", str(untrained), str(a), str(b), "--task", "classify", "--json")
    assert code == 0 and [r["accuracy"] for r in orjson.loads(out)] == [0.0, 0.5, 1.0]
    code, out = run("eval", str(a), "--task", "classify", "--json")
    data = orjson.loads(out)
    assert code == 0 and data["accuracy"] == 0.5 and data["per_class"]["体育"]["support"] == 1
    assert data["format"]["none"] == 1.0 and data["confusion"]["财经"] == {"体育": 1}


def test_compare_refuses_different_datasets(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", [pred("体育", prompt="标题：a\n"), pred("体育", prompt="标题：b\n")])
    shorter = write(tmp_path / "short.jsonl", [pred("体育", prompt="标题：a\n")])
    other = write(tmp_path / "other.jsonl", [pred("体育", prompt="标题：a\n"), pred("体育", prompt="标题：c\n")])
    code, out = run("eval", "--compare", str(a), str(shorter), "--task", "classify")
    assert code == 1 and "has 2 records but" in out and "different datasets" in out
    code, out = run("eval", "--compare", str(a), str(other), "--task", "free")
    assert code == 1 and "record 2 has a different prompt" in out


def test_labels_file_and_usage_errors(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("体育\n\n财经\n", encoding="utf-8")
    assert read_labels(labels) == ["体育", "财经"]
    labels.write_text("Sports\nsports。\n", encoding="utf-8")
    with pytest.raises(UserError, match="same label"):
        read_labels(labels)
    labels.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="no labels"):
        read_labels(labels)
    path = write(tmp_path / "p.jsonl", [pred("体育")])
    for args, message in [
        ((), "either PREDICTIONS or --compare"),
        ((str(path), "--compare", str(path), str(path)), "either PREDICTIONS or --compare"),
        ((str(tmp_path / "none.jsonl"),), "no such file"),
        ((str(path), "--labels", str(tmp_path / "missing.txt")), "cannot read"),
    ]:
        code, out = run("eval", *args, "--task", "classify")
        assert code == 1 and message in out
    code, out = run("eval", str(path), "--task", "math", "--plot", str(tmp_path / "x.png"))
    assert code == 1 and "classify only" in out


def test_runs_are_named_by_what_tells_them_apart(tmp_path: Path) -> None:
    assert run_names(["x/a.jsonl", "x/b.jsonl"]) == ["a.jsonl", "b.jsonl"]
    lf = "predict/generated_predictions.jsonl"
    assert run_names([f"runs/untrained/{lf}", f"runs/answer_only/{lf}"]) == ["untrained", "answer_only"]
    rows = [pred("体育", "体育", "标题：a\n")]
    paths = [write(tmp_path / name / "predict" / "generated_predictions.jsonl", rows) for name in ("base", "tuned")]
    code, out = run("eval", *map(str, paths), "--task", "classify")
    assert code == 0 and out.splitlines()[0].split() == ["base", "tuned"]


def test_plot_numbers_the_classes_when_no_cjk_font_can_draw_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lf_reasoning.commands.evaluate as evaluate_module

    path = write(tmp_path / "p.jsonl", [pred("体育", "体育", "标题：a\n"), pred("体育", "财经", "标题：b\n")])
    monkeypatch.setattr(evaluate_module, "_CJK_FONTS", ())  # as on a machine without one
    report = evaluate(path, "classify")
    assert evaluate_module.plot_confusion([report], tmp_path / "cm.png") == "1 体育, 2 财经"
    code, out = run("eval", str(path), "--task", "classify", "--plot", str(tmp_path / "cm2.png"))
    assert code == 0 and "the classes are numbered: 1 体育, 2 财经" in out
    latin = write(tmp_path / "latin.jsonl", [pred("sports", "sports", "t: a\n")])
    assert evaluate_module.plot_confusion([evaluate(latin, "classify")], tmp_path / "cm3.png") is None
