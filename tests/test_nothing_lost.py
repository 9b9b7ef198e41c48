"""Issue 10: colliding paths, full disks, secrets in URLs and the exit-status table.

Every case asserts the exit status, the message, and that every file that existed before is byte-identical after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import run
from openai_server import OpenAIServer, ServerConfig

from lf_reasoning.atomic import AtomicFile, commit_together
from lf_reasoning.cli import main
from lf_reasoning.errors import EXIT_ERROR, EXIT_PARTIAL, EXIT_STATUS, EXIT_USAGE, UserError

GOOD = {"input": "q", "content": "a", "reasoning_content": "t", "score": 9, "repo_name": "s"}
REGISTRY = {"mine": {"file_name": "mine.json", "columns": {"prompt": "q", "response": "r"}}}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def snapshot(*roots: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        files.update({str(p): p.read_bytes() for p in paths})
    return files


def records(path: Path, n: int, **extra: object) -> Path:
    path.write_text("".join(json.dumps({**GOOD, "input": f"q{i}", **extra}) + "\n" for i in range(n)))
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "dataset_info.json").write_text(json.dumps(REGISTRY, indent=2) + "\n")
    (d / "mine.json").write_text('[{"q": "x", "r": "y"}]')
    (d / "notes.txt").write_text("my notes\n")
    return d


# --- 2. paths that collide -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rejects", "message"),
    [
        ("{src}", "--rejects {src} is also an input"),
        ("{data}/dataset_info.json", "the registry and --rejects are the same file"),
        ("{data}/r1.jsonl", "the data file and --rejects are the same file"),
        ("{data}/mine.json", "--rejects {data}/mine.json holds the data of the entry 'mine' in {data}/dataset_info"),
        ("{data}/notes.txt", "--rejects {data}/notes.txt exists and was not written by lf-reasoning; pass --force"),
    ],
    ids=["input", "registry", "data-file", "other-dataset", "user-file"],
)
def test_convert_rejects_path_collisions(tmp_path: Path, data_dir: Path, rejects: str, message: str) -> None:
    src = records(tmp_path / "in.jsonl", 3)
    src.write_text(src.read_text() + "not json\n")  # one record to reject
    paths = {"src": str(src), "data": str(data_dir)}
    before = snapshot(src, data_dir)
    code, out = run(
        "convert", str(src), "--name", "r1", "--dataset-dir", str(data_dir), "--rejects", rejects.format(**paths)
    )
    assert code == EXIT_ERROR, out
    assert message.format(**paths) in out
    assert snapshot(src, data_dir) == before


def test_convert_force_never_overwrites_an_input(tmp_path: Path, data_dir: Path) -> None:
    """--force replaces files that are not ours; an input is not among them."""
    src = records(data_dir / "r1.jsonl", 3)
    before = snapshot(data_dir)
    code, out = run("convert", str(src), "--name", "r1", "--dataset-dir", str(data_dir), "--force")
    assert code == EXIT_ERROR and f"the data file {src} is also an input" in out
    assert snapshot(data_dir) == before


def test_convert_force_never_overwrites_another_dataset(tmp_path: Path, data_dir: Path) -> None:
    """A data file named like another entry's (``--name shared`` → shared.jsonl, the file of entry 'other'), or a
    rejects file that is (``--name x`` → x.rejects.jsonl of entry 'x.rejects'): refused even with --force."""
    registry = json.loads((data_dir / "dataset_info.json").read_text())
    registry |= {"other": {"file_name": "shared.jsonl"}, "x.rejects": {"file_name": "x.rejects.jsonl"}}
    (data_dir / "dataset_info.json").write_text(json.dumps(registry))
    (data_dir / "shared.jsonl").write_text('{"instruction": "keep", "output": "me"}\n')
    (data_dir / "x.rejects.jsonl").write_text('{"instruction": "keep", "output": "me too"}\n')
    src = records(tmp_path / "in.jsonl", 3)
    before = snapshot(data_dir)
    for name, label, owner in [("shared", "the data file", "other"), ("x", "--rejects", "x.rejects")]:
        code, out = run("convert", str(src), "--name", name, "--dataset-dir", str(data_dir), "--force")
        assert code == EXIT_ERROR and f"{label} {data_dir}" in out, out
        assert f"holds the data of the entry '{owner}'" in out and "Choose another --name" in out, out
        assert snapshot(data_dir) == before


def test_convert_refuses_a_dataset_dir_inside_the_source_folder(tmp_path: Path) -> None:
    """The next run would read the data file and the rejects file back as input."""
    folder = tmp_path / "raw"
    folder.mkdir()
    records(folder / "a.jsonl", 3)
    for dataset_dir in (folder, folder / "out"):
        before = snapshot(folder)
        code, out = run("convert", str(folder), "--name", "r1", "--dataset-dir", str(dataset_dir))
        assert code == EXIT_ERROR, out
        assert f"is inside the input folder {folder}" in out and "name the input files" in out
        assert snapshot(folder) == before


def test_convert_replaces_its_own_rejects_file(tmp_path: Path, data_dir: Path) -> None:
    src = records(tmp_path / "in.jsonl", 3)
    src.write_text(src.read_text() + "not json\n")
    rejects = tmp_path / "rejects.jsonl"
    for _ in range(2):  # the second run replaces the first run's rejects file
        code, out = run("convert", str(src), "--name", "r1", "--dataset-dir", str(data_dir), "--rejects", str(rejects))
        assert code == EXIT_PARTIAL, out
    assert len(rejects.read_text().splitlines()) == 1


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(ServerConfig()) as srv:
        yield srv


def prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"question": f"What is {i} + {i}?"}) + "\n" for i in range(n)))
    return path


@pytest.mark.parametrize("command", ["distill", "score"])
def test_failures_file_that_is_an_input_is_refused(tmp_path: Path, server: OpenAIServer, command: str) -> None:
    """It used to be deleted before the input was read."""
    src = records(tmp_path / "in.jsonl", 2) if command == "score" else prompts(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    before = snapshot(tmp_path)
    urls = ["--base-url", server.url, "--model", "m"] if command == "distill" else []
    urls += ["--judge-base-url", server.url, "--judge-model", "m"] if command == "score" else []
    code, output = run(command, str(src), "--out", str(out), *urls, "--failures", str(src))
    assert code == EXIT_ERROR and f"--failures {src} is also an input" in output, output
    assert snapshot(tmp_path) == before and not server.requests


def test_failures_file_that_is_not_ours_is_refused(tmp_path: Path, server: OpenAIServer) -> None:
    src = prompts(tmp_path / "in.jsonl", 2)
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"todo": "keep me"}\n')
    before = snapshot(tmp_path)
    code, output = run(
        "distill", str(src), "--out", str(tmp_path / "out.jsonl"), "--base-url", server.url, "--model", "m",
        "--failures", str(notes),
    )  # fmt: skip
    assert code == EXIT_ERROR and f"--failures {notes} exists and was not written by lf-reasoning; remove it" in output
    assert snapshot(tmp_path) == before


def test_distill_out_inside_the_input_folder_is_refused(tmp_path: Path, server: OpenAIServer) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    prompts(folder / "a.jsonl", 2)
    before = snapshot(folder)
    code, output = run(
        "distill", str(folder), "--out", str(folder / "r1.jsonl"), "--base-url", server.url, "--model", "m"
    )
    assert code == EXIT_ERROR and "is inside the input folder" in output, output
    assert snapshot(folder) == before and not server.requests


def predictions(path: Path) -> Path:
    rows = [
        {"prompt": "p", "predict": "<think>\nt\n</think>\n\nA", "label": "A"},
        {"prompt": "q", "predict": "B", "label": "A"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_plot_never_overwrites_a_predictions_file_or_a_non_png(tmp_path: Path) -> None:
    preds = predictions(tmp_path / "generated_predictions.jsonl")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    before = snapshot(tmp_path)
    code, out = run("eval", str(preds), "--task", "classify", "--plot", str(preds))
    assert code == EXIT_ERROR and f"--plot {preds} is also an input" in out
    code, out = run("eval", str(preds), "--task", "classify", "--plot", str(notes))
    assert code == EXIT_ERROR and f"--plot {notes} exists and is not a PNG; pass --force" in out
    assert snapshot(tmp_path) == before
    old_png = tmp_path / "cm.png"
    old_png.write_bytes(PNG)
    code, out = run("eval", str(preds), "--task", "classify", "--plot", str(old_png))  # a PNG is replaced
    assert code == 0, out
    assert old_png.read_bytes() != PNG and old_png.read_bytes().startswith(PNG[:8])
    code, out = run("eval", str(preds), "--task", "classify", "--plot", str(notes), "--force")
    assert code == 0 and notes.read_bytes().startswith(PNG[:8]), out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_stats_plot_never_overwrites_the_dataset(tmp_path: Path, data_dir: Path) -> None:
    code, out = run("convert", str(records(tmp_path / "in.jsonl", 3)), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 0, out
    before = snapshot(data_dir)
    for target in (data_dir / "r1.jsonl", data_dir / "dataset_info.json"):
        code, out = run(
            "stats", "r1", "--dataset-dir", str(data_dir), "--tokenizer", "unused", "--template", "qwen3",
            "--plot", str(target),
        )  # fmt: skip
        assert code == EXIT_ERROR and f"--plot {target} is also an input" in out, out
    assert snapshot(data_dir) == before


def config_args(tmp_path: Path, tiny_model: Path, hardware: str) -> list[str]:
    """A dataset converted into ``tmp_path/data``; the ``config`` arguments that write ``tmp_path/run`` for it."""
    data_dir = tmp_path / "data"
    code, out = run("convert", str(records(tmp_path / "in.jsonl", 4)), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 0, out
    args = ["config", "--model", str(tiny_model), "--template", "qwen3", "--dataset", "r1"]
    return [*args, "--dataset-dir", str(data_dir), "--out", str(tmp_path / "run"), "--hardware", hardware]


def test_config_keeps_an_edited_train_yaml(tmp_path: Path, tiny_model: Path) -> None:
    run_dir = tmp_path / "run"
    args = config_args(tmp_path, tiny_model, "cpu")
    code, out = run(*args)
    assert code == 0, out
    code, out = run(*args)  # unedited since written: replaced without a word
    assert code == 0, out
    train = run_dir / "train.yaml"
    edited = train.read_text().replace("report_to: none", "report_to: wandb")
    assert edited != train.read_text()
    train.write_text(edited)
    before = snapshot(run_dir)
    code, out = run(*args)
    assert (
        code == EXIT_ERROR
        and f"the config {train} exists and was edited after lf-reasoning wrote it; pass --force" in out
    )
    assert snapshot(run_dir) == before
    code, out = run(*args, "--force")
    assert code == 0 and train.read_text() != edited, out


def test_config_keeps_an_edited_deepspeed_json(tmp_path: Path, tiny_model: Path) -> None:
    run_dir = tmp_path / "run"
    args = config_args(tmp_path, tiny_model, "multi-gpu")
    code, out = run(*args)
    assert code == 0, out
    code, out = run(*args)  # as written: replaced without a word
    assert code == 0, out
    ds = run_dir / "ds_z2_config.json"
    tuned = json.loads(ds.read_text())
    tuned["zero_optimization"]["overlap_comm"] = not tuned["zero_optimization"]["overlap_comm"]
    ds.write_text(json.dumps(tuned, indent=2) + "\n")
    before = snapshot(run_dir)
    code, out = run(*args)
    assert code == EXIT_ERROR and f"the DeepSpeed config {ds} exists and differs from what lf-reasoning" in out, out
    assert snapshot(run_dir) == before  # the YAMLs are not replaced either: the files are written together
    code, out = run(*args, "--force")
    assert code == 0 and json.loads(ds.read_text()) != tuned, out


# --- 3. a full disk, a registry that cannot be replaced ---------------------------------------------------------

_LIMITED = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as Python does at start-up: writes then fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
    from lf_reasoning.cli import main
    sys.argv = ["lf-reasoning", *sys.argv[2:]]
    main()
    """
)


