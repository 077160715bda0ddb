"""The compilers torch.compile needs: inductor builds C++ on the CPU; Triton needs a C compiler."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Optional

from envsetup import proc
from envsetup.profile import Compiler, Toolchain


def _find(env: Mapping[str, str], var: str, names: tuple[str, ...]) -> tuple[Optional[str], str]:
    if env.get(var):
        value = env[var].split()[0]
        found = shutil.which(value, path=env.get("PATH"))
        return found, f"{var}={env[var]} is not an executable" if not found else ""
    for name in names:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found, ""
    return None, f"none of {', '.join(names)} on PATH"


def _version(path: str) -> Optional[str]:
    res = proc.run([path, "--version"], timeout=10)
    if not res.ok:
        return None
    lines = (res.stdout or res.stderr).strip().splitlines()
    return lines[0] if lines else None


def probe_toolchain(env: Optional[Mapping[str, str]] = None) -> Toolchain:
    env = os.environ if env is None else env
    unknown: dict[str, str] = {}
    found: dict[str, Optional[Compiler]] = {}
    for key, var, names in (
        ("cc", "CC", ("cc", "gcc", "clang")),
        ("cxx", "CXX", ("c++", "g++", "clang++")),
    ):
        path, why = _find(env, var, names)
        if path is None:
            unknown[key] = why
            found[key] = None
            continue
        version = _version(path)
        if version is None:
            unknown[key] = f"{path} --version failed"
            found[key] = None
            continue
        found[key] = Compiler(path=path, version=version)
    return Toolchain(cc=found["cc"], cxx=found["cxx"], unknown=unknown)
