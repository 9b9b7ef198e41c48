"""Which LLaMA-Factory versions lf-reasoning is tested with, which one is installed, and what to say when a
feature it needs is missing.

Many users run LLaMA-Factory from a source checkout (its own install instructions are ``pip install -e .``), so
``[train]`` accepts a range instead of one pin, and code that touches an internal that differs between versions
checks for the feature itself (:func:`require`), never for a version number. The version is read from the
imported package, not from pip's metadata: a checkout on ``PYTHONPATH`` hides the installed copy without
changing its metadata. Importing ``llamafactory`` alone loads no torch, so this stays fast (``--version``).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from lf_reasoning.errors import UserError

# Keep in step with the `[train]` extra in pyproject.toml (a test checks it). 0.9.4 and older lack
# `preserve_thinking` and need transformers 4.x; 0.9.6 is what LLaMA-Factory's main branch becomes.
TESTED_RANGE = ">=0.9.5,<0.9.7"
# What the suite was run against: the CI pin (constraints.txt) and LLaMA-Factory's main branch.
TESTED_VERSIONS = ("0.9.5", "0.9.6.dev0")
INSTALL_HINT = "pip install 'lf-reasoning[train]'"

Source = Literal["site-packages", "editable", "checkout"]


@dataclass(frozen=True)
class Install:
    """The ``llamafactory`` package this interpreter imports."""

    version: str
    folder: Path  # the package folder itself (…/llamafactory)
    source: Source  # a regular pip install, a `pip install -e` of a checkout, or a checkout put on sys.path
    shadowed: str | None = None  # the pip-installed version this import hides (a checkout on PYTHONPATH)

    def describe(self) -> str:
        """Where it comes from, in words: ``site-packages (/…/llamafactory)``, ``source checkout (…)``."""
        where = {"site-packages": "site-packages", "editable": "editable install", "checkout": "source checkout"}
        text = f"{where[self.source]} ({self.folder})"
        if self.source == "checkout":
            text += ", on sys.path/PYTHONPATH"
        if self.shadowed:
            text += f"; hides the installed llamafactory {self.shadowed}"
        return text


def llamafactory_install() -> Install | None:
    """The imported LLaMA-Factory, or None when it is not installed."""
    try:
        import llamafactory
    except ImportError:
        return None
    folder = Path(llamafactory.__file__).resolve().parent
    version = str(llamafactory.__version__)
    try:
        dist = importlib.metadata.distribution("llamafactory")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if any(part in ("site-packages", "dist-packages") for part in folder.parts):
        return Install(version, folder, "site-packages")
    source: Source = "editable" if dist is not None and _editable_of(dist, folder) else "checkout"
    # an editable install's metadata lags its checkout after a `git pull`; only a checkout on sys.path hides one
    shadowed = dist.version if source == "checkout" and dist is not None and dist.version != version else None
    return Install(version, folder, source, shadowed)


def _editable_of(dist: importlib.metadata.Distribution, folder: Path) -> bool:
    """Whether ``dist`` is a ``pip install -e`` of the checkout that holds ``folder`` (PEP 610 direct_url.json)."""
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    url = urlparse(direct.get("url", ""))
    if not direct.get("dir_info", {}).get("editable") or url.scheme != "file":
        return False
    return Path(url2pathname(url.path)).resolve() in folder.parents


def llamafactory_version() -> str | None:
    """The version of the LLaMA-Factory this interpreter imports (a source checkout's own), None if absent."""
    install = llamafactory_install()
    return install.version if install else None


def in_tested_range(version: str) -> bool:
    """Whether ``version`` lies in :data:`TESTED_RANGE`; development builds (``0.9.6.dev0``) count."""
    try:
        return SpecifierSet(TESTED_RANGE).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def range_warning(version: str) -> str | None:
    """The warning for a LLaMA-Factory outside the tested range, None inside it."""
    if in_tested_range(version):
        return None
    return (
        f"LLaMA-Factory {version} is outside the range lf-reasoning is tested with ({TESTED_RANGE}; tested: "
        f"{', '.join(TESTED_VERSIONS)}); commands that use its internals may fail. To be safe: "
        f"pip install 'llamafactory{TESTED_RANGE}'"
    )


def missing_feature(feature: str, command: str) -> UserError:
    """The error for a feature the installed LLaMA-Factory does not have."""
    version = llamafactory_version() or "(not installed)"
    return UserError(
        f"LLaMA-Factory {version} lacks {feature} that {command} needs; install a version in {TESTED_RANGE}: "
        f"pip install 'llamafactory{TESTED_RANGE}' (or check out such a release in your LLaMA-Factory clone)"
    )


def require(owner: Any, name: str, feature: str, command: str) -> None:
    """Raise :func:`missing_feature` unless ``owner`` (a module, class or instance) has ``name``; a dataclass
    field without a default counts, though its class has no such attribute."""
    fields = {f.name for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else set()
    if name not in fields and not hasattr(owner, name):
        raise missing_feature(feature, command)
