"""`lf-reasoning env` / `--version`: the versions that really run, and the LLaMA-Factory version range.

The real installs are read (LLaMA-Factory, transformers, datasets of this venv); a source checkout of another
version is a real package folder put on PYTHONPATH, as users run LLaMA-Factory's main branch; only "not
installed" and arbitrary version strings go through the ``collect_env`` parameter.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import llamafactory
import pytest
from cli_runner import run
from llamafactory.data.template import TEMPLATES, Template
from llamafactory.hparams import DataArguments

from lf_reasoning import __version__
from lf_reasoning.commands.env import collect_env, format_report
from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.compat import (
    TESTED_RANGE,
    TESTED_VERSIONS,
    Install,
    in_tested_range,
    require,
)

ROOT = Path(__file__).parents[1]
LF = llamafactory.__version__
LF_FOLDER = Path(llamafactory.__file__).resolve().parent


def lf_reasoning(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``lf-reasoning ARGS`` in a fresh interpreter (what a shell runs), with ``pythonpath`` first on sys.path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(pythonpath or ""), str(ROOT)) if p)}
    return subprocess.run(
        [sys.executable, "-m", "lf_reasoning", *args], capture_output=True, text=True, env=env, timeout=300
    )


def checkout(root: Path, version: str, body: str = "") -> Path:
    """A LLaMA-Factory source layout (``root/src/llamafactory``) declaring ``version``; returns ``root/src``."""
    package = root / "src" / "llamafactory"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'__version__ = "{version}"\n{body}', encoding="utf-8")
    return root / "src"


def test_report_names_the_installed_versions() -> None:
    code, out = run("env")
    assert code == 0, out
    lines = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith("lf-reasoning"))
    assert f"lf-reasoning   {__version__}" in out
    assert lines["Python"].startswith(f"{platform.python_version()} ({sys.executable})")
    if "site-packages" in LF_FOLDER.parts:  # else the suite runs against a checkout (see the README)
        assert lines["LLaMA-Factory"] == f"{LF}, site-packages ({LF_FOLDER}); tested range {TESTED_RANGE}"
    assert lines["LLaMA-Factory"].startswith(f"{LF}, ") and f"({LF_FOLDER})" in lines["LLaMA-Factory"]
    for name in ("transformers", "datasets", "accelerate", "peft", "trl", "math-verify"):
        assert lines[name] == importlib.metadata.version(name), name
    import torch

    assert lines["torch"] == torch.__version__
    if not torch.cuda.is_available():
        assert lines["Devices"] == "CPU only"
    else:
        assert lines["Devices"].startswith(f"CUDA x{torch.cuda.device_count()}: {torch.cuda.get_device_name(0)}")
    assert "warning" not in out  # the CI pin lies in the tested range


def test_json_output_parses() -> None:
    code, out = run("env", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["lf_reasoning"] == __version__
    lf = report["llamafactory"]
    assert (lf["version"], lf["path"], lf["in_tested_range"]) == (LF, str(LF_FOLDER), True)
    assert lf["source"] == ("site-packages" if "site-packages" in LF_FOLDER.parts else "checkout")
    assert report["llamafactory_tested_range"] == TESTED_RANGE
    assert report["packages"]["datasets"] == importlib.metadata.version("datasets")
    assert report["devices"]["kind"] in ("cpu", "cuda", "npu", "mps")
    assert report["warnings"] == []


@pytest.mark.parametrize(
    ("version", "tested"),
    [
        ("0.9.5", True),
        ("0.9.6.dev0", True),  # LLaMA-Factory's main branch: a development build counts
        ("0.9.6", True),
        ("0.9.4", False),  # no preserve_thinking; transformers 4.x
        ("0.9.7.dev0", False),
        ("0.10.0", False),
        ("not-a-version", False),
    ],
)
def test_tested_range(version: str, tested: bool) -> None:
    assert in_tested_range(version) is tested


def test_out_of_range_version_warns() -> None:
    fake = Install("0.9.2", Path("/opt/lf/llamafactory"), "site-packages")
    report = collect_env(llamafactory=lambda: fake)
    (warning,) = report.warnings
    assert warning.startswith(f"LLaMA-Factory 0.9.2 is outside the range lf-reasoning is tested with ({TESTED_RANGE}")
    assert f"pip install 'llamafactory{TESTED_RANGE}'" in warning
    assert "LLaMA-Factory  0.9.2, site-packages (/opt/lf/llamafactory)" in format_report(report)
    assert report.as_dict()["llamafactory"]["in_tested_range"] is False
    assert collect_env(llamafactory=lambda: Install("0.9.6.dev0", fake.folder, "checkout")).warnings == ()


def test_not_installed_says_how_to_install() -> None:
    report = collect_env(llamafactory=lambda: None)
    assert "LLaMA-Factory  not installed: `pip install 'lf-reasoning[train]'`" in format_report(report)
    assert report.as_dict()["llamafactory"] is None
    assert report.warnings == ()


def test_version_is_fast_and_names_llamafactory() -> None:
    """``--version`` adds the LLaMA-Factory version and imports neither torch nor transformers."""
    script = (
        "import sys\nfrom lf_reasoning.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.splitlines() == [f"lf-reasoning, version {__version__} (LLaMA-Factory {LF})", "0 False False"]
    assert result.stderr == ""


def test_source_checkout_on_pythonpath_is_named_and_warned(tmp_path: Path) -> None:
    src = checkout(tmp_path / "LLaMA-Factory", "0.9.2")
    result = lf_reasoning("env", pythonpath=src)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("LLaMA-Factory"))
    assert line.split(None, 1)[1] == (
        f"0.9.2, source checkout ({src.resolve() / 'llamafactory'}), on sys.path/PYTHONPATH; "
        f"hides the installed llamafactory {importlib.metadata.version('llamafactory')}; tested range {TESTED_RANGE}"
    )
    assert result.stderr.startswith("warning: LLaMA-Factory 0.9.2 is outside the range"), result.stderr
    version = lf_reasoning("--version", pythonpath=src)
    assert (version.returncode, version.stdout) == (0, f"lf-reasoning, version {__version__} (LLaMA-Factory 0.9.2)\n")
    assert "warning: LLaMA-Factory 0.9.2 is outside" in version.stderr


def test_editable_install_is_named(tmp_path: Path) -> None:
    """``pip install -e`` of a checkout: pip's dist-info (PEP 610 direct_url.json) points at the checkout."""
    root = tmp_path / "my LLaMA-Factory"  # a space: the file URL is percent-encoded
    src = checkout(root, "0.9.6.dev0")
    dist = src / "llamafactory-0.9.6.dev0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: llamafactory\nVersion: 0.9.6.dev0\n")
    (dist / "direct_url.json").write_text(json.dumps({"url": root.resolve().as_uri(), "dir_info": {"editable": True}}))
    result = lf_reasoning("env", "--json", pythonpath=src)
    assert result.returncode == 0, result.stderr
    lf = json.loads(result.stdout)["llamafactory"]
    assert lf == {
        "version": "0.9.6.dev0",
        "path": str(src.resolve() / "llamafactory"),
        "source": "editable",
        "shadowed": None,
        "in_tested_range": True,
    }
    assert result.stderr == ""


