"""PYTHONPATH as the user's shell has it: does it put another torch (or companion) first?

envsetup runs the target interpreter isolated (``-I``), so what it reports is the installed
torch. The user's own ``python -c "import torch"`` sees ``PYTHONPATH`` first: a checkout or a
stray copy there wins over site-packages, and doctor must say so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# torch and the packages installed and judged beside it
WATCHED = ("torch", "torchvision", "torchaudio", "triton")
_EXTENSION_SUFFIXES = (".so", ".pyd")


def _module_at(entry: Path, name: str) -> str | None:
    """The file ``import name`` would load from the sys.path entry ``entry``, if any.

    A regular package or a module shadows what comes later on the path; a directory without
    ``__init__.py`` is only a namespace portion, which a later regular package still beats.
    """
    pkg = entry / name / "__init__.py"
    if pkg.is_file():
        return str(pkg)
    mod = entry / f"{name}.py"
    if mod.is_file():
        return str(mod)
    try:
        for f in entry.iterdir():
            if f.name.startswith(name + ".") and f.suffix in _EXTENSION_SUFFIXES:
                return str(f)
    except OSError:
        pass
    return None


def shadows(env: Mapping[str, str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """(the PYTHONPATH entries, {module: the file PYTHONPATH would import it from})."""
    raw = env.get("PYTHONPATH", "")
    entries = tuple(e for e in raw.split(os.pathsep) if e)
    found: dict[str, str] = {}
    for e in entries:
        p = Path(e).expanduser()
        if not p.is_dir():
            continue
        for name in WATCHED:
            if name not in found:
                hit = _module_at(p, name)
                if hit:
                    found[name] = hit
    return entries, found
