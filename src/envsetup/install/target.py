"""What install needs to know about the target interpreter before touching it.

The facts come from doctor's own probe (:func:`envsetup.detect.target.query`, one run of
``detect/target_script.py`` in the target): the same script answers doctor and install.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from envsetup.errors import EnvsetupError, UsageError
from envsetup.plan import Plan
from envsetup.profile import Torch


@dataclass(frozen=True)
class TargetInfo:
    python: str  # the interpreter path as given (a venv's python stays the venv's)
    version: str  # "3.11.7"
    prefix: str
    base_prefix: str
    purelib: str
    platlib: str
    scripts: str
    data: str  # where a wheel's .data/data/ files go (the prefix, for a venv)
    externally_managed: bool  # PEP 668 marker present and not in a venv
    conda: bool  # the prefix is a conda environment
    has_pip: bool
    platform: str  # the Plan's spelling: linux_x86_64, macos_arm64, windows_x86_64, …
    dists: dict[str, str]  # normalised name → version, the first copy on sys.path
    dist_info: dict[str, str] = field(default_factory=dict)  # normalised name → metadata dir
    torch: Torch = field(default_factory=Torch)  # torch and its companions, as doctor sees them
    exists: bool = True  # False: a venv that --dry-run would create

    @property
    def in_venv(self) -> bool:
        return self.prefix != self.base_prefix

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def writable(self) -> bool:
        return all(os.access(p, os.W_OK) for p in {self.purelib, self.platlib} if p)


def _platform(system: str, machine: str) -> str:
    """The Plan's platform spelling, from the same arch normalisation doctor uses."""
    from envsetup.detect.system import normalise_arch

    return f"{ {'darwin': 'macos'}.get(system, system) }_{normalise_arch(machine, system)}"


def from_probe(python: str, data: dict[str, Any]) -> TargetInfo:
    """A TargetInfo from the probe's JSON (``detect.target.query``)."""
    from envsetup.detect.target import build

    py, env = data["python"], data["env"]
    paths = env["paths"]
    every = {str(k): (str(v[0]), str(v[1])) for k, v in env["dists"].items()}
    _, torch = build(data, {})
    return TargetInfo(
        python=python,
        version=str(py["version"]),
        prefix=str(py["prefix"]),
        base_prefix=str(env["base_prefix"]),
        purelib=paths.get("purelib") or "",
        platlib=paths.get("platlib") or "",
        scripts=paths.get("scripts") or "",
        data=paths.get("data") or str(py["prefix"]),
        externally_managed=bool(py["externally_managed"]),
        conda=py.get("conda_env") is not None,
        has_pip="pip" in every,
        platform=_platform(str(env["system"]), str(env["machine"])),
        dists={k: v[0] for k, v in every.items()},
        dist_info={k: v[1] for k, v in every.items()},
        torch=torch,
    )


def probe(python: str) -> TargetInfo:
    """Ask the target interpreter about itself; a broken interpreter is a usage error."""
    from envsetup.detect.target import query

    try:
        data = query(python)
    except EnvsetupError as exc:
        raise UsageError(f"the target interpreter does not run: {exc.message}") from None
    return from_probe(python, data)


def new_venv(base: TargetInfo, path: str) -> TargetInfo:
    """The venv ``python -m venv PATH`` would make from ``base``: what --dry-run shows."""
    root = Path(path)
    bindir = "Scripts" if base.platform.startswith("windows") else "bin"
    exe = root / bindir / ("python.exe" if bindir == "Scripts" else "python")

    def moved(p: str) -> str:
        try:
            return str(root / Path(p).relative_to(base.prefix))
        except ValueError:
            return p

    return replace(
        base,
        python=str(exe),
        prefix=str(root),
        base_prefix=base.base_prefix,
        purelib=moved(base.purelib),
        platlib=moved(base.platlib),
        scripts=str(root / bindir),
        data=str(root),
        externally_managed=False,
        conda=False,
        has_pip=True,
        dists={},
        dist_info={},
        torch=Torch(),
        exists=False,
    )


def check(info: TargetInfo, plan: Plan, *, break_system_packages: bool = False) -> None:
    """Refuse, with a one-line reason, a target the plan cannot go into."""
    if info.minor != plan.python:
        raise UsageError(
            f"the plan is for Python {plan.python} but {info.python} is Python {info.minor}; "
            "make a plan for this interpreter, or pick another with --python/--venv"
        )
    if plan.platform and info.platform != plan.platform:
        raise UsageError(
            f"the plan is for {plan.platform} but {info.python} runs on {info.platform}; "
            "make a plan on (or for) this machine"
        )
    if info.externally_managed and not break_system_packages:
        raise UsageError(
            f"{info.python} is externally managed (PEP 668): install into a virtual "
            "environment with --venv PATH, or pass --break-system-packages to write into it anyway"
        )
    if info.exists and not info.writable:
        raise UsageError(
            f"{info.purelib} is not writable, and envsetup never uses sudo: "
            "install into a virtual environment with --venv PATH"
        )


def wanted(plan: Plan) -> dict[str, str]:
    """The versions the plan's pins will have once installed: normalised name → version.

    With a local version (``2.4.1+cu121``) every pin carries the same label, as the PyTorch
    index publishes them. The plain package index publishes public versions (its torch 2.15.0
    says "2.15.0+cu132" in ``torch.__version__``, but its wheel and metadata say 2.15.0): the
    ``default`` build's pins are the public versions."""
    label = (
        plan.local_version.split("+", 1)[1]
        if plan.local_version and "+" in plan.local_version and plan.variant != "default"
        else None
    )
    return {normalize(p.name): f"{p.version}+{label}" if label else p.version for p in plan.pins}


def already_installed(plan: Plan, info: TargetInfo) -> bool:
    """Whether every pin is installed at exactly the planned build."""
    if not info.exists:
        return False
    return all(info.dists.get(name) == version for name, version in wanted(plan).items())


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_pins(plan: Plan, info: Optional[TargetInfo]) -> list[str]:
    """The pins whose planned build is not what ``info`` has (all of them when None)."""
    want = wanted(plan)
    return [n for n, v in want.items() if info is None or info.dists.get(n) != v]


__all__ = ["TargetInfo", "already_installed", "check", "new_venv", "normalize", "probe"]