def test_version_when_llamafactory_cannot_be_imported(tmp_path: Path) -> None:
    src = checkout(tmp_path / "LLaMA-Factory", "0.9.5", body="raise ImportError('simulated: no torch')\n")
    version = lf_reasoning("--version", pythonpath=src)
    assert (version.returncode, version.stdout) == (
        0,
        f"lf-reasoning, version {__version__} (LLaMA-Factory not installed)\n",
    )


def test_pins_lie_in_the_tested_range() -> None:
    """pyproject's ``[train]`` range is compat's; the CI pin (constraints.txt) and this venv's install lie in it."""
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert f"llamafactory{TESTED_RANGE}" in extras["train"]
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("llamafactory==")]
    assert pins == [f"llamafactory=={TESTED_VERSIONS[0]}"]
    assert all(in_tested_range(v) for v in TESTED_VERSIONS)
    assert in_tested_range(LF), f"this suite runs against LLaMA-Factory {LF}, outside {TESTED_RANGE}"


def test_require_names_the_missing_feature() -> None:
    require(TEMPLATES["qwen3"], "preserve_thinking", "the template field preserve_thinking", "x")
    require(Template, "thought_words", "the template field thought_words", "x")  # a field without a default
    require(DataArguments, "enable_thinking", "the data argument enable_thinking", "x")
    with pytest.raises(UserError) as err:
        require(DataArguments, "think_harder", "the data argument think_harder", "counting tokens")
    assert err.value.message == (
        f"LLaMA-Factory {LF} lacks the data argument think_harder that counting tokens needs; install a version in "
        f"{TESTED_RANGE}: pip install 'llamafactory{TESTED_RANGE}' (or check out such a release in your "
        "LLaMA-Factory clone)"
    )
