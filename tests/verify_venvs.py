"""Venvs for the verify tests that need more than torch: built on the session's torch venv
rather than installing torch again (the wheel takes a minute and a half to install on 2 cores).

A layered venv is a real venv of its own whose site-packages holds a ``.pth`` line naming the
torch venv's site-packages: torch imports from there, everything else installed into the layered
venv by real pip lands in it and comes first on sys.path. pip never writes into the torch venv
(it leaves a package outside the environment it installs into alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import make_venv


def site_packages(py: Path) -> Path:
    out = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def layered_venv(path: Path, torch_python: Path) -> Path:
    """A fresh venv (no pip of its own) that imports torch from ``torch_python``'s venv."""
    py = make_venv(path, pip=False)
    (site_packages(py) / "_envsetup_test_torch.pth").write_text(
        str(site_packages(torch_python)) + "\n"
    )
    return py


def pip_into(py: Path, *args: str, index: bool = False, timeout: float = 600) -> None:
    """Real pip (this interpreter's) installing into ``py``'s environment. With ``index`` it
    reads the default package index, with this machine's pip configuration left out."""
    env = dict(os.environ)
    if index:
        env["PIP_CONFIG_FILE"] = os.devnull
        for key in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
            env.pop(key, None)
    cmd = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", *args]
    cp = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
