"""What install needs to know about the target interpreter before touching it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from envsetup.errors import EnvsetupError, UsageError
from envsetup.plan import Plan
from envsetup.target import run_script

# Runs inside the target (``python -I -c``): standard library only, Python >= 3.7.
_PROBE = r"""
import json, os, sys, sysconfig, platform
try:
    import importlib.metadata as md
except ImportError:
    md = None
paths = sysconfig.get_paths()
stdlib = paths.get("stdlib") or ""
marker = os.path.join(stdlib, "EXTERNALLY-MANAGED")
dists = {}
if md is not None:
    for d in md.distributions():
        name = d.metadata["Name"]
        if name:
            key = name.lower().replace("_", "-").replace(".", "-")
            dists.setdefault(key, d.version)
try:
    import pip  # noqa
    has_pip = True
except Exception:
    has_pip = False
print(json.dumps({
    "executable": sys.executable,
    "version": "%d.%d.%d" % sys.version_info[:3],
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "purelib": paths.get("purelib"),
    "platlib": paths.get("platlib"),
    "scripts": paths.get("scripts"),
    "externally_managed": os.path.isfile(marker),
    "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
    "has_pip": has_pip,
    "system": platform.system().lower(),
    "machine": platform.machine().lower(),
    "dists": dists,
}))
"""


@dataclass(frozen=True)
class TargetInfo:
    python: str  # the interpreter path as given (a venv's python stays the venv's)
    version: str  # "3.11.7"
    prefix: str
    base_prefix: str
    purelib: str
    platlib: str
    scripts: str
    externally_managed: bool  # PEP 668 marker present and not in a venv
    conda: bool  # the prefix is a conda environment
    has_pip: bool
    platform: str  # the Plan's spelling: linux_x86_64, macos_arm64, windows_x86_64, …
    dists: dict[str, str]  # normalised name → version, as importlib.metadata sees them

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


def probe(python: str) -> TargetInfo:
    """Ask the target interpreter about itself; a broken interpreter is a usage error."""
    try:
        d = run_script(python, _PROBE, timeout=60)
    except EnvsetupError as exc:
        raise UsageError(f"the target interpreter does not run: {exc.message}") from None
    in_venv = d["prefix"] != d["base_prefix"]
    return TargetInfo(
        python=python,
        version=d["version"],
        prefix=d["prefix"],
        base_prefix=d["base_prefix"],
        purelib=d["purelib"] or "",
        platlib=d["platlib"] or "",
        scripts=d["scripts"] or "",
        externally_managed=bool(d["externally_managed"]) and not in_venv,
        conda=bool(d["conda"]),
        has_pip=bool(d["has_pip"]),
        platform=_platform(d["system"], d["machine"]),
        dists={str(k): str(v) for k, v in d["dists"].items()},
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
    if not info.writable:
        raise UsageError(
            f"{info.purelib} is not writable, and envsetup never uses sudo: "
            "install into a virtual environment with --venv PATH"
        )


def normalize(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


__all__ = ["TargetInfo", "check", "normalize", "probe"]
