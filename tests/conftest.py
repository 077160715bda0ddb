"""Shared fixtures: the real CPU torch venv, and running the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
TORCH_VERSION = "2.13.0"  # the CPU wheel this machine's pip installs without a download


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def make_venv(path: Path, *, pip: bool = True) -> Path:
    venv.EnvBuilder(with_pip=pip, clear=True).create(path)
    return venv_python(path)


@pytest.fixture(scope="session")
def torch_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real venv with the real CPU torch wheel installed by real pip; returns its python.

    Set ENVSETUP_TEST_TORCH_VENV to an existing venv of the same kind to reuse it between runs.
    Tests must not change it: a test that installs makes its own venv.
    """
    reuse = os.environ.get("ENVSETUP_TEST_TORCH_VENV")
    if reuse:
        py = venv_python(Path(reuse))
        if py.exists():
            return py
    py = make_venv(tmp_path_factory.mktemp("torch-venv") / "venv")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}"],
        check=True,
        timeout=900,
    )
    return py


class CliResult:
    def __init__(self, cp: subprocess.CompletedProcess[str]):
        self.returncode = cp.returncode
        self.stdout = cp.stdout
        self.stderr = cp.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<exit {self.returncode}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


def run_cli(
    *args: str,
    env: Optional[dict[str, str]] = None,
    timeout: float = 300,
    input: Optional[str] = None,
    cwd: Optional[Path] = None,
) -> CliResult:
    """Run ``python -m envsetup ARGS`` for real, as a user would, without a terminal."""
    # the user's own ENVSETUP_* settings (a replayed machine, an index mirror) stay out
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ENVSETUP_") or k.startswith("ENVSETUP_TEST_")
    }
    full_env["NO_COLOR"] = "1"
    full_env["COLUMNS"] = "120"
    if env:
        full_env.update(env)
    cp = subprocess.run(
        [sys.executable, "-m", "envsetup", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
        cwd=cwd,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return CliResult(cp)


@pytest.fixture
def cli() -> Iterator[Any]:
    yield run_cli
