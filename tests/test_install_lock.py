"""One install per environment at a time, and a broken torch never "already installed".

Real installs of the real CPU torch wheel with uv, from a wheelhouse made by ``pip download``
(one module-wide uv cache keeps each install to seconds)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import TORCH_VERSION, make_venv, run_cli
from indexserver import IndexServer
from test_install import envsetup, hermetic_env

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real torch wheel and its dependencies in ``ROOT/cpu`` (a wheelhouse, and served as
    the PyTorch-like index for doctor's fix), and a uv cache the tests share."""
    root = tmp_path_factory.mktemp("lock-house")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", f"torch=={TORCH_VERSION}",
         "--only-binary=:all:", "-d", str(root / "cpu")],
        check=True, timeout=600,
    )  # fmt: skip
    with IndexServer(root) as server:
        yield root, server


def _env(tmp: Path, house: Any, **extra: str) -> dict[str, str]:
    root, _ = house
    return hermetic_env(tmp, UV_CACHE_DIR=str(root / "uv-cache"), **extra)


def _install_args(py: Path, house: Any) -> list[str]:
    root, _ = house
    return ["install", "--yes", "--variant", "cpu", "--torch", TORCH_VERSION, "--python",
            str(py), "--find-links", str(root / "cpu"), "--installer", "uv"]  # fmt: skip


def _spawn(args: list[str], env: dict[str, str], err: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "envsetup", *args], stdout=subprocess.PIPE,
        stderr=err.open("w"), stdin=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip


def _imports(py: Path) -> subprocess.CompletedProcess[str]:
    code = "import torch; print(torch.__version__, torch.ones(2).sum().item())"
    return subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120)


def _purelib(py: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.check_output([str(py), "-c", code], text=True).strip())


def _break(py: Path) -> None:
    """What two racing installs did: typing_extensions gone from under torch."""
    site = _purelib(py)
    gone = list(site.glob("typing_extensions*"))
    assert gone, list(site.iterdir())
    for p in gone:
        if p.is_dir():
            import shutil

            shutil.rmtree(p)
        else:
            p.unlink()
    assert _imports(py).returncode != 0


def _wait_for(path: Path, text: str, proc: subprocess.Popen[str], limit: float = 120) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path.read_text()!r}")


def test_two_installs_at_once_both_end_well(house: Any, tmp_path: Path) -> None:
    py = make_venv(tmp_path / "v", pip=False)
    env = _env(tmp_path, house)
    args = _install_args(py, house)
    procs = [_spawn(args, env, tmp_path / f"err{i}") for i in (1, 2)]
    outs = [p.communicate(timeout=500)[0] for p in procs]
    errs = [(tmp_path / f"err{i}").read_text() for i in (1, 2)]
    assert [p.returncode for p in procs] == [0, 0], (outs, errs)
    assert _imports(py).returncode == 0, _imports(py).stderr
    # One installed; the other waited, named the one it waited for, then found it installed.
    waited = [i for i in (0, 1) if "waiting for the envsetup install" in errs[i]]
    assert len(waited) == 1, errs
    other = procs[1 - waited[0]]
    assert f"pid {other.pid} on " in errs[waited[0]], errs
    assert "already installed" in outs[waited[0]], outs
    assert "installed into" in outs[1 - waited[0]], outs


_HOLDER = """
import sys, time
from envsetup.install.lock import hold
with hold(sys.argv[1], say=print):
    print("held", flush=True)
    time.sleep(600)
"""


def test_no_wait_names_the_holder_and_a_killed_holder_is_taken_over(
    house: Any, tmp_path: Path
) -> None:
    py = make_venv(tmp_path / "v", pip=False)
    env = _env(tmp_path, house)
    prefix = str(tmp_path / "v")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, prefix], stdout=subprocess.PIPE,
                              text=True, env=env)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # --no-wait: at once, exit 5, the holder named, nothing changed.
        busy = envsetup(*_install_args(py, house), "--no-wait", env=env)
        assert busy.returncode == 5, (busy.stdout, busy.stderr)
        lines = busy.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {holder.pid} on " in lines[0], busy.stderr
        assert "Traceback" not in busy.stderr
        assert _imports(py).returncode != 0  # torch not installed
        # A dry run takes no lock.
        dry = envsetup(*_install_args(py, house), "--dry-run", env=env)
        assert dry.returncode == 0, dry.stderr
        # An install waits for it; the holder is killed (its lock dies with it): it goes on.
        waiting = _spawn(_install_args(py, house), env, tmp_path / "err")
        _wait_for(tmp_path / "err", f"pid {holder.pid} on ", waiting)
        holder.kill()
        out = waiting.communicate(timeout=500)[0]
        assert waiting.returncode == 0, (out, (tmp_path / "err").read_text())
        assert "installed into" in out
    finally:
        holder.kill()
        holder.wait()
    assert _imports(py).returncode == 0
    # The lock lives in the environment; its holder record is gone with its holder.
    assert (tmp_path / "v" / ".envsetup-lock").is_dir()
    assert not (tmp_path / "v" / ".envsetup-lock" / "holder.json").exists()


