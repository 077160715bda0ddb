"""One small backend per installer: the single source of truth for every argv envsetup runs.

Each install is two steps, so that nothing is touched until everything is at hand:

1. ``download``: fetch every file the plan needs (the pins and all their dependencies) into a
   staging directory. pip stages with ``pip download --only-binary=:all:`` run *for the target
   interpreter* (its own pip, or ours with ``pip --python TARGET``), so the wheel tags are the
   target's. uv first resolves (``resolve``: ``uv pip compile --python TARGET`` writes a PEP 751
   ``pylock.toml`` with every file's URL and hash, for the target's markers and tags), then
   stages by installing that lock into a scratch directory (``--target STAGE``), which fetches,
   hash-checks and unpacks every file into uv's cache. conda stages with ``conda install
   --download-only``.
2. ``install``: install from what was staged with the network off (``--no-index --find-links
   STAGE`` for pip, ``--offline --no-index -r pylock.toml`` for uv: the same lock, from the
   cache alone; ``--offline`` for conda).

``direct`` is the one-command equivalent a person would type; it is what ``--dry-run`` and the
wizard show next to the two steps.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from packaging.version import Version

from envsetup.errors import UsageError
from envsetup.install.target import TargetInfo
from envsetup.plan import Plan

INSTALLERS = ("pip", "uv", "conda")
# The official pytorch/nvidia conda channels stopped at 2.5 (pytorch/pytorch#138506).
CONDA_CHANNEL_LAST = Version("2.5.99")


def find_uv() -> Optional[str]:
    """The uv binary: on PATH, next to our interpreter, or from the ``uv`` package."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    if importlib.util.find_spec("uv") is not None:
        try:
            from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

            return str(find_uv_bin())
        except Exception:
            return None
    return None


def find_conda() -> Optional[str]:
    exe = os.environ.get("CONDA_EXE")
    if exe and Path(exe).is_file():
        return exe
    return shutil.which("conda")


def pip_prefix(info: TargetInfo) -> list[str]:
    """How to run pip for the target: its own, or ours pointed at it (pip >= 22.3)."""
    if info.has_pip:
        return [info.python, "-m", "pip"]
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "--python", info.python]
    raise UsageError(
        f"{info.python} has no pip, and neither has envsetup's own interpreter: "
        "install pip there (python -m ensurepip) or use a virtual environment made with pip"
    )


def index_args(index_url: Optional[str]) -> list[str]:
    return ["--index-url", index_url] if index_url else []


def pip_download(plan: Plan, info: TargetInfo, stage: Path, index_url: Optional[str]) -> list[str]:
    return [
        *pip_prefix(info),
        "download",
        "--dest",
        str(stage),
        "--only-binary=:all:",
        "--progress-bar",
        "off",
        *index_args(index_url),
        *plan.requirements(),
    ]


