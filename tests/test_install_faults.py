"""A misbehaving index and a killed installer: the environment ends unchanged or restored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import make_venv
from indexserver import Fault, IndexServer, companion_wheel, torch_wheel
from test_install import envsetup, freeze, hermetic_env, make_plan, torch_in, tree, write_plan


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("index")
    torch_wheel(root / "cu121", "2.4.1+cu121", "12.1", bulk=1500)  # ~100 MB: installs slowly
    companion_wheel(root / "cu121", "torchvision", "0.19.1+cu121", "2.4.1")
    with IndexServer(root) as server:
        yield server


def install_older_torch(py: Path, tmp: Path) -> None:
    """torch 2.3.1+cu121 and its torchvision, installed into ``py`` by real pip."""
    wheels = [
        torch_wheel(tmp / "w", "2.3.1+cu121", "12.1"),
        companion_wheel(tmp / "w", "torchvision", "0.18.1+cu121", "2.3.1"),
    ]
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", *map(str, wheels)],
                   check=True, env=hermetic_env(tmp))  # fmt: skip


@pytest.fixture(scope="module")
def old_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding an older torch and torchvision, installed by real pip."""
    tmp = tmp_path_factory.mktemp("old")
    py = make_venv(tmp / "venv")
    install_older_torch(py, tmp)
    return py


@pytest.mark.timeout(120)
@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (Fault("500"), "HTTP 500"),
        (Fault("404", match="torchvision-"), "404"),
        (Fault("truncate", match="torch-2.4.1"), "install failed"),
        (Fault("drop", match="torch-2.4.1"), "install failed"),
    ],
    ids=["500", "404-one-file", "truncated-body", "dropped-connection"],
)
def test_download_faults_change_nothing(
    fault: Fault, needle: str, installer: str, index: IndexServer, old_venv: Path, tmp_path: Path
) -> None:
    """pip and uv fetch every file before they change anything: a failed download leaves the
    environment as it was (uv's own lock file aside, which the restore removes)."""
    before, files = freeze(old_venv), tree(old_venv.parent.parent)
    plan = write_plan(tmp_path, make_plan())
    index.fault = fault
    try:
        cp = envsetup(
            "install", "--yes", "--no-verify", "--plan-file", plan, "--python", str(old_venv),
            "--installer", installer, "--index-url", index.index("cu121"),
            env=hermetic_env(tmp_path),
        )  # fmt: skip
    finally:
        index.fault = None
    assert cp.returncode == 1, cp.stderr
    last = cp.stderr.strip().splitlines()[-1]
    assert last.startswith("envsetup: ") and needle in last, last
    assert "nothing was changed" in last or "restored to its previous state" in last, last
    assert "Traceback" not in cp.stderr
    if "(log: " in last:  # the installer ran: its full log is kept
        assert Path(last.rsplit("(log: ", 1)[1].rstrip(")")).is_file()
    assert freeze(old_venv) == before
    assert tree(old_venv.parent.parent) == files
    assert torch_in(old_venv) == ("2.3.1+cu121", "12.1")


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append((int(entry.name), cmd))
    return out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_installer_killed_mid_install_is_restored(
    installer: str, index: IndexServer, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp(f"killed-{installer}")
    py = make_venv(tmp / "venv")
    install_older_torch(py, tmp)
    before = freeze(py)
    site = next((tmp / "venv" / "lib").glob("python*/site-packages"))
    plan = write_plan(tmp_path, make_plan())
    env = hermetic_env(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-m", "envsetup", "install", "--yes", "--no-verify", "--plan-file", plan, "--python", str(py),
         "--installer", installer, "--index-url", index.index("cu121")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    killed = False
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline and not killed:
        for pid, cmd in _children(child.pid):
            if " pip install " in cmd:
                # Wait until the new torch's files are landing, then kill the installer.
                while (
                    not list((site / "torch" / "lib").glob("blob*")) and time.monotonic() < deadline
                ):
                    time.sleep(0.005)
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.005)
    _, err = child.communicate(timeout=120)
    assert killed, "the installer never ran"
    assert child.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert "install failed" in last and "restored to its previous state" in last, last
    assert freeze(py) == before
    assert torch_in(py) == ("2.3.1+cu121", "12.1")
    assert not (site / "torch" / "lib").exists()
    assert not [p for p in site.iterdir() if p.name.startswith("~")]


@pytest.mark.timeout(120)
def test_ctrl_c_during_download_changes_nothing(
    index: IndexServer, old_venv: Path, tmp_path: Path
) -> None:
    before = freeze(old_venv)
    plan = write_plan(tmp_path, make_plan())
    index.fault = Fault("slow", match="torch-2.4.1")
    index.serving_file.clear()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "envsetup", "install", "--yes", "--no-verify", "--plan-file", plan,
             "--python", str(old_venv), "--installer", "pip",
             "--index-url", index.index("cu121")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=hermetic_env(tmp_path), start_new_session=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert index.serving_file.wait(60)
        time.sleep(0.5)
        os.killpg(child.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = child.communicate(timeout=60)
    finally:
        index.fault = None
    assert child.returncode == 130, err
    assert "nothing was changed" in err.strip().splitlines()[-1]
    assert freeze(old_venv) == before