def test_a_broken_torch_is_repaired_and_doctor_names_it(house: Any, tmp_path: Path) -> None:
    _, server = house
    py = make_venv(tmp_path / "v", pip=False)
    env = _env(tmp_path, house, ENVSETUP_TORCH_INDEX=server.url)
    first = envsetup(*_install_args(py, house), "--no-verify", env=env)
    assert first.returncode == 0, first.stderr
    _break(py)
    # The same install again: not "already installed", but the build installed again.
    again = envsetup(*_install_args(py, house), "--no-verify", env=env)
    assert again.returncode == 0, again.stderr
    assert "already installed" not in again.stdout
    assert "does not work" in again.stderr and "typing-extensions" in again.stderr
    assert _imports(py).returncode == 0, _imports(py).stderr
    # A second run, healthy now: nothing to do.
    third = envsetup(*_install_args(py, house), "--no-verify", env=env)
    assert third.returncode == 0 and "already installed" in third.stdout, third.stdout

    _break(py)
    doc = envsetup("doctor", "--python", str(py), "--json", env=env)
    found = {f["code"]: f for f in json.loads(doc.stdout)["findings"]}
    assert "torch-broken" in found, sorted(found)
    broken = found["torch-broken"]
    assert broken["severity"] == "error" and "typing-extensions" in broken["message"]
    fix = shlex.split(broken["fix"])
    assert fix[0] == "envsetup", fix
    done = envsetup(*fix[1:], env=env)  # the fix as doctor wrote it, against the local index
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert _imports(py).returncode == 0, _imports(py).stderr
    doc = envsetup("doctor", "--python", str(py), "--json", env=env)
    assert "torch-broken" not in {f["code"] for f in json.loads(doc.stdout)["findings"]}


def test_a_prefix_without_room_for_the_lock_locks_in_the_cache(tmp_path: Path) -> None:
    """Where the lock directory cannot be made in the prefix (a read-only or root-owned one;
    here its name is taken by a file, which stops root too), the lock lives in the user's
    cache, keyed by the prefix: every install into that prefix finds the same one."""
    prefix = tmp_path / "ro"
    prefix.mkdir()
    (prefix / ".envsetup-lock").write_text("not a directory")
    env = hermetic_env(tmp_path)
    code = (
        "import sys; from envsetup.install.lock import place; "
        "print(place(sys.argv[1]), place(sys.argv[1] + '/'), place(sys.argv[2]))"
    )
    out = subprocess.check_output([sys.executable, "-c", code, str(prefix), str(tmp_path)],
                                  env=env, text=True).split()  # fmt: skip
    assert out[0] == out[1], out
    assert Path(out[0]).parent == tmp_path / "cache" / "envsetup" / "locks", out
    assert out[2] == str(tmp_path / ".envsetup-lock"), out


def test_the_wizard_waits_for_the_lock_too(house: Any, tmp_path: Path) -> None:
    """The wizard, on a terminal, carries out the same transaction: it waits at the lock."""
    pexpect = pytest.importorskip("pexpect")
    py = make_venv(tmp_path / "v", pip=False)
    env = _env(tmp_path, house, TERM="xterm")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "v")],
                              stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        args = [a for a in _install_args(py, house) if a != "--yes"]
        child = pexpect.spawn(sys.executable, ["-m", "envsetup", *args, "--no-verify"], env=env,
                              encoding="utf-8", timeout=60, dimensions=(40, 160))  # fmt: skip
        for question in ("Install into which environment", "torch version", "Build",
                         "Also install", "Installer"):  # fmt: skip
            child.expect(question)
            child.send("\r")
        child.expect("Go ahead")
        child.send("y")
        child.expect(f"waiting for the envsetup install already changing .*pid {holder.pid} on ")
        holder.kill()
        child.expect("installed into", timeout=300)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        holder.kill()
        holder.wait()
    assert _imports(py).returncode == 0


def _dist(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    body = "\n\nRequires-Dist: not-a-header (the description)\n"
    (info / "METADATA").write_text("\n".join(lines) + body, encoding="utf-8")


def test_doctor_checks_torchs_requirements_with_the_targets_markers(tmp_path: Path) -> None:
    """What torch needs, and what that needs, at versions they accept, evaluated with the
    target's own markers: the requirements of another platform, of an extra not asked for,
    and those met are not named."""
    py = make_venv(tmp_path / "v", pip=False)
    site = _purelib(py)
    (site / "torch").mkdir()
    (site / "torch" / "version.py").write_text("__version__ = '2.13.0+cpu'\ncuda = None\n")
    (site / "torch" / "__init__.py").write_text("")
    _dist(site, "torch", "2.13.0+cpu", "filelock", "sympy>=1.13.3", "jinja2",
          'triton==3.5.0; sys_platform == "no-such-platform"', 'optree>=0.13; extra == "optree"',
          'typing-extensions>=4.10.0; python_version >= "3.8"')  # fmt: skip
    _dist(site, "filelock", "3.0.0")
    _dist(site, "sympy", "1.12", "mpmath>=1.1.0")
    _dist(site, "jinja2", "3.1.6", "MarkupSafe>=2.0")
    _dist(site, "typing_extensions", "4.16.0")
    doc = run_cli("doctor", "--python", str(py), "--json")
    found = {f["code"]: f for f in doc.json()["findings"]}
    assert "torch-broken" in found, sorted(found)
    said = found["torch-broken"]["message"]
    assert "torch needs sympy>=1.13.3, 1.12 installed" in said
    assert "torch needs markupsafe>=2.0 (required by jinja2), not installed" in said
    assert "torch needs mpmath>=1.1.0 (required by sympy), not installed" in said
    for quiet in ("triton", "optree", "typing-extensions", "filelock", "not-a-header"):
        assert quiet not in said, said
    assert found["torch-broken"]["fix"].endswith("--torch 2.13.0 --variant cpu --yes")
