"""Rejection-sampling fine-tuning on your own model, on the CPU: the README recipe, command for command.

The tiny model is fully fine-tuned once (the session's ``memorised`` fixture, shared with test_serve) until it
reproduces its records, one of them ("3 * 3?") with a wrong answer it has learnt. Then the loop: ``serve`` its
train.yaml, ``distill --n 2`` (temperature > 0) from an Alpaca math file whose ``output`` holds the gold answers,
``grade`` (Math-Verify against those answers; the loopback judge where no rule extracts an answer and for the records
without one), ``convert --require-verified`` (and ``--min-score 8`` for comparison), then ``config`` + ``train``
again on the kept samples: the second round.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from openai_server import OpenAIServer, ServerConfig

from tests.cli_runner import run

if TYPE_CHECKING:
    from conftest import Memorised

# The Alpaca file distill reads, of memorised questions (the model says "6" to "3 * 3?"): its `output` is the gold
# answer (empty: a record without one, graded by rubric).
GOLD = {"2 + 2?": "4", "3 * 3?": "9", "Legs of a dog?": "4", "Say hi.": "", "Name a color.": ""}
JUDGE_VERDICTS = {"Legs of a dog?": True}  # "Four." holds no number Math-Verify extracts: the judge decides
JUDGE_RATINGS = {"Say hi.": 9, "Name a color.": 3}
# question → (route, method, verdict, score) that grade gives each of its two samples
EXPECTED = {
    "2 + 2?": ("math", "math_verify", True, 10),
    "3 * 3?": ("math", "math_verify", False, 0),
    "Legs of a dog?": ("math", "judge", True, 10),
    "Say hi.": ("general", "rubric", None, 9),
    "Name a color.": ("general", "rubric", None, 3),
}
N = 2
STARTUP_S = 240
_QUESTION = re.compile(r"\[(?:PROBLEM|PROMPT)\]\n(.*?)\n\[END")


def _ok(*args: str) -> str:
    code, output = run(*args)
    assert code == 0, output[-3000:]
    return output


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def root(memorised: Memorised) -> Path:
    """The session's memorising fine-tune: ``data/`` and ``run/``; round 2 adds its dataset and ``run2/`` here."""
    return memorised.root


@pytest.fixture(scope="module")
def trained(root: Path) -> Path:
    """``run/train.yaml`` of the full fine-tune that reproduces the memorised replies: the model of round 1."""
    return root / "run" / "train.yaml"


@pytest.fixture(scope="module")
def served(trained: Path) -> Iterator[str]:
    """``lf-reasoning serve run/train.yaml --port 0`` in a subprocess; yields its base URL."""
    command = [sys.executable, "-m", "lf_reasoning", "serve", str(trained), "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LF_REASONING_API_KEY", None)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True).start()
    deadline = time.monotonic() + STARTUP_S
    url = None
    while url is None and time.monotonic() < deadline and process.poll() is None:
        url = next((line.split(" at ")[1].split()[0] for line in lines if line.startswith("serving 'run' at ")), None)
        time.sleep(0.2)
    try:
        if url is None:
            pytest.fail("lf-reasoning serve did not start:\n" + "".join(lines)[-4000:])
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def judge(prompt: str, attempt: int) -> str:
    """Answers like a judge, from the question inside the rendered rubric."""
    found = _QUESTION.search(prompt)
    assert found, prompt
    question = found.group(1)
    if '"correct": true or false' in prompt:
        return json.dumps({"correct": JUDGE_VERDICTS[question], "reason": "compared with the reference"})
    rating = JUDGE_RATINGS[question]
    return json.dumps({"harmlessness": 10, "helpfulness": rating, "correctness": rating, "score": rating})


