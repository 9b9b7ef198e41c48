"""``lf-reasoning serve`` end to end on the CPU, and ``distill`` against servers nobody here wrote.

The tiny model is fully fine-tuned once (the session's ``memorised`` fixture, shared with test_rft_loop) until it
reproduces its records greedily; ``serve`` is started on its train.yaml in a subprocess on a free loopback port, and
``distill`` must get back exactly the trained thoughts in ``reasoning_content`` and the trained answers in
``content``, streamed and not. The same model is then served by LLaMA-Factory's own ``llamafactory-cli api``, which
returns the thought inline in ``content``: distill must read it from there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lf_reasoning.commands.serve import ThoughtSplitter
from lf_reasoning.llamafactory.serving import parsers_for
from lf_reasoning.llamafactory.thought_words import reasoning_templates, template_words
from tests.cli_runner import run

if TYPE_CHECKING:
    from conftest import Memorised

# The memorised questions distill asks here.
ASKED = ("2 + 2?", "Color of the sky?", "Legs of a dog?")
KEY_ENV = "LF_REASONING_API_KEY"
KEY = "test-key-7f3a"
STARTUP_S = 240


def _ok(*args: str) -> str:
    code, output = run(*args)
    assert code == 0, output[-3000:]
    return output


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(memorised: Memorised) -> Path:
    """The config folder ``run/`` of the full fine-tune that memorised the session's records."""
    return memorised.root / "run"


@pytest.fixture(scope="module")
def expected(memorised: Memorised) -> dict[str, tuple[str, str]]:
    """question → (thought, answer) the model was trained on, for the questions ASKED."""
    return {q: memorised.replies[q] for q in ASKED}


class _Process:
    """A server subprocess whose output is drained by a thread (and kept, for the failure message)."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8"
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if callable(ready) and ready():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"{what} did not start:\n" + "".join(self.lines)[-4000:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _env(**more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **more}


@pytest.fixture(scope="module")
def served(trained: Path) -> Iterator[str]:
    """``lf-reasoning serve run/train.yaml --port 0`` with an API key; yields its base URL."""
    command = [sys.executable, "-m", "lf_reasoning", "serve", str(trained / "train.yaml"), "--port", "0"]
    server = _Process(command, _env(**{KEY_ENV: KEY}))
    url: list[str] = []

    def ready() -> bool:
        for line in server.lines:
            if line.startswith("serving 'run' at "):
                url.append(line.split(" at ")[1].split()[0])
                return True
        return False

    server.wait_for(ready, "lf-reasoning serve")
    yield url[0]
    server.stop()
    assert KEY not in "".join(server.lines)  # the key is never printed


def _distill(tmp_path: Path, url: str, model: str, *extra: str) -> list[dict[str, object]]:
    src = _write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": q} for q in ASKED])
    out = tmp_path / "out.jsonl"
    _ok(
        "distill", str(src), "--out", str(out), "--base-url", url, "--model", model, "--temperature", "0",
        "--max-tokens", "64", "--concurrency", "2", "--api-key-env", KEY_ENV, *extra,
    )  # fmt: skip
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_distill_from_serve_returns_the_trained_thoughts_and_answers(
    served: str, expected: dict[str, tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    rows = _distill(tmp_path, served, "run", *(["--stream"] if stream else []))
    assert sorted(r["input"] for r in rows) == sorted(expected)
    for row in rows:
        assert (row["reasoning_content"], row["content"]) == expected[row["input"]], row
        assert row["finish_reason"] == "stop" and row["params"]["stream"] is stream
        usage = row["usage"]
        assert usage["prompt_tokens"] > 5 and usage["completion_tokens"] > 3, usage
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def _get(url: str, key: str | None = None, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_models_key_and_request_errors(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status, body = _get(f"{served}/models", KEY)
    assert status == 200 and [m["id"] for m in body["data"]] == ["run"]
    for key in (None, "wrong"):
        status, body = _get(f"{served}/models", key)
        assert status == 401 and "API key" in body["error"]["message"] and KEY not in json.dumps(body)
    chat = f"{served}/chat/completions"
    status, body = _get(chat, KEY, {"model": "other", "messages": [{"role": "user", "content": "2 + 2?"}]})
    assert status == 404 and "'run'" in body["error"]["message"]
    status, body = _get(chat, KEY, {"model": "run", "messages": [{"role": "assistant", "content": "hi"}]})
    assert status == 400 and "alternating" in body["error"]["message"]
    # distill without the key: a message naming the variable, non-zero exit
    monkeypatch.delenv(KEY_ENV, raising=False)
    src = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "2 + 2?"}])
    code, output = run(
        "distill", str(src), "--out", str(tmp_path / "o.jsonl"), "--base-url", served, "--model", "run",
        "--api-key-env", KEY_ENV,
    )  # fmt: skip
    assert code != 0 and f"${KEY_ENV}" in output and "demands an API key" in output


def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    code, output = run("serve", str(tmp_path / "missing.yaml"))
    assert code == 1 and "missing.yaml" in output and "No such file" in output and "Traceback" not in output
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model_name_or_path: m\nstage: sft\ndo_train: true\nfinetuning_type: full\ntemplate: qwen3\n"
        f"output_dir: {tmp_path / 'never_trained'}\n",
        encoding="utf-8",
    )
    code, output = run("serve", str(config))
    assert code == 1 and "the trained model" in output and f"lf-reasoning train {config}` first" in output
    config.write_text("model_name_or_path: m\noutput_dir: x\n", encoding="utf-8")
    code, output = run("serve", str(config))
    assert code == 1 and "no 'template' key" in output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_distill_reads_the_inline_thought_from_llamafactory_api(
    expected: dict[str, tuple[str, str]], tmp_path: Path, stream: bool, lf_api: str
) -> None:
    rows = _distill(tmp_path, lf_api, "tiny", *(["--stream"] if stream else []))
    assert sorted(r["input"] for r in rows) == sorted(expected)
    for row in rows:
        assert (row["reasoning_content"], row["content"]) == expected[row["input"]], row


@pytest.fixture(scope="module")
def lf_api(trained: Path) -> Iterator[str]:
    """LLaMA-Factory's own ``llamafactory-cli api`` serving the trained model (thought inline in content)."""
    config = trained / "infer.yaml"
    config.write_text(
        f"model_name_or_path: {trained / 'train'}\ntemplate: qwen3\nenable_thinking: true\n"
        "infer_backend: huggingface\n",
        encoding="utf-8",
    )
    port = _free_port()
    cli = Path(sys.executable).with_name("llamafactory-cli")
    server = _Process([str(cli), "api", str(config)], _env(API_HOST="127.0.0.1", API_PORT=str(port)))
    url = f"http://127.0.0.1:{port}/v1"

    def ready() -> bool:
        try:
            return _get(f"{url}/models")[0] == 200
        except OSError:
            return False

    server.wait_for(ready, "llamafactory-cli api")
    yield url
    server.stop()


