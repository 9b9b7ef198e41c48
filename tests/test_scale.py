"""Training at scale, for real on the CPU: two torchrun "nodes" on loopback, and Ray workers; 2 steps each.

Each run is what a user types: `lf-reasoning config` writes the files, `lf-reasoning train` runs them in a
subprocess (two at once for the two nodes). The multi-node profile's train.yaml needs DeepSpeed and bf16 on GPUs,
so the runs use the `cpu` profile's file with the multi-node environment its header prescribes (the same
variables, checked below); gloo replaces NCCL, which torch picks by itself on the CPU.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import run
from lf_harness import OFFLINE_ENV

R1 = Path(__file__).parents[1] / "examples" / "data" / "r1_distill.jsonl"
TEMPLATE = """\
name: qa_think_scale
reasoning: true
user: "### Question:\\n{{content}}\\n\\n### Response:\\n"
assistant: "{{content}}{{eos_token}}"
"""
STEPS = ["max_steps=2", "gradient_accumulation_steps=1", "logging_steps=1", "save_steps=1000"]
MULTI_NODE_ENV = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("scale") / "data"
    code, output = run("convert", str(R1), "--name", "r1", "--dataset-dir", str(data))
    assert code == 0, output
    return data


def configure(tiny_model: Path, dataset_dir: Path, out: Path, hardware: str, *template: str) -> Path:
    args = ["--model", str(tiny_model), "--dataset", "r1", "--dataset-dir", str(dataset_dir), "--out", str(out)]
    code, output = run("config", *args, "--hardware", hardware, *(template or ("--template", "qwen3")))
    assert code == 0, output
    return out / "train.yaml"


def custom_template(tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "qa_think.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return "--template-file", str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_env(**extra: str) -> dict[str, str]:
    # an activated venv: LLaMA-Factory's launcher starts the bare `torchrun` from PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, **OFFLINE_ENV, "PATH": path, **extra}


def lf_reasoning(*args: str) -> list[str]:
    return [sys.executable, "-m", "lf_reasoning", *args]


def losses(output_dir: Path) -> list[float]:
    lines = (output_dir / "trainer_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [entry["loss"] for entry in map(json.loads, lines) if "loss" in entry]


def test_multi_node_header_names_the_variables_these_runs_set(
    tiny_model: Path, dataset_dir: Path, tmp_path: Path
) -> None:
    header = configure(tiny_model, dataset_dir, tmp_path / "mn", "multi-node").read_text(encoding="utf-8")
    notes = " ".join(line.removeprefix("#").strip() for line in header.splitlines() if line.startswith("#"))
    for name in MULTI_NODE_ENV:
        assert name in notes, name
    assert "data_shared_file_system=true" in notes  # what the runs below use: both "nodes" share this disk


@pytest.mark.parametrize("custom", [False, True], ids=["builtin-template", "custom-template"])
def test_two_nodes_train_one_job(tiny_model: Path, dataset_dir: Path, tmp_path: Path, custom: bool) -> None:
    config = configure(tiny_model, dataset_dir, tmp_path / "run", "cpu", *(custom_template(tmp_path) if custom else ()))
    port = str(free_port())
    started = time.monotonic()
    nodes = []
    for rank in (0, 1):
        # node 1 gets its own output_dir, as a second machine has its own disk: only global rank 0 saves
        output = tmp_path / "run" / ("train" if rank == 0 else "node1")
        env = train_env(NNODES="2", NODE_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NPROC_PER_NODE="1")
        command = lf_reasoning("train", str(config), *STEPS, "data_shared_file_system=true", f"output_dir={output}")
        nodes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    print(f"two nodes ({'custom' if custom else 'built-in'} template): {time.monotonic() - started:.1f}s")
    for rank, (node, output) in enumerate(zip(nodes, outputs, strict=True)):
        assert node.returncode == 0, f"node {rank}:\n{output[-4000:]}"
    # one job: torchrun's rendezvous made a world of 2 (batch 8 per device → 16 in all) and rank 0 saved
    assert "Total train batch size (w. parallel, distributed & accumulation) = 16" in outputs[0]
    assert (tmp_path / "run" / "train" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "run" / "node1" / "adapter_model.safetensors").exists()
    assert len(losses(tmp_path / "run" / "train")) == 2
    assert f"\nadapter: {tmp_path / 'run' / 'train'}\n" in outputs[0] and "\nadapter: " not in outputs[1]


def test_ray_workers_train_with_a_custom_template(tiny_model: Path, dataset_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is in the [ray] extra (make test installs it)")
    config = configure(tiny_model, dataset_dir, tmp_path / "run", "cpu", *custom_template(tmp_path))
    # 2 cores: two 1-CPU workers, a small object store, no dashboard
    init = '{"num_cpus": 2, "include_dashboard": false, "object_store_memory": 80000000}'
    ray = ["ray_num_workers=2", 'resources_per_worker={"CPU": 1}', f"ray_init_kwargs={init}"]
    started = time.monotonic()
    result = subprocess.run(
        lf_reasoning("train", str(config), *STEPS, *ray),
        env=train_env(USE_RAY="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(f"ray, 2 workers: {time.monotonic() - started:.1f}s")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert len(set(re.findall(r"\(TemplateWorker pid=(\d+)\)", output))) == 2  # our workers (templates registered)
    assert "Total train batch size (w. parallel, distributed & accumulation) = 16" in output  # one world of 2
    assert (tmp_path / "run" / "train" / "adapter_model.safetensors").is_file()
    assert len(losses(tmp_path / "run" / "train")) == 2


def test_tokenized_path_is_reused_and_a_stale_one_refused(tiny_model: Path, dataset_dir: Path, tmp_path: Path) -> None:
    config = configure(tiny_model, dataset_dir, tmp_path / "run", "cpu")
    tokenized = tmp_path / "run" / "tokenized"
    code, output = run("train", str(config), *STEPS)
    assert code == 0, output[-3000:]
    assert (tokenized / "dataset_dict.json").is_file() and (tmp_path / "run" / "tokenized.inputs.json").is_file()
    tokens = sum(len(ids) for ids in _token_ids(tokenized))
    size = sum(f.stat().st_size for f in tokenized.rglob("*.arrow"))
    print(f"tokenized_path: {size / tokens:.1f} bytes a token ({tokens} tokens)")  # the figure behind STREAMING_BYTES

    code, output = run("train", str(config), *STEPS)  # the second run loads the saved tokens
    assert code == 0, output[-3000:]
    assert f"Loaded tokenized dataset from {tokenized}" in output

    code, output = run("train", str(config), *STEPS, "cutoff_len=512")
    assert code == 1 and "key 'tokenized_path'" in output and "(cutoff_len changed since" in output, output[-2000:]
    data = next(dataset_dir.glob("r1*.jsonl"))
    stat, original = data.stat(), data.read_bytes()
    try:
        data.write_bytes(original)  # rewritten with the same bytes (convert run again): the same tokens
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # surely modified since
        code, output = run("train", str(config), *STEPS)
        assert code == 0 and f"Loaded tokenized dataset from {tokenized}" in output, output[-3000:]
        assert b"2" in original
        data.write_bytes(original.replace(b"2", b"3"))  # the same size, other records
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
        code, output = run("train", str(config), *STEPS)
    finally:
        data.write_bytes(original)
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert code == 1 and f"(data file {data} changed since" in output, output[-2000:]
    assert f"rm -r {tokenized}" in output


def _token_ids(tokenized: Path) -> list[list[int]]:
    from datasets import load_from_disk

    return [row for split in load_from_disk(str(tokenized)).values() for row in split["input_ids"]]


def test_dry_run_shows_the_launch_for_multi_node_and_ray(
    tiny_model: Path, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = configure(tiny_model, dataset_dir, tmp_path / "run", "cpu")
    monkeypatch.setenv("NNODES", "2")
    code, output = run("train", str(config), "--dry-run")
    assert code == 0 and output.startswith("command: FORCE_TORCHRUN=1 "), output  # one GPU per node needs it too
    monkeypatch.delenv("NNODES")
    monkeypatch.setenv("USE_RAY", "1")
    code, output = run("train", str(config), 'resources_per_worker={"CPU": 2}', "--dry-run")
    # a built-in template too: our launcher is the Ray driver (LLaMA-Factory's cannot place CPU workers)
    assert code == 0 and "-m lf_reasoning.llamafactory.launch" in output.splitlines()[0], output
    code, output = run("train", str(config), "resources_per_worker=[1]", "--dry-run")
    assert code == 1 and "key 'resources_per_worker': a mapping of Ray resources to amounts" in output, output
