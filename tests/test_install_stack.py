"""``envsetup install PACKAGE...`` and ``envsetup plan PACKAGE...`` for real: the whole stack
resolved and installed by real uv and real pip into real venvs, from the two loopback indexes
of tests/stackindex.py (a PyTorch-like one, and a package-index-like one holding the trap:
plain torch builds), then guarded against a later ``pip install``.

pip reads the configuration files of the test alone, and still the venv's own site file (where
the guard lies): ``PIP_CONFIG_FILE`` names a file of the test's (which makes pip skip the user's
file and sets the default index), ``XDG_CONFIG_DIRS`` moves the global files away.
(``PIP_CONFIG_FILE=/dev/null`` would make pip read no file at all, the site file included.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import make_venv
from envsetup.guard import CONSTRAINTS_FILE, GUARD_FILE, LABEL
from stackindex import StackIndex, build_indexes, torch_build
from test_install import hermetic_env, tree
from test_install_faults import _children

BULK = 400  # 64 KiB files in the slow torch 2.5.1+cpu: long enough an install to stop it


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackIndex]:
    root = build_indexes(tmp_path_factory.mktemp("stack-install") / "root")
    slow = torch_build(root / "whl" / "cpu", "2.5.1+cpu", None)
    _add_bulk(slow, BULK)
    with StackIndex(root) as server:
        yield server


def _add_bulk(wheel: Path, count: int) -> None:
    """Add ``count`` files of random bytes under torch/lib/ to a wheel (RECORD kept right)."""
    import base64
    import hashlib
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    for i in range(count):
        entries[f"torch/lib/blob{i:05d}.bin"] = os.urandom(64 * 1024)
    rec = next(n for n in entries if n.endswith(".dist-info/RECORD"))
    lines = []
    for n, data in entries.items():
        if n != rec:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            lines.append(f"{n},sha256={digest.decode()},{len(data)}")
    entries[rec] = ("\n".join([*lines, f"{rec},,"]) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        for n, data in entries.items():
            zf.writestr(n, data)


def site_env(tmp: Path, index: StackIndex, **extra: str) -> dict[str, str]:
    """No configuration of this machine's; the test's own pip file (the default index is the
    package-index-like one), which leaves pip reading the venv's site file."""
    conf = tmp / "pip-test.conf"
    conf.write_text(f"[global]\nindex-url = {index.simple}\n")
    env = hermetic_env(tmp, **extra)
    env.update(
        PIP_CONFIG_FILE=str(conf),
        XDG_CONFIG_DIRS=str(tmp / "no-global"),
        UV_DEFAULT_INDEX=index.simple,
        ENVSETUP_TORCH_INDEX=index.whl,  # the PyTorch-like index stands in for the real one
    )
    return env