class Backend:
    name = ""

    def __init__(self, info: TargetInfo, *, break_system_packages: bool = False):
        self.info = info
        self.bsp = break_system_packages

    def resolve(self, plan: Plan, stage: Path, index_url: Optional[str]) -> Optional[list[str]]:
        """The command that fixes the exact set of files before staging, if the backend has one."""
        return None

    def download(self, plan: Plan, stage: Path, index_url: Optional[str]) -> list[str]:
        return pip_download(plan, self.info, stage, index_url)

    def install(self, stage: Path, reqs: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def direct(self, plan: Plan, index_url: Optional[str]) -> list[str]:
        raise NotImplementedError

    def uninstall(self, names: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def reinstall(self, saved: Path, reqs: Sequence[str]) -> list[str]:
        """Put back saved distributions exactly: no deps, no network, over whatever is there."""
        raise NotImplementedError


class PipBackend(Backend):
    name = "pip"

    def _bsp(self) -> list[str]:
        return ["--break-system-packages"] if self.bsp else []

    def install(self, stage: Path, reqs: Sequence[str]) -> list[str]:
        return [
            *pip_prefix(self.info),
            "install",
            "--no-index",
            "--find-links",
            str(stage),
            "--progress-bar",
            "off",
            *self._bsp(),
            *reqs,
        ]

    def direct(self, plan: Plan, index_url: Optional[str]) -> list[str]:
        return [
            *pip_prefix(self.info),
            "install",
            *index_args(index_url),
            *self._bsp(),
            *plan.requirements(),
        ]

    def uninstall(self, names: Sequence[str]) -> list[str]:
        return [*pip_prefix(self.info), "uninstall", "--yes", *self._bsp(), *names]

    def reinstall(self, saved: Path, reqs: Sequence[str]) -> list[str]:
        return [
            *pip_prefix(self.info),
            "install",
            "--no-index",
            "--find-links",
            str(saved),
            "--no-deps",
            "--force-reinstall",
            "--progress-bar",
            "off",
            *self._bsp(),
            *reqs,
        ]


class UvBackend(Backend):
    name = "uv"

    def __init__(self, info: TargetInfo, *, break_system_packages: bool = False, uv: str = "uv"):
        super().__init__(info, break_system_packages=break_system_packages)
        self.uv = uv

    def _base(self, verb: str) -> list[str]:
        args = [self.uv, "pip", verb, "--python", self.info.python]
        if self.bsp:
            args.append("--break-system-packages")
        return args

    @staticmethod
    def lock(stage: Path) -> Path:
        """The PEP 751 lock the resolve step writes next to the stage."""
        return stage.parent / "pylock.toml"

    @staticmethod
    def requirements(stage: Path) -> Path:
        """The plan's pins, as the resolve step reads them."""
        return stage.parent / "requirements.in"

    def resolve(self, plan: Plan, stage: Path, index_url: Optional[str]) -> Optional[list[str]]:
        # uv resolves for the target interpreter (its markers and its wheel tags) and writes
        # every file's URL and hash; nothing is installed yet.
        return [
            self.uv, "pip", "compile", "--python", self.info.python, "--only-binary", ":all:",
            "--quiet", "--no-header", *index_args(index_url), "--output-file",
            str(self.lock(stage)), str(self.requirements(stage)),
        ]  # fmt: skip

    def download(self, plan: Plan, stage: Path, index_url: Optional[str]) -> list[str]:
        # Fetch (hash-checked) and unpack every locked file into uv's cache, by installing the
        # lock into a scratch directory: the target is not touched.
        return [
            self.uv, "pip", "install", "--python", self.info.python, "--target", str(stage),
            "--no-deps", "-r", str(self.lock(stage)),
        ]  # fmt: skip

    def install(self, stage: Path, reqs: Sequence[str]) -> list[str]:
        # The same lock, from the cache alone: no index, no network.
        return [*self._base("install"), "--offline", "--no-index", "-r", str(self.lock(stage))]

    def direct(self, plan: Plan, index_url: Optional[str]) -> list[str]:
        return [*self._base("install"), *index_args(index_url), *plan.requirements()]

    def uninstall(self, names: Sequence[str]) -> list[str]:
        return [*self._base("uninstall"), *names]

    def reinstall(self, saved: Path, reqs: Sequence[str]) -> list[str]:
        return [
            *self._base("install"),
            "--offline",
            "--no-index",
            "--find-links",
            str(saved),
            "--no-deps",
            "--reinstall",
            *reqs,
        ]


def conda_specs(plan: Plan) -> tuple[list[str], list[str]]:
    """(channels, package specs) for the official pytorch/nvidia channels (torch <= 2.5)."""
    names = {"torch": "pytorch"}
    specs = [f"{names.get(p.name, p.name)}=={p.version}" for p in plan.pins]
    if plan.variant == "cpu":
        return ["pytorch"], [*specs, "cpuonly"]
    if plan.cuda:
        return ["pytorch", "nvidia"], [*specs, f"pytorch-cuda={plan.cuda}"]
    raise UsageError(
        f"the {plan.variant} build of torch is not on the pytorch conda channel: "
        "use --installer pip (it installs into the conda environment too)"
    )


def conda_channel_has(plan: Plan) -> bool:
    """Whether the official pytorch conda channel publishes this plan's build."""
    return (
        Version(plan.torch) <= CONDA_CHANNEL_LAST
        and plan.variant != "default"
        and (plan.variant == "cpu" or plan.cuda is not None)
    )


class CondaBackend(Backend):
    """torch <= 2.5 from the pytorch/nvidia channels, with the matching pytorch-cuda.

    Later releases are not on those channels; for them :func:`select` picks pip inside the
    conda environment (the official wheels, same builds as the plan) instead of conda-forge's
    builds, whose variants and version strings differ from the plan's.
    """

    name = "conda"

    def __init__(self, info: TargetInfo, *, conda: str = "conda", plan: Plan):
        super().__init__(info)
        self.conda = conda
        self.channels, self.specs = conda_specs(plan)

    def _base(self) -> list[str]:
        args = [self.conda, "install", "--yes", "--prefix", self.info.prefix]
        for ch in self.channels:
            args += ["--channel", ch]
        return args

    def download(self, plan: Plan, stage: Path, index_url: Optional[str]) -> list[str]:
        return [*self._base(), "--download-only", *self.specs]

    def install(self, stage: Path, reqs: Sequence[str]) -> list[str]:
        return [*self._base(), "--offline", *self.specs]

    def direct(self, plan: Plan, index_url: Optional[str]) -> list[str]:
        return [*self._base(), *self.specs]

    def revision(self, number: int) -> list[str]:
        return [self.conda, "install", "--yes", "--prefix", self.info.prefix,
                "--offline", "--revision", str(number)]  # fmt: skip

    def revisions(self) -> list[str]:
        return [self.conda, "list", "--prefix", self.info.prefix, "--revisions", "--json"]


def default_installer(info: TargetInfo) -> str:
    """conda in a conda environment, else uv when present, else pip."""
    if info.conda and find_conda():
        return "conda"
    return "uv" if find_uv() else "pip"


def select(
    name: Optional[str], info: TargetInfo, plan: Plan, *, break_system_packages: bool = False
) -> tuple[Backend, Optional[str]]:
    """The backend for ``name`` (None: the default), and a note when it was swapped."""
    chosen = name or default_installer(info)
    if chosen not in INSTALLERS:
        raise UsageError(f"--installer {chosen}: choose one of {', '.join(INSTALLERS)}")
    if chosen == "uv":
        uv = find_uv()
        if uv is None:
            raise UsageError("--installer uv: uv is not installed; use --installer pip")
        return UvBackend(info, break_system_packages=break_system_packages, uv=uv), None
    if chosen == "conda":
        if not info.conda:
            raise UsageError(
                f"--installer conda: {info.prefix} is not a conda environment; "
                "pick one with --python, or use --installer pip"
            )
        conda = find_conda()
        if conda is None:
            raise UsageError("--installer conda: conda is not on PATH (nor CONDA_EXE set)")
        if conda_channel_has(plan):
            return CondaBackend(info, conda=conda, plan=plan), None
        note = (
            f"torch {plan.torch} ({plan.variant}) is not on the pytorch conda channel, "
            "which stopped at 2.5: installing the official wheels with pip into the conda env"
        )
        return PipBackend(info, break_system_packages=break_system_packages), note
    return PipBackend(info, break_system_packages=break_system_packages), None
