"""The one writer of every fix that is an ``envsetup`` command, so each is quoted the same way
and each is one that envsetup itself accepts for that interpreter."""

from __future__ import annotations

import shlex
from typing import Optional

from envsetup.profile import Profile


def _py(p: Profile) -> str:
    return shlex.quote(p.python.executable or "python3")


def companions(p: Profile) -> list[str]:
    """The companion libraries installed beside torch, as `--with` names them."""
    names = (("torchvision", "vision"), ("torchaudio", "audio"))
    return [flag for name, flag in names if p.torch.package(name) is not None]


VENV_FOR_PEP668 = "~/.venvs/torch"


def install_fix(p: Profile, *, torch: Optional[str] = None, variant: Optional[str] = None) -> str:
    """``envsetup install`` for this profile's interpreter, keeping its companion libraries.

    An externally-managed (PEP 668) interpreter is one envsetup refuses to change, so there
    the fix makes a virtual environment from it and installs into that, which envsetup accepts.
    """
    if p.python.externally_managed:
        venv = VENV_FOR_PEP668
        parts = [f"{_py(p)} -m venv {venv} &&", "envsetup", "install", "--python", venv]
    else:
        parts = ["envsetup", "install", "--python", _py(p)]
    if torch:
        parts += ["--torch", shlex.quote(torch)]
    if variant:
        parts += ["--variant", shlex.quote(variant)]
    keep = companions(p)
    if keep:
        parts += ["--with", ",".join(keep)]
    return " ".join([*parts, "--yes"])


def plan_fix(p: Profile, *, variant: Optional[str] = None) -> str:
    """``envsetup plan`` for this profile's interpreter (a look before changing anything)."""
    parts = ["envsetup", "plan", "--python", _py(p)]
    if variant:
        parts += ["--variant", shlex.quote(variant)]
    return " ".join(parts)