# Every reasoning template of the installed LLaMA-Factory: the splitter must cut at its exact words, fed whole or
# one character at a time, and never let a piece of a word into a delta.
@pytest.mark.parametrize("template", reasoning_templates())
def test_splitter_cuts_at_each_templates_thought_words(template: str) -> None:
    found = template_words(template)
    open_word, close_word = words = (found.open, found.close)
    text = f"{open_word}Let me think: 2 < 3.{close_word}Yes: 2 < 3."
    assert ThoughtSplitter(words).split(text) == ("Let me think: 2 < 3.", "Yes: 2 < 3.")
    splitter = ThoughtSplitter(words, stops=("<|im_end|>",))
    pieces = [splitter.feed(ch) for ch in text + "<|im_end|>ignored"] + [splitter.finish()]
    thought, answer = ("".join(p[i] for p in pieces) for i in (0, 1))
    assert (thought, answer) == ("Let me think: 2 < 3.", "Yes: 2 < 3.")
    for piece in (p for pair in pieces for p in pair if p):
        assert open_word.strip() not in piece and close_word.strip() not in piece
    # no thought (enable_thinking false puts the empty block in the prompt): all content, reasoning None
    assert ThoughtSplitter(words).split("Yes.") == (None, "Yes.")
    # a reply cut off inside its thought: the thought so far, no answer
    assert ThoughtSplitter(words).split(f"{open_word}Still thinking") == ("Still thinking", "")
    parsers = parsers_for(template, words)
    assert parsers is not None and (parsers.vllm or parsers.sglang), f"no serving note for {template}"


def test_export_header_names_the_reasoning_parsers(trained: Path) -> None:
    header = (trained / "export.yaml").read_text(encoding="utf-8")
    assert "# Serve it: lf-reasoning serve export.yaml (LLaMA-Factory's engine" in header
    assert "--reasoning-parser qwen3" in header and '{"enable_thinking": false}' in header


def test_readme_parser_table_is_the_code_table() -> None:
    from lf_reasoning.llamafactory.serving import PARSERS

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for template, parsers in PARSERS.items():
        cells = [f"`{template}`", *(f"`{p}`" if p else "—" for p in parsers[:2]), parsers.thinking]
        assert "| " + " | ".join(cells) + " |" in readme, template


def test_served_model_is_what_each_config_produced(tmp_path: Path) -> None:
    from lf_reasoning.llamafactory.inference import served_model

    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    for folder, marker in ((adapter, "adapter_config.json"), (merged, "config.json")):
        folder.mkdir()
        (folder / marker).write_text("{}", encoding="utf-8")
    lora = tmp_path / "lora.yaml"
    lora.write_text(
        f"model_name_or_path: base\nstage: sft\ndo_train: true\nfinetuning_type: lora\ntemplate: deepseekr1\n"
        f"enable_thinking: false\noutput_dir: {adapter}\nquantization_bit: 4\nlearning_rate: 1.0e-4\n",
        encoding="utf-8",
    )
    served = served_model(lora, "huggingface")
    assert served.args == {
        "template": "deepseekr1",
        "enable_thinking": False,
        "infer_backend": "huggingface",
        "quantization_bit": 4,
        "model_name_or_path": "base",
        "adapter_name_or_path": str(adapter),
        "finetuning_type": "lora",
    }
    export = tmp_path / "export.yaml"
    export.write_text(
        f"model_name_or_path: base\nadapter_name_or_path: {adapter}\ntemplate: qwen3\nexport_dir: {merged}\n",
        encoding="utf-8",
    )
    served = served_model(export, "huggingface")
    assert served.args["model_name_or_path"] == str(merged) and "adapter_name_or_path" not in served.args
    assert served.enable_thinking is True and served.description == f"merged model {merged}"
    export.write_text(f"model_name_or_path: base\ntemplate: qwen3\nexport_dir: {tmp_path / 'none'}\n", "utf-8")
    code, output = run("serve", str(export))
    assert code == 1 and "the merged model" in output and f"lf-reasoning train {export}` first" in output
