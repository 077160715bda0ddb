"""End to end with the real CPU torch wheel, and the wizard driven through a real terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import TORCH_VERSION, make_venv
from indexserver import IndexServer, write_simple_tree
from test_install import PY, envsetup, freeze, hermetic_env, make_plan, write_plan


@pytest.fixture(scope="module")
def cpu_index(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real torch wheel and its dependencies (from this machine's pip cache) as /cpu/."""
    root = tmp_path_factory.mktemp("cpu-index")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", f"torch=={TORCH_VERSION}",
         "--only-binary=:all:", "-d", str(root / "cpu")],
        check=True, timeout=600,
    )  # fmt: skip
    with IndexServer(root) as server:
        yield server


@pytest.mark.timeout(600)
def test_real_cpu_torch_end_to_end(cpu_index: IndexServer, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    cp = envsetup(
        "install", "--yes", "--variant", "cpu", "--torch", TORCH_VERSION, "--venv", str(venv),
        "--index-url", cpu_index.index("cpu"), env=hermetic_env(tmp_path),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    code = "import torch; print(torch.__version__, torch.version.cuda, torch.ones(2).sum().item())"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    assert out == [f"{TORCH_VERSION}+cpu", "None", "2.0"]


@pytest.mark.timeout(600)
def test_real_cpu_torch_from_a_directory_mirror(cpu_index: IndexServer, tmp_path: Path) -> None:
    """The PyTorch CPU index mirrored as a PEP 503 tree of index.html files, read through
    file:// by real pip: the real torch wheel and every dependency from the directory."""
    url = write_simple_tree(cpu_index.root / "cpu", tmp_path / "mirror" / "cpu")
    py = make_venv(tmp_path / "venv")
    cp = envsetup(
        "install", "--yes", "--torch", TORCH_VERSION, "--variant", "cpu", "--python", str(py),
        "--installer", "pip", "--index-url", url, env=hermetic_env(tmp_path),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert f"torch {TORCH_VERSION}+cpu (cpu) installed into {py} with pip" in cp.stdout
    assert f"torch=={TORCH_VERSION}+cpu" in freeze(py)
    log = next((tmp_path / "cache" / "envsetup" / "logs").iterdir()).read_text()
    assert f"--index-url {url} torch=={TORCH_VERSION}+cpu" in log  # the one source pip saw


def _spawn(args: list[str], env: dict[str, str]) -> Any:
    pexpect = pytest.importorskip("pexpect")
    return pexpect.spawn(
        sys.executable, ["-m", "envsetup", *args], env=env, encoding="utf-8", timeout=60,
        dimensions=(40, 160),
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_wizard_through_a_terminal(tmp_path: Path) -> None:
    from indexserver import companion_wheel, torch_wheel

    root = tmp_path / "idx"
    torch_wheel(root / "cu121", "2.4.1+cu121", "12.1")
    companion_wheel(root / "cu121", "torchvision", "0.19.1+cu121", "2.4.1")
    with IndexServer(root) as server:
        plan = write_plan(tmp_path, make_plan())
        venv = tmp_path / "wiz-venv"
        env = hermetic_env(tmp_path, TERM="xterm")
        child = _spawn(
            ["install", "--no-verify", "--plan-file", plan, "--installer", "pip",
             "--index-url", server.index("cu121")], env,
        )  # fmt: skip
        child.expect("Install into which environment")
        child.send("\x1b[B\x1b[B")  # down twice: a new venv at a path
        child.send("\r")
        child.expect("Path of the new venv")
        child.send("\x15" + str(venv) + "\r")  # Ctrl-U clears the default
        child.expect("torch version")
        child.send("\r")
        child.expect("Build")
        child.send("\r")
        child.expect("Also install")
        child.send("\r")
        child.expect("Installer")
        child.send("\r")
        child.expect("envsetup will run")
        child.expect("Go ahead")
        child.send("y")
        child.expect("installed into", timeout=120)
        child.expect(pexpect_eof())
        child.close()
        assert child.exitstatus == 0
    assert "torch==2.4.1+cu121" in freeze(venv / "bin" / "python")


@pytest.mark.timeout(180)
def test_wizard_asks_for_a_mirror_when_the_index_fails(tmp_path: Path) -> None:
    import socket

    from indexserver import companion_wheel, torch_wheel

    root = tmp_path / "idx"
    torch_wheel(root / "cu121", "2.4.1+cu121", "12.1")
    companion_wheel(root / "cu121", "torchvision", "0.19.1+cu121", "2.4.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/cu121"
    py = make_venv(tmp_path / "venv")
    with IndexServer(root) as server:
        plan = write_plan(tmp_path, make_plan())
        child = _spawn(
            ["install", "--no-verify", "--plan-file", plan, "--python", str(py),
             "--installer", "pip", "--index-url", dead], hermetic_env(tmp_path, TERM="xterm"),
        )  # fmt: skip
        child.expect("Install into which environment")
        child.send("\r")  # this one (--python)
        for prompt in ("torch version", "Build", "Also install", "Installer"):
            child.expect(prompt)
            child.send("\r")
        child.expect("connection refused")
        child.expect("Mirror")
        child.send(server.index("cu121") + "\r")
        child.expect("envsetup will run")
        child.expect("Go ahead")
        child.send("y")
        child.expect("installed into", timeout=120)
        child.expect(pexpect_eof())
        child.close()
        assert child.exitstatus == 0
    assert "torch==2.4.1+cu121" in freeze(py)


def pexpect_eof() -> Any:
    import pexpect

    return pexpect.EOF


@pytest.mark.timeout(60)
def test_wizard_ctrl_c_exits_130_with_nothing_changed(tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv")
    before = freeze(py)
    plan = write_plan(tmp_path, make_plan())
    child = _spawn(["install", "--plan-file", plan, "--python", str(py)], hermetic_env(tmp_path))
    child.expect("Install into which environment")
    child.sendintr()
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 130
    assert freeze(py) == before
    assert PY  # the plan was for this interpreter
