"""``env``: the versions and devices a bug report needs, and whether the LLaMA-Factory found is a tested one."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lf_reasoning import __version__
from lf_reasoning.llamafactory.compat import (
    INSTALL_HINT,
    TESTED_RANGE,
    Install,
    in_tested_range,
    llamafactory_install,
    range_warning,
)

# What LLaMA-Factory's own version checks look at, plus math-verify (verify, eval --task math). LLaMA-Factory
# itself is read from its import instead: a checkout on PYTHONPATH is common and pip's record would hide it.
PACKAGES = ("torch", "transformers", "datasets", "accelerate", "peft", "trl", "math-verify")


@dataclass(frozen=True)
class Devices:
    kind: str  # "cuda", "npu", "mps", "cpu"; "unknown" without torch
    names: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "unknown":
            return "unknown (torch is not installed)"
        if self.kind == "cpu":
            return "CPU only"
        return f"{self.kind.upper()} x{len(self.names)}: {', '.join(self.names)}"


@dataclass(frozen=True)
class EnvReport:
    lf_reasoning: str
    python: str
    python_executable: str
    platform: str
    llamafactory: Install | None
    packages: dict[str, str | None]  # None: not installed
    devices: Devices
    warnings: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        lf = self.llamafactory
        return {
            "lf_reasoning": self.lf_reasoning,
            "python": self.python,
            "python_executable": self.python_executable,
            "platform": self.platform,
            "llamafactory": None
            if lf is None
            else {
                "version": lf.version,
                "path": str(lf.folder),
                "source": lf.source,
                "shadowed": lf.shadowed,
                "in_tested_range": in_tested_range(lf.version),
            },
            "llamafactory_tested_range": TESTED_RANGE,
            "packages": self.packages,
            "devices": {"kind": self.devices.kind, "names": list(self.devices.names)},
            "warnings": list(self.warnings),
        }


def collect_env(llamafactory: Callable[[], Install | None] = llamafactory_install) -> EnvReport:
    """Read the environment; ``llamafactory`` finds the LLaMA-Factory install (a parameter so tests can fake one)."""
    lf = llamafactory()
    warning = range_warning(lf.version) if lf else None
    devices = _devices()
    packages = {name: _version(name) for name in PACKAGES}
    if devices.kind != "unknown":  # torch is imported: its own version names the build (2.14.1+cu130)
        import torch

        packages["torch"] = str(torch.__version__)
    return EnvReport(
        lf_reasoning=__version__,
        python=platform.python_version(),
        python_executable=sys.executable,
        platform=platform.platform(),
        llamafactory=lf,
        packages=packages,
        devices=devices,
        warnings=(warning,) if warning else (),
    )


def format_report(report: EnvReport) -> str:
    """The text ``lf-reasoning env`` prints (warnings go to stderr separately)."""
    lf = report.llamafactory
    rows = [
        ("lf-reasoning", report.lf_reasoning),
        ("Python", f"{report.python} ({report.python_executable})"),
        ("Platform", report.platform),
        (
            "LLaMA-Factory",
            f"{lf.version}, {lf.describe()}; tested range {TESTED_RANGE}" if lf else f"not installed: `{INSTALL_HINT}`",
        ),
        *((name, version or "not installed") for name, version in report.packages.items()),
        ("Devices", report.devices.describe()),
    ]
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label:<{width}}{value}" for label, value in rows)


def _version(distribution: str) -> str | None:
    """pip's record of the version (importing peft, trl … to ask them would take seconds)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices() -> Devices:
    """The accelerators torch sees: CUDA (also ROCm), Ascend NPU (torch_npu), Apple MPS; else the CPU."""
    if importlib.util.find_spec("torch") is None:
        return Devices("unknown")
    import torch

    if torch.cuda.is_available():
        return Devices("cuda", tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))
    if importlib.util.find_spec("torch_npu") is not None:
        import torch_npu  # noqa: F401  (registers torch.npu)

        if torch.npu.is_available():
            return Devices("npu", tuple(torch.npu.get_device_name(i) for i in range(torch.npu.device_count())))
    if torch.backends.mps.is_available():
        return Devices("mps", ("Apple GPU",))
    return Devices("cpu")