def convert_with_file_size_limit(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _LIMITED, str(limit), "convert", *args, "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_full_disk_leaves_the_previous_dataset(tmp_path: Path, data_dir: Path) -> None:
    code, out = run(
        "convert", str(records(tmp_path / "small.jsonl", 2)), "--name", "r1", "--dataset-dir", str(data_dir)
    )
    assert code == 0, out
    before = snapshot(data_dir)
    big = records(tmp_path / "big.jsonl", 3000, content="x" * 200)  # ~1 MB of output
    result = convert_with_file_size_limit(200_000, str(big), "--name", "r1", "--dataset-dir", str(data_dir))
    assert result.returncode == EXIT_ERROR, result.stderr
    assert f"cannot write {data_dir / 'r1.jsonl'}: File too large (the file-size limit was reached" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert snapshot(data_dir) == before  # no temp file, the previous data file and registry


def test_registry_that_cannot_be_written_leaves_no_unregistered_data_file(tmp_path: Path, data_dir: Path) -> None:
    """A registry bigger than the file-size limit: the data file (small) fits, the registry does not. Before, the
    data file was renamed into place first and every re-run then refused it as 'not registered'."""
    big_registry = {f"set{i}": {"file_name": f"set{i}.json"} for i in range(4000)}
    (data_dir / "dataset_info.json").write_text(json.dumps(big_registry, indent=2) + "\n")
    before = snapshot(data_dir)
    limit = (data_dir / "dataset_info.json").stat().st_size  # the merged registry is one entry longer
    src = records(tmp_path / "in.jsonl", 2)
    result = convert_with_file_size_limit(limit, str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert result.returncode == EXIT_ERROR, result.stderr
    assert f"cannot write {data_dir / 'dataset_info.json'}" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(data_dir) == before
    code, out = run("convert", str(src), "--name", "r1", "--dataset-dir", str(data_dir))  # the re-run works
    assert code == 0, out


def test_commit_together_puts_every_file_back_when_a_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second rename fails (fault injected into os.replace: no real filesystem fails on cue): the first file,
    already replaced, gets its old content back, and no temp or backup file is left."""
    import lf_reasoning.atomic as atomic

    data, registry = tmp_path / "data.jsonl", tmp_path / "dataset_info.json"
    data.write_bytes(b"old data\n")
    registry.write_bytes(b"{}\n")
    before = snapshot(tmp_path)
    real_replace, calls = os.replace, []

    def failing_second(src: str, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing_second)
    with AtomicFile(data) as a, AtomicFile(registry) as b:
        a.write(b"new data\n")
        b.write(b'{"new": 1}\n')
        with pytest.raises(UserError, match=f"cannot replace {registry}: Input/output error"):
            commit_together([a, b])
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "dataset_info.json"]  # no temp, no backup


# --- 5. secrets and query strings in URLs ------------------------------------------------------------------------


def test_key_inside_base_url_is_never_printed_and_the_query_string_is_sent(
    tmp_path: Path, server: OpenAIServer
) -> None:
    src, out = prompts(tmp_path / "in.jsonl", 2), tmp_path / "out.jsonl"
    secret = "sk-supersecret123"
    url = server.url.replace("http://", f"http://user:{secret}@") + "?api-version=2024-10-21"
    code, output = run("distill", str(src), "--out", str(out), "--base-url", url, "--model", "m")
    assert code == 0, output
    assert [seen.query for seen in server.requests] == ["api-version=2024-10-21"] * 2
    assert secret not in output and secret not in out.read_text()
    # an error message names the URL: masked
    dead = f"http://user:{secret}@127.0.0.1:9/v1?api-version=1&api_key={secret}"
    code, output = run("distill", str(src), "--out", str(tmp_path / "o2.jsonl"), "--base-url", dead, "--model", "m")
    assert code == EXIT_ERROR and "cannot connect to http://***@127.0.0.1:9/v1/chat/completions" in output, output
    assert "api-version=1" in output and secret not in output


# --- 6. one exit-status table --------------------------------------------------------------------------------------


def test_usage_errors_and_partial_results_have_distinct_codes(tmp_path: Path, data_dir: Path) -> None:
    src = records(tmp_path / "in.jsonl", 3)
    code, out = run("convert", str(src), "--name", "r1", "--dataset-dir", str(data_dir), "--no-such-option")
    assert code == EXIT_USAGE and "No such option" in out
    src.write_text(src.read_text() + "not json\n")
    code, out = run("convert", str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == EXIT_PARTIAL and EXIT_PARTIAL != EXIT_USAGE, out


def test_score_with_no_parseable_judge_reply_is_partial(tmp_path: Path) -> None:
    src, out = records(tmp_path / "in.jsonl", 2), tmp_path / "scored.jsonl"
    with OpenAIServer(ServerConfig(reply=lambda prompt, attempt: "a fine answer, I would say")) as judge:
        code, output = run("score", str(src), "--out", str(out), "--judge-base-url", judge.url, "--judge-model", "j")
    assert code == EXIT_PARTIAL, output
    assert [json.loads(line)["judge"]["score"] for line in out.read_text().splitlines()] == [None, None]


def test_distill_with_unreadable_input_records_is_partial(tmp_path: Path, server: OpenAIServer) -> None:
    src = prompts(tmp_path / "in.jsonl", 1)
    src.write_text(src.read_text() + "not json\n{broken\n" + '{"question": 5}\n')
    code, output = run(
        "distill", str(src), "--out", str(tmp_path / "out.jsonl"), "--base-url", server.url, "--model", "m"
    )
    assert code == EXIT_PARTIAL, output
    assert f"{src}:2" in output and len(server.requests) == 1


def test_eval_of_an_empty_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "generated_predictions.jsonl"
    empty.write_text("")
    code, out = run("eval", str(empty), "--task", "classify")
    assert code == EXIT_ERROR and f"{empty}: nothing to evaluate: it is empty" in out


def test_every_command_documents_the_same_exit_table() -> None:
    for name in main.commands:
        code, out = run(name, "--help")
        assert code == 0 and "Exit status (the same for every command):" in out, name
    table = EXIT_STATUS.removeprefix("\b\n")
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert table in readme, "the README's exit-status table differs from lf_reasoning.errors.EXIT_STATUS"