def _rejects(path: Path, graded: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(question, reason) of every rejected sample; ``where`` is the graded file's line."""
    found: Counter[tuple[str, str]] = Counter()
    for row in _read_jsonl(path):
        line = int(row["where"].rsplit(":", 1)[1])
        found[(graded[line - 1]["input"], row["reason"])] += 1
    return found


def test_rejection_sampling_round_on_your_own_model(
    served: str, root: Path, memorised: Memorised, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server: no key
    alpaca = _write_jsonl(
        tmp_path / "math.jsonl", [{"instruction": q, "input": "", "output": g} for q, g in GOLD.items()]
    )

    # 1. distill --n 2 from our own model, sampling as the README does: every sample is the trained reply
    distilled = tmp_path / "samples.jsonl"
    output = _ok(
        "distill", str(alpaca), "--out", str(distilled), "--base-url", served, "--model", "run", "--n", str(N),
        "--temperature", "0.6", "--extra-body", '{"top_p": 0.95}', "--max-tokens", "64", "--concurrency", "2",
    )  # fmt: skip
    assert "keeping the source's answers as reference (from `output`)" in output
    samples = _read_jsonl(distilled)
    assert Counter((r["input"], r["sample"]) for r in samples) == Counter((q, s) for q in GOLD for s in range(N))
    for row in samples:
        assert (row["reasoning_content"], row["content"]) == memorised.replies[row["input"]], row
        assert row.get("reference_answer") == (GOLD[row["input"]] or None) and row["params"]["temperature"] == 0.6
        assert row["params"]["extra_body"] == {"top_p": 0.95}

    # 2. grade: Math-Verify against the source's answers, the judge for the rest
    graded = tmp_path / "graded.jsonl"
    with OpenAIServer(ServerConfig(reply=judge)) as judge_server:
        output = _ok(
            "grade", str(distilled), "--out", str(graded), "--judge-base-url", judge_server.url, "--judge-model",
            "judge-m", "--workers", "1", "--backoff", "0.01",
        )  # fmt: skip
        asked = Counter(_QUESTION.search(seen.prompt).group(1) for seen in judge_server.requests)  # type: ignore[union-attr]
    assert asked == {"Legs of a dog?": N, "Say hi.": N, "Name a color.": N}  # rule-decided answers never reach it
    rows = _read_jsonl(graded)
    assert Counter(r["input"] for r in rows) == Counter({q: N for q in GOLD})
    for row in rows:
        got = row["grade"]
        assert (got["route"], got["method"], got["verdict"], got["score"]) == EXPECTED[row["input"]], row
        assert row["score"] == got["score"]
    for line in (
        r"math / math_verify\s+4\s+2\s+2\s+5\.0",
        r"math / judge\s+2\s+2\s+0\s+10\.0",
        r"no rule verdict: no_prediction 2",
        r"general / rubric\s+4\s+-\s+-\s+6\.0",
        r"scores in OUT\s+0: 2  3: 2  9: 2  10: 4",
    ):
        assert re.search(line, output), (line, output)

    # 3. convert: --require-verified keeps the right answers; --dedup off keeps both samples of each
    data = root / "data"
    output = _ok(
        "convert", str(graded), "--name", "rft", "--dataset-dir", str(data), "--require-verified", "--dedup", "off",
    )  # fmt: skip
    kept = Counter(r["messages"][0]["content"] for r in _read_jsonl(data / "rft.jsonl"))
    assert kept == {"2 + 2?": N, "Legs of a dog?": N}
    assert _rejects(data / "rft.rejects.jsonl", rows) == {
        ("3 * 3?", "failed_verification"): N,
        ("Say hi.", "unverified"): N,
        ("Name a color.", "unverified"): N,
    }
    assert re.search(r"written\s+4\b", output), output
    # --min-score 8 also keeps the well-rated general answer; --dedup prompt one sample per prompt
    output = _ok(
        "convert", str(graded), "--name", "rft_scored", "--dataset-dir", str(data), "--min-score", "8",
        "--dedup", "prompt",
    )  # fmt: skip
    kept = Counter(r["messages"][0]["content"] for r in _read_jsonl(data / "rft_scored.jsonl"))
    assert kept == {"2 + 2?": 1, "Legs of a dog?": 1, "Say hi.": 1}
    assert _rejects(data / "rft_scored.rejects.jsonl", rows) == {
        ("3 * 3?", "failed_verification"): N,
        ("Name a color.", "score_below_min"): N,
        ("2 + 2?", "duplicate_prompt"): 1,
        ("Legs of a dog?", "duplicate_prompt"): 1,
        ("Say hi.", "duplicate_prompt"): 1,
    }
    assert "WARNING: --dedup prompt removed 3 of 6 samples (50%) as repeats" in output

    # 4. round 2: config + train the round-1 model on the kept samples, as the README writes it (relative paths,
    # then run from elsewhere: every path in the configs is absolute)
    monkeypatch.chdir(root)
    _ok(
        "config", "--model", "run/train", "--template", "qwen3", "--dataset", "rft", "--dataset-dir", "data",
        "--out", "run2", "--hardware", "cpu", "--finetuning", "full",
    )  # fmt: skip
    assert f"\nmodel_name_or_path: {root / 'run' / 'train'}\n" in (root / "run2" / "train.yaml").read_text("utf-8")
    monkeypatch.chdir(tmp_path)
    _ok("train", str(root / "run2" / "train.yaml"), "max_steps=2")
    written = root / "run2" / "train"
    assert (written / "model.safetensors").stat().st_size > 0 and (written / "config.json").is_file()
    state = json.loads((written / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 2 and state["log_history"][-1]["train_loss"] >= 0
