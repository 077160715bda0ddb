"""The team exports, checked by the real tools: ``uv lock`` and ``uv sync`` on the exported
pyproject for two kinds of machine, and pip installing the requirements export with another
package added, against the loopback indexes (their URLs replace the real ones)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import make_venv
from envsetup.compat import load_table
from envsetup.install.backends.uv import find_uv
from envsetup.plan import Request
from envsetup.profile import Profile
from envsetup.resolve import resolve
from envsetup.stack import _toml_loads
from envsetup.uvproject import Machine, requirements, uv_project
from stackindex import FROZEN, StackIndex, build_indexes

PYV = ".".join(map(str, sys.version_info[:3]))
LINUX = {"system": {"os": "linux", "arch": "x86_64"}, "python": {"version": PYV}}
A100 = {
    **LINUX,
    "nvidia": {"driver_version": "535.104.05", "gpus": [{"compute_capability": "8.0"}]},
}
MAC = {
    "system": {"os": "darwin", "arch": "arm64", "macos_version": "14.5"},
    "python": {"version": PYV},
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackIndex]:
    root = build_indexes(tmp_path_factory.mktemp("uvproject") / "root")
    with StackIndex(root) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, index: StackIndex, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """uv's and pip's default index is the loopback package index; nothing of this machine's
    configuration is read."""
    for k in list(os.environ):
        if k.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index.simple)
    monkeypatch.setenv("UV_DEFAULT_INDEX", index.simple)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    return dict(os.environ)


def machine(label: str, prof: dict[str, Any], **req: Any) -> Machine:
    p = Profile.from_dict(prof)
    return Machine(
        label, p, resolve(p, Request(torch="2.4.1", vision=True, **req), load_table(FROZEN))
    )


def uv(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = find_uv()
    assert exe is not None
    return subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def locked(project: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for p in _toml_loads((project / "uv.lock").read_text())["package"]:
        out.setdefault(p["name"], []).append(p)
    return out


def synced_torch(project: Path, env: dict[str, str], *extra: str) -> str:
    res = uv("sync", "--python", sys.executable, *extra, cwd=project, env=env)
    assert res.returncode == 0, res.stderr
    venv_py = project / ".venv" / "bin" / "python"
    code = "import importlib.metadata as m; print(m.version('torch'), m.version('torchvision'))"
    return subprocess.check_output([str(venv_py), "-c", code], text=True).strip()


def test_two_platforms_lock_and_sync_with_markers(
    tmp_path: Path, index: StackIndex, env: dict[str, str]
) -> None:
    gpu, mac = machine("gpu.json", A100), machine("mac.json", MAC)
    export = uv_project([gpu, mac], ["libnp"], index_base=index.whl)
    assert export.notes == ()
    (tmp_path / "pyproject.toml").write_text(export.text)
    res = uv("lock", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr + export.text
    lock = locked(tmp_path)
    torches = {p["version"]: p["source"] for p in lock["torch"]}
    assert torches == {
        "2.4.1+cu121": {"registry": f"{index.whl}/cu121"},  # Linux: the variant index
        "2.4.1": {"registry": index.simple},  # macOS: the package-index build
    }
    assert {p["version"] for p in lock["torchvision"]} == {"0.19.1+cu121", "0.19.1"}
    assert lock["numpy"][0]["source"] == {"registry": index.simple}
    # this (Linux x86_64) machine syncs the GPU node's build from the same lock
    assert synced_torch(tmp_path, env) == "2.4.1+cu121 0.19.1+cu121"


def test_one_platform_two_builds_become_conflicting_extras(
    tmp_path: Path, index: StackIndex, env: dict[str, str]
) -> None:
    gpu, cpu = machine("gpu.json", A100), machine("cpu.json", LINUX)
    export = uv_project([gpu, cpu], ["libnp"], index_base=index.whl)
    (note,) = export.notes
    assert "platform markers cannot tell them apart" in note and "--extra cu121" in note
    assert export.extras == {"cu121": ("gpu.json",), "cpu": ("cpu.json",)}
    (tmp_path / "pyproject.toml").write_text(export.text)
    res = uv("lock", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr + export.text
    assert {p["version"] for p in locked(tmp_path)["torch"]} == {"2.4.1+cu121", "2.4.1+cpu"}
    assert synced_torch(tmp_path, env, "--extra", "cpu") == "2.4.1+cpu 0.19.1+cpu"
    assert synced_torch(tmp_path, env, "--extra", "cu121") == "2.4.1+cu121 0.19.1+cu121"


def test_requirements_export_stays_right_with_a_package_added(
    tmp_path: Path, index: StackIndex, env: dict[str, str]
) -> None:
    cpu = machine("cpu.json", LINUX)
    text = requirements(cpu.plan, f"{index.whl}/cpu")
    assert "--index-url" not in text.replace("--extra-index-url", "")
    req = tmp_path / "requirements.txt"
    req.write_text(text + "libnp\n")  # what a user does next
    py = make_venv(tmp_path / "venv")
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(req)],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    frozen = subprocess.check_output([str(py), "-m", "pip", "freeze"], text=True, env=env)
    assert "torch==2.4.1+cpu" in frozen and "torchvision==0.19.1+cpu" in frozen
    assert "libnp==1.0" in frozen and "numpy==1.26.4" in frozen
