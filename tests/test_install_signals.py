"""SIGTERM and SIGHUP while the installer writes files (a closed SSH session, ``timeout``,
``docker stop``): the installer's whole process group is stopped, every file is put back, the
stage is removed, and envsetup exits 143 / 129 after one line saying so. Real pip and real uv."""

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
from indexserver import IndexServer, companion_wheel, torch_wheel
from test_install import freeze, hermetic_env, make_plan, torch_in, tree, write_plan
from test_install_faults import _children


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("index")
    # ~100 MB in 1500 files, a man page and a script outside site-packages: installs slowly.
    torch_wheel(root / "cu121", "2.4.1+cu121", "12.1", bulk=1500, data=True)
    companion_wheel(root / "cu121", "torchvision", "0.19.1+cu121", "2.4.1")
    with IndexServer(root) as server:
        yield server


def group_alive(pgid: int) -> list[str]:
    """The processes still running in process group ``pgid`` (zombies aside)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            out.append(cmd)
    return out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGHUP, 129, "hung up (SIGHUP)")],
    ids=["TERM", "HUP"],
)
def test_signal_during_install_restores_every_file(
    installer: str, sig: int, code: int, said: str, index: IndexServer, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    py = make_venv(venv)
    old = torch_wheel(tmp_path / "w", "2.3.1+cu121", "12.1", data=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", str(old)], check=True,
                   env=hermetic_env(tmp_path))  # fmt: skip
    before, files = freeze(py), tree(venv)
    site = next((venv / "lib").glob("python*/site-packages"))
    plan = write_plan(tmp_path, make_plan())
    # uv copies from its cache instead of hard-linking, so that its writing can be caught.
    env = hermetic_env(tmp_path, UV_LINK_MODE="copy")
    child = subprocess.Popen(
        [sys.executable, "-m", "envsetup", "install", "--yes", "--no-verify", "--plan-file", plan,
         "--python", str(py), "--installer", installer, "--index-url", index.index("cu121")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    installer_pid = None
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if installer_pid is None:
            found = [pid for pid, cmd in _children(child.pid) if " pip install " in cmd]
            installer_pid = found[0] if found else None
        # The new torch's files are landing: that is when a signal hurts.
        if installer_pid is not None and any((site / "torch" / "lib").glob("blob*")):
            os.kill(child.pid, sig)
            break
        time.sleep(0.002)
    _, err = child.communicate(timeout=120)
    assert installer_pid is not None, err
    assert child.returncode == code, err
    said_lines = [ln for ln in err.splitlines() if ln.startswith("envsetup: ")]
    assert len(said_lines) == 1, err
    assert said_lines[0].startswith(f"envsetup: {said} while installing; ")
    assert "the environment was restored to its previous state" in said_lines[0]
    # pip freeze and every file as they were; no installer left; no stage, no snapshot.
    assert freeze(py) == before
    assert tree(venv) == files
    assert torch_in(py) == ("2.3.1+cu121", "12.1")
    assert group_alive(installer_pid) == []
    assert [p.name for p in (tmp_path / "cache" / "envsetup").iterdir()] == ["logs"]
    assert not [p for p in venv.iterdir() if p.name.startswith(".envsetup-snapshot-")]
    log = Path(said_lines[0].rsplit("(log: ", 1)[1].rstrip(")")).read_text()
    assert "# restoring the previous state" in log
