"""`lf-reasoning config` / `train --dry-run`: every emitted file parses with LLaMA-Factory, every mistake is refused.

Nothing here loads a model: hub models are ones LLaMA-Factory lists (never downloaded; lengths not measured),
the local family is the tiny test model (its tokenizer measures record lengths).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import llamafactory
import pytest
from cli_runner import run

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.chat_template import chat_template_mismatches, training_chat_template
from lf_reasoning.llamafactory.config_build import FINETUNINGS, METHODS, ConfigRequest, build_configs
from lf_reasoning.llamafactory.config_check import HARDWARE, check_config
from lf_reasoning.llamafactory.config_write import write_configs
from lf_reasoning.llamafactory.launch import read_config

R1 = Path(__file__).parents[1] / "examples" / "data" / "r1_distill.jsonl"
# model family → (--model, --template or None, template LLaMA-Factory must end up with)
HUB_FAMILIES = {
    "r1-distill-qwen": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseekr1"),
    "r1-distill-llama": ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseekr1"),
    "qwen3-hybrid": ("Qwen/Qwen3-8B", "qwen3"),
    "qwen3-thinking-2507": ("Qwen/Qwen3-4B-Thinking-2507", "qwen3"),
}
FAMILIES = [*HUB_FAMILIES, "local-tiny"]
THINKING = {"distill": True, "cot": True, "answer-only": True, "answer-only-masked": False, "mixed": None}
CUSTOM_TEMPLATE = """\
name: qa_think
reasoning: true
system: "{{content}}\\n\\n"
user: "### Question:\\n{{content}}\\n\\n### Response:\\n"
assistant: "{{content}}{{eos_token}}"
"""


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """r1 (thoughts kept) and r1_plain (thoughts dropped, for answer-only)."""
    d = tmp_path_factory.mktemp("config") / "data"
    for name, think in (("r1", "keep"), ("r1_plain", "drop")):
        code, out = run("convert", str(R1), "--name", name, "--dataset-dir", str(d), "--think", think)
        assert code == 0, out
    return d


def request(
    dataset_dir: Path, out: Path, tiny_model: Path, family: str = "local-tiny", **kwargs: object
) -> ConfigRequest:
    model, template = (str(tiny_model), "qwen3") if family == "local-tiny" else (HUB_FAMILIES[family][0], None)
    method = kwargs.get("method", "distill")
    datasets = ("r1_plain",) if method in ("answer-only", "answer-only-masked") else ("r1",)
    fields = {"model": model, "datasets": datasets, "dataset_dir": dataset_dir, "out": out, "template": template}
    return ConfigRequest(**{**fields, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_combination_parses_with_llamafactory(
    family: str, dataset_dir: Path, tiny_model: Path, tmp_path: Path
) -> None:
    combos = [c for c in itertools.product(METHODS, FINETUNINGS, HARDWARE) if c[1:] != ("qlora", "cpu")]
    for method, finetuning, hardware in combos:
        out = tmp_path / f"{method}-{finetuning}-{hardware}"
        # build_configs runs LLaMA-Factory's parser on every file; refusing any combination would raise here
        configs = build_configs(
            request(dataset_dir, out, tiny_model, family, method=method, finetuning=finetuning, hardware=hardware)
        )
        write_configs(configs, out)
        for file in configs.files:
            # what llamafactory-cli reads back from the written file (OmegaConf) is exactly what was parsed
            assert read_config(out / file.file_name) == file.values, (family, method, finetuning, hardware)
        train, predict, export = (configs[k].values for k in ("train", "predict", "export"))
        expected_template = "qwen3" if family == "local-tiny" else HUB_FAMILIES[family][1]
        for values in (train, predict, export):
            assert values["template"] == expected_template
            assert values["enable_thinking"] is THINKING[method]
        assert train.get("bf16", False) is (hardware != "cpu")
        assert (train.get("quantization_bit") == 4) is (finetuning == "qlora")
        assert "quantization_bit" not in export  # QLoRA adapters merge into the full-precision model
        if hardware in ("multi-gpu", "multi-node"):
            stage = 3 if finetuning == "full" else 2
            assert Path(train["deepspeed"]) == out / f"ds_z{stage}_config.json"
            assert (out / f"ds_z{stage}_config.json").is_file()
        else:
            assert "deepspeed" not in train
        if finetuning == "full":
            assert predict["model_name_or_path"] == export["model_name_or_path"] == train["output_dir"]
        else:
            assert predict["adapter_name_or_path"] == export["adapter_name_or_path"] == train["output_dir"]


def test_header_explains_every_key(dataset_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    code, out = run(
        "config",
        "--model",
        str(tiny_model),
        "--template",
        "qwen3",
        "--dataset",
        "r1",
        "--dataset-dir",
        str(dataset_dir),
        "--out",
        str(tmp_path),
        "--hardware",
        "cpu",
    )
    assert code == 0, out
    text = (tmp_path / "train.yaml").read_text(encoding="utf-8")
    header = text.split("\n\n", 1)[0]
    # the LLaMA-Factory that runs (a source checkout on PYTHONPATH names its own version)
    assert header.startswith(f"# train.yaml: LLaMA-Factory {llamafactory.__version__} config written"), header
    for key in read_config(tmp_path / "train.yaml"):
        assert f"#   {key}: " in header, key
    # measured with the tiny tokenizer: the longest record is well under 256 tokens
    assert "cutoff_len: 256" in text and "covers p99" in header


def test_measured_cutoff_len_refuses_truncation(dataset_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    args = [
        "config",
        "--model",
        str(tiny_model),
        "--template",
        "qwen3",
        "--dataset",
        "r1",
        "--dataset-dir",
        str(dataset_dir),
        "--out",
        str(tmp_path),
        "--hardware",
        "cpu",
        "--cutoff-len",
        "64",
    ]
    code, out = run(*args)
    assert code == 1 and "cutoff_len 64 would truncate" in out and "--max-tokens 64 --tokenizer " in out
    fix = out.split("drop them with `lf-reasoning convert … ", 1)[1].split("`", 1)[0]  # runs as suggested
    code, out = run("convert", str(R1), "--name", "r1", "--dataset-dir", str(tmp_path / "cut"), *fix.split())
    assert "--template qwen3" in fix and code == 1 and "too_long" in out, (fix, out)  # every record is over 64
    code, out = run(*args)
    assert not (tmp_path / "train.yaml").exists()
    code, out = run(*args, "--allow-truncation")
    assert code == 0 and "would truncate" in out
    assert read_config(tmp_path / "train.yaml")["cutoff_len"] == 64


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--model", "nobody/no-such-model-7B", "--template", "qwen3"], "unknown model id with no local files"),
        (["--template", "qwen9"], "Unknown template 'qwen9'"),
        (["--template", "qwen3", "--dataset", "r2"], "--dataset r2: no such dataset"),
        (["--template", "qwen3", "--finetuning", "qlora"], "--finetuning qlora"),
        (["--template", "qwen3", "--method", "answer-only"], "--method answer-only"),
        (["--template", "qwen3", "--method", "answer-only-masked"], "--method answer-only-masked"),
    ],
)
def test_config_mistakes_are_refused(
    args: list[str], named: str, dataset_dir: Path, tiny_model: Path, tmp_path: Path
) -> None:
    base = {
        "--model": str(tiny_model),
        "--dataset": "r1",
        "--dataset-dir": str(dataset_dir),
        "--out": str(tmp_path),
        "--hardware": "cpu",
    }
    given = dict(zip(args[::2], args[1::2], strict=True))
    code, out = run("config", *itertools.chain.from_iterable({**base, **given}.items()))
    assert code == 1 and named in out, out
    assert not (tmp_path / "train.yaml").exists()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"finetuning": "qlora"}, "--finetuning qlora: 4-bit QLoRA needs a CUDA GPU"),
        ({"packing": True}, "--packing/--liger-kernel are GPU options"),
        ({"liger_kernel": True}, "--packing/--liger-kernel are GPU options"),
        (
            {"method": "think-harder"},
            "--method think-harder: not one of distill, cot, answer-only, answer-only-masked, mixed",
        ),
        ({"datasets": ()}, "--dataset: no dataset name given"),
        ({"cutoff_len": 0}, "--cutoff-len 0: must be at least 1"),
    ],
)
def test_config_request_refuses_bad_options(options: dict[str, object], named: str, tmp_path: Path) -> None:
    """The options are checked when the request is made, before anything is read (the paths need not exist)."""
    fields = {"model": "m", "datasets": ("r1",), "dataset_dir": tmp_path, "out": tmp_path, "hardware": "cpu"}
    with pytest.raises(UserError, match=named):
        ConfigRequest(**{**fields, **options})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cpu_train_yaml(dataset_dir: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cpu_run")
    write_configs(build_configs(request(dataset_dir, out, tiny_model, hardware="cpu")), out)
    return out / "train.yaml"


@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        (["bf16=true"], ["'bf16'"]),  # this machine has no GPU: transformers' own check, not a simulated one
        (["train_on_prompt=true", "mask_history=true"], ["'train_on_prompt'", "'mask_history'"]),
        (["stage=pt", "neat_packing=true"], ["'neat_packing'"]),
        (["templete=qwen3"], ["'templete'", "did you mean template"]),
        (["cutoff_len=long"], ["'cutoff_len'"]),
        (["lr_scheduler_type=cosine_wobble"], ["'lr_scheduler_type'", "one of"]),
        (["template=qwen9"], ["'template'", "no template 'qwen9'"]),
        (["dataset=r2"], ["'dataset'", "no such dataset"]),
    ],
)
def test_train_refuses_bad_keys_before_launching(overrides: list[str], keys: list[str], cpu_train_yaml: Path) -> None:
    code, out = run("train", str(cpu_train_yaml), *overrides, "--dry-run")
    assert code == 1, out
    assert all(key in out for key in keys), out
    assert "command:" not in out


def test_dry_run_prints_command_and_resolved_config(cpu_train_yaml: Path) -> None:
    code, out = run("train", str(cpu_train_yaml), "max_steps=7", "--dry-run")
    assert code == 0, out
    command = out.splitlines()[0].split()
    assert Path(command[1]).name == "llamafactory-cli" and command[2:] == ["train", str(cpu_train_yaml), "max_steps=7"]
    resolved = out.split("resolved config (train):\n", 1)[1]
    assert "max_steps: 7" in resolved and "enable_thinking: true" in resolved
    assert not (cpu_train_yaml.parent / "train").exists()  # nothing ran


def test_custom_template_on_multi_gpu_runs_every_rank_through_our_launcher(
    dataset_dir: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = tmp_path / "qa_think.yaml"
    template.write_text(CUSTOM_TEMPLATE, encoding="utf-8")
    code, out = run(
        "config",
        "--model",
        str(tiny_model),
        "--template-file",
        str(template),
        "--dataset",
        "r1",
        "--dataset-dir",
        str(dataset_dir),
        "--out",
        str(tmp_path / "run"),
        "--hardware",
        "multi-gpu",
    )
    assert code == 0, out
    train = read_config(tmp_path / "run" / "train.yaml")
    assert train["template"] == "qa_think" and train["custom_templates"] == [str(template)]
    # at launch time this CPU machine is checked for real: DeepSpeed is not installed (nor is there a bf16 GPU)
    code, out = run("train", str(tmp_path / "run" / "train.yaml"), "bf16=false", "--dry-run")
    assert code == 1 and "key 'deepspeed'" in out and "pip install deepspeed" in out
    # without DeepSpeed, torchrun (here forced) still starts our launcher on every rank, never llamafactory-cli
    monkeypatch.setenv("FORCE_TORCHRUN", "1")
    code, out = run("train", str(tmp_path / "run" / "train.yaml"), "bf16=false", "deepspeed=null", "--dry-run")
    assert code == 0, out
    command = out.splitlines()[0]
    assert "-m torch.distributed.run" in command and "-m lf_reasoning.llamafactory.launch" in command
    assert "llamafactory-cli" not in command


def test_check_config_simulates_only_the_target_machine(cpu_train_yaml: Path) -> None:
    config = read_config(cpu_train_yaml)
    with pytest.raises(UserError, match="'bf16'"):
        check_config({**config, "bf16": True}, target="cpu")
    skipped = check_config({**config, "bf16": True}, target="gpu")
    assert any("bf16 support is assumed" in s for s in skipped)
    # ZeRO-3 comes from the DeepSpeed file: LLaMA-Factory's ZeRO-3 incompatibilities are still caught
    predict = read_config(cpu_train_yaml.with_name("predict.yaml"))
    ds3 = {"zero_optimization": {"stage": 3}}
    with pytest.raises(UserError, match="ZeRO-3"):
        check_config(
            {**predict, "deepspeed": "ds.json"},
            target="multi-gpu",
            deepspeed=ds3,
            pending={predict["adapter_name_or_path"]},
        )


@pytest.mark.parametrize(
    ("template", "thinking"), list(itertools.product(["qwen3", "deepseekr1"], [True, False, None]))
)
def test_training_chat_template_renders_as_llamafactory(template: str, thinking: bool | None, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = training_chat_template(tokenizer, template, thinking)
    assert chat_template_mismatches(tokenizer, template, thinking) == []


def test_relative_paths_for_configs_committed_to_a_repository(
    dataset_dir: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dataset_dir.parent)
    configs = build_configs(
        request(Path("data"), Path("runs/r1"), tiny_model, "r1-distill-qwen", hardware="multi-gpu", relative_paths=True)
    )
    written = write_configs(configs, Path("runs/r1"))
    train, predict, export = (configs[k].values for k in ("train", "predict", "export"))
    assert train["dataset_dir"] == predict["dataset_dir"] == "data"
    assert (train["output_dir"], train["deepspeed"]) == ("runs/r1/train", "runs/r1/ds_z2_config.json")
    assert predict["adapter_name_or_path"] == "runs/r1/train" and export["export_dir"] == "runs/r1/export"
    header = Path("runs/r1/predict.yaml").read_text()
    assert "# Run: lf-reasoning train runs/r1/predict.yaml" in header and "run it from the folder" in header
    assert all(p.is_file() for p in written)
    # a custom template: train resolves its path against the config's folder, wherever it runs from
    Path("templates").mkdir()
    Path("templates/qa.yaml").write_text(CUSTOM_TEMPLATE, encoding="utf-8")
    configs = build_configs(
        request(
            Path("data"),
            Path("runs/custom"),
            tiny_model,
            relative_paths=True,
            template=None,
            template_file=Path("templates/qa.yaml"),
        )
    )
    write_configs(configs, Path("runs/custom"))
    assert configs["train"].values["custom_templates"] == ["../../templates/qa.yaml"]
    code, out = run("train", "runs/custom/train.yaml", "--dry-run")
    assert code == 0 and "-m lf_reasoning.llamafactory.launch" in out
    # the default: absolute paths, so a run can start anywhere
    train = build_configs(request(Path("data"), Path("runs/abs"), tiny_model, "r1-distill-qwen"))["train"].values
    assert train["dataset_dir"] == str(dataset_dir) and Path(train["output_dir"]).is_absolute()


@pytest.mark.parametrize(
    ("cutoff_len", "batch", "accumulation"),
    [(4096, 1, 8), (1500, 1, 8), (1024, 2, 4), (600, 2, 4), (512, 4, 2), (300, 4, 2), (256, 8, 1), (128, 8, 1)],
)
def test_batch_follows_cutoff_len(
    cutoff_len: int, batch: int, accumulation: int, dataset_dir: Path, tiny_model: Path, tmp_path: Path
) -> None:
    train = build_configs(
        request(dataset_dir, tmp_path, tiny_model, "r1-distill-qwen", hardware="gpu", cutoff_len=cutoff_len)
    )["train"].values
    assert (train["per_device_train_batch_size"], train["gradient_accumulation_steps"]) == (batch, accumulation)