def envsetup(*args: str, env: dict[str, str], timeout: float = 300) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "envsetup", *args], capture_output=True, text=True, env=env,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def pip(py: Path, env: dict[str, str], *args: str) -> Any:
    return subprocess.run([str(py), "-m", "pip", *args], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip


def freeze(py: Path, env: dict[str, str]) -> str:
    res = pip(py, env, "freeze", "--all")
    assert res.returncode == 0, res.stderr
    return res.stdout


def torch_in(py: Path) -> list[str]:
    code = "import torch; print(torch.__version__, torch.version.cuda)"
    return subprocess.check_output([str(py), "-c", code], text=True).split()


def install(py: Path, env: dict[str, str], *args: str) -> Any:
    return envsetup("install", "--yes", "--no-verify", "--python", str(py), "--variant", "cpu",
                    *args, env=env)  # fmt: skip


@pytest.mark.timeout(300)
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_stack_installs_the_variant_build_and_the_guard_refuses_a_swap(
    installer: str, index: StackIndex, tmp_path: Path
) -> None:
    py = make_venv(tmp_path / "venv")
    env = site_env(tmp_path, index)
    # no --torch: libeq's own pin (torch==2.4.1) picks the build, from the PyTorch-like index
    cp = install(py, env, "--installer", installer, "--json", "libeq", "libnp")
    assert cp.returncode == 0, cp.stderr
    doc = json.loads(cp.stdout)
    assert doc["ok"] and doc["installer"] == installer
    locked = {p["name"]: p for p in doc["stack"]["packages"]}
    assert set(locked) >= {"torch", "libeq", "libnp", "numpy"}
    assert locked["torch"]["version"] == "2.4.1+cpu" and locked["torch"]["source"] == "pytorch"
    assert locked["numpy"]["source"] == "index" and not locked["numpy"]["requested"]
    assert torch_in(py) == ["2.4.1+cpu", "None"]  # the machine's variant, never the trap
    frozen = freeze(py, env)
    for line in ("torch==2.4.1+cpu", "libeq==1.0", "libnp==1.0", "numpy==1.26.4"):
        assert line in frozen.splitlines(), frozen  # by name and version: no direct URL
    assert doc["guard"]["packages"] == {"torch": "2.4.1+cpu"}
    prefix = py.parent.parent
    assert (prefix / GUARD_FILE).is_file() and (prefix / CONSTRAINTS_FILE).is_file()

    # A later plain pip install that would swap torch is refused; nothing changes.
    for args in (["torch==2.5.1"], ["--force-reinstall", "torch==2.4.1"], ["libx==1.2"]):
        res = pip(py, env, "install", *args)
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        assert f"The user requested (constraint) torch!={LABEL},==2.4.1+cpu" in out, out
        assert freeze(py, env) == frozen
    res = pip(py, env, "install", "-q", "libge")  # torch>=2.0: the installed build fits
    assert res.returncode == 0, res.stderr
    assert "torch==2.4.1+cpu" in freeze(py, env).splitlines()

    # envsetup itself lifts the guard to change the build, and sets it again for the new one.
    cp = install(py, env, "--installer", installer, "--torch", "2.5.1", "libge")
    assert cp.returncode == 0, cp.stderr
    assert torch_in(py) == ["2.5.1+cpu", "None"]
    assert "==2.5.1+cpu" in (prefix / CONSTRAINTS_FILE).read_text()
    assert "guarded: pip refuses to replace torch 2.5.1+cpu" in cp.stdout


@pytest.mark.timeout(120)
def test_a_torch_pin_no_build_fits_exits_4_with_the_chain(
    index: StackIndex, tmp_path: Path
) -> None:
    py = make_venv(tmp_path / "venv")
    env = site_env(tmp_path, index)
    before = tree(py.parent.parent)
    cp = install(py, env, "--torch", "2.4.1", "libx==1.2")
    assert cp.returncode == 4, cp.stderr
    (line,) = cp.stderr.strip().splitlines()
    assert line.startswith(
        "envsetup: libx 1.2 requires torch==2.6.0; no torch==2.6.0 build fits this machine "
        "(--torch ==2.4.1 asks for another)"
    ), line
    assert "libx 1.3 does not pin torch" not in line and "Traceback" not in cp.stderr
    assert tree(py.parent.parent) == before
    plan = envsetup("plan", "--python", str(py), "--torch", "2.4.1", "--variant", "cpu",
                    "--json", "libx==1.2", env=env)  # fmt: skip
    assert plan.returncode == 4 and json.loads(plan.stdout)["plan"] is None
    assert "libx 1.2 requires torch==2.6.0" in json.loads(plan.stdout)["error"]


def guarded_venv(installer: str, index: StackIndex, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    py = make_venv(tmp_path / "venv")
    env = site_env(tmp_path, index)
    cp = install(py, env, "--installer", installer, "--torch", "2.4.1", "libge")
    assert cp.returncode == 0, cp.stderr
    return py, env


GUARD_FILES = (GUARD_FILE, CONSTRAINTS_FILE, "pip.conf")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_stack_failing_mid_install_restores_every_file_and_the_guard(
    installer: str, index: StackIndex, tmp_path: Path
) -> None:
    py, env = guarded_venv(installer, index, tmp_path)
    prefix = py.parent.parent
    site = next(prefix.glob("lib/python*/site-packages"))
    (site / "libnp").write_text("not a directory\n")  # libnp's files cannot go in: it fails
    saved = [(prefix / n).read_bytes() for n in GUARD_FILES]
    before, frozen = tree(prefix), freeze(py, env)
    cp = install(py, env, "--installer", installer, "--torch", "2.5.1", "libge", "libnp")
    assert cp.returncode == 1, cp.stderr
    last = cp.stderr.strip().splitlines()[-1]
    assert last.startswith("envsetup: install failed (") and "libnp" in last, last
    assert "restored to its previous state" in last or "nothing was changed" in last, last
    assert [(prefix / n).read_bytes() for n in GUARD_FILES] == saved  # the guard as it was
    assert tree(prefix) == before
    assert freeze(py, env) == frozen and torch_in(py) == ["2.4.1+cpu", "None"]
    res = pip(py, env, "install", "torch==2.5.1")  # and it still refuses a swap
    assert res.returncode == 1 and LABEL in res.stdout + res.stderr


@pytest.mark.timeout(300)
def test_a_stack_stopped_mid_install_restores_every_file_and_the_guard(
    index: StackIndex, tmp_path: Path
) -> None:
    py, env = guarded_venv("pip", index, tmp_path)
    prefix = py.parent.parent
    site = next(prefix.glob("lib/python*/site-packages"))
    saved = [(prefix / n).read_bytes() for n in GUARD_FILES]
    before, frozen = tree(prefix), freeze(py, env)
    child = subprocess.Popen(
        [sys.executable, "-m", "envsetup", "install", "--yes", "--no-verify", "--python", str(py),
         "--variant", "cpu", "--installer", "pip", "--torch", "2.5.1", "libge", "libnp"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    stopped, deadline = False, time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline and not stopped:
        if any("--no-deps" in c for _, c in _children(child.pid)):  # the install step
            while not list(site.glob("torch/lib/blob*")) and time.monotonic() < deadline:
                time.sleep(0.005)
            lifted = not (prefix / GUARD_FILE).exists()  # the guard is off during the install
            child.send_signal(signal.SIGTERM)  # as `timeout` or `docker stop` would
            stopped = True
        time.sleep(0.005)
    _, err = child.communicate(timeout=120)
    assert stopped and lifted, err
    assert child.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("envsetup: terminated (SIGTERM) while installing; the environment "
                           "was restored to its previous state"), last  # fmt: skip
    assert [(prefix / n).read_bytes() for n in GUARD_FILES] == saved
    assert tree(prefix) == before
    assert freeze(py, env) == frozen and torch_in(py) == ["2.4.1+cpu", "None"]


@pytest.mark.timeout(180)
def test_no_guard_removes_it_and_leaves_pip_free(index: StackIndex, tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv")
    env = site_env(tmp_path, index)
    assert install(py, env, "--torch", "2.4.1", "libge").returncode == 0
    prefix = py.parent.parent
    assert (prefix / GUARD_FILE).is_file()
    cp = install(py, env, "--torch", "2.4.1", "--no-guard", "libnp")
    assert cp.returncode == 0, cp.stderr
    assert "guarded" not in cp.stdout
    assert not [p.name for p in prefix.iterdir() if p.name in (GUARD_FILE, CONSTRAINTS_FILE,
                                                               "pip.conf")]  # fmt: skip
    res = pip(py, env, "install", "--dry-run", "torch==2.5.1")
    assert res.returncode == 0 and "Would install torch-2.5.1" in res.stdout, res.stderr


@pytest.mark.timeout(180)
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_source_build_against_torch_comes_second_without_isolation(
    installer: str, index: StackIndex, tmp_path: Path
) -> None:
    py = make_venv(tmp_path / "venv")
    env = site_env(tmp_path, index)
    cp = install(py, env, "--installer", installer, "--torch", "2.4.1", "--json", "ext", "libnp")
    assert cp.returncode == 0, cp.stderr
    doc = json.loads(cp.stdout)
    assert [s["step"] for s in doc["steps"]] == ["install", "build"]
    build = doc["steps"][1]["argv"]
    assert "--no-build-isolation" in build and "--no-deps" in build
    (need,) = doc["stack"]["builds"]
    assert need["name"] == "ext" and need["against_torch"]
    frozen = freeze(py, env).splitlines()
    assert "ext==0.1" in frozen and "torch==2.4.1+cpu" in frozen and "libnp==1.0" in frozen
    # built against the torch installed first (an isolated build has none to import)
    code = "import ext; print(ext.BUILT_WITH_TORCH)"
    assert subprocess.check_output([str(py), "-c", code], text=True).strip() == "2.4.1+cpu"


@pytest.mark.timeout(180)
def test_dry_run_and_exports_show_the_whole_set(index: StackIndex, tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv")
    env = site_env(tmp_path, index)
    before = tree(py.parent.parent)
    cp = install(py, env, "--torch", "2.4.1", "--dry-run", "libnp", "libge")
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout
    assert "# the whole set, resolved by uv" in out
    assert f"#   torch 2.4.1+cpu  from the PyTorch index {index.whl}/cpu\n" in out, out
    assert "#   libnp 1.0        from the default index, asked for\n" in out
    assert "#   numpy 1.26.4     from the default index\n" in out
    assert "pip refuses to replace torch 2.4.1+cpu" in out
    cp = install(py, env, "--torch", "2.4.1", "--dry-run", "--json", "--installer", "pip", "libnp")
    doc = json.loads(cp.stdout)
    assert {p["name"] for p in doc["stack"]["packages"]} == {"torch", "libnp", "numpy"}
    assert doc["stack"]["resolver"] == "uv"  # uv resolves, pip installs its pins
    (stack_txt,) = [t for n, t in doc["files"].items() if n.endswith("stack.txt")]
    assert "torch==2.4.1+cpu --hash=sha256:" in stack_txt and "numpy==1.26.4 --hash" in stack_txt
    assert tree(py.parent.parent) == before  # a dry run changes nothing

    req = envsetup("plan", "--python", str(py), "--torch", "2.4.1", "--variant", "cpu",
                   "--export", "requirements", "libnp", env=env)  # fmt: skip
    assert req.returncode == 0, req.stderr
    lines = req.stdout.splitlines()
    assert lines[1:] == [f"--extra-index-url {index.whl}/cpu", "torch==2.4.1+cpu", "libnp"]
    profiles = []
    gpu = {"nvidia": {"driver_version": "535.104.05", "gpus": [{"compute_capability": "8.0"}]},
           "system": {"os": "linux", "arch": "x86_64"}}  # fmt: skip
    mac = {"system": {"os": "darwin", "arch": "arm64", "macos_version": "14.5"}}
    for name, machine in (("gpu.json", gpu), ("mac.json", mac)):
        prof = {"python": {"version": "3.11.7"}, **machine}
        (tmp_path / name).write_text(json.dumps(prof))
        profiles += ["--profile", str(tmp_path / name)]
    uv = envsetup("plan", *profiles, "--torch", "2.4.1", "--export", "uv", "libnp", env=env)
    assert uv.returncode == 0, uv.stderr
    assert '"torch==2.4.1+cu121; (sys_platform' in uv.stdout and '"libnp",' in uv.stdout
    assert f'url = "{index.whl}/cu121"' in uv.stdout and "explicit = true" in uv.stdout
