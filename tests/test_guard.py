"""The guard, with real pip and real uv in real venvs: a tiny torch installed by pip from a
loopback PyTorch-like index, guarded, and later installs that would swap it."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_venv
from envsetup.compat import load_table
from envsetup.detect.guard import probe_guard
from envsetup.diagnose import diagnose
from envsetup.guard import (
    CONSTRAINTS_FILE,
    GUARD_FILE,
    LABEL,
    lift_guard,
    read_guard,
    remove_guard,
    write_guard,
)
from envsetup.install.backends.uv import find_uv
from envsetup.plan import Request
from envsetup.profile import Profile
from envsetup.resolve import resolve
from stackindex import FROZEN, StackIndex, build_indexes

CPU = {"system": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.11.7"}}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackIndex]:
    root = build_indexes(tmp_path_factory.mktemp("guard") / "root")
    with StackIndex(root) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A realistic pip configuration: PIP_CONFIG_FILE names a file of our own that sets a
    [global] constraint (as this machine's /etc/xdg/pip/pip.conf does): pip then skips the
    user's file, still reads the global files, the venv's site file, and this one."""
    for k in list(os.environ):
        if k.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(k)
    (tmp_path / "global-constraints.txt").write_text("libnp<0\n")
    conf = tmp_path / "global.conf"
    conf.write_text(f"[global]\nconstraint = {tmp_path / 'global-constraints.txt'}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    return dict(os.environ)


def pip(py: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(py), "-m", "pip", *args, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def freeze(py: Path) -> str:
    return pip(py, "freeze", "--all").stdout


@pytest.fixture(scope="module")
def torch_env(tmp_path_factory: pytest.TempPathFactory, index: StackIndex) -> Path:
    """One venv with torch 2.4.1+cpu and torchvision installed by real pip from the
    PyTorch-like index (PIP_CONFIG_FILE=/dev/null: none of this machine's configuration)."""
    py = make_venv(tmp_path_factory.mktemp("guard-venv") / "venv")
    res = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--index-url", f"{index.whl}/cpu",
         "torch==2.4.1", "torchvision==0.19.1"],
        capture_output=True, text=True, timeout=300,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
             "PIP_CONFIG_FILE": os.devnull},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return py.parent.parent


def venv_with_torch(tmp_path: Path, torch_env: Path) -> Path:
    """A copy of that venv for one test (a venv's prefix is where its python lies)."""
    shutil.copytree(torch_env, tmp_path / "venv", symlinks=True)
    return tmp_path / "venv" / "bin" / "python"


def plan(variant: str = "cpu") -> object:
    req = Request(torch="2.4.1", variant=variant, vision=True, index_base="http://mirror/whl")
    return resolve(Profile.from_dict(CPU), req, load_table(FROZEN))


def test_pip_refuses_a_swap_and_names_envsetup(
    tmp_path: Path, index: StackIndex, env: dict[str, str], torch_env: Path
) -> None:
    py = venv_with_torch(tmp_path, torch_env)
    guard = write_guard(py, plan())
    assert guard.packages == {"torch": "2.4.1+cpu", "torchvision": "0.19.1+cpu"}
    prefix = Path(guard.prefix)
    cons = (prefix / CONSTRAINTS_FILE).read_text()
    assert f"torch!={LABEL},==2.4.1+cpu" in cons and cons.startswith("# Written by envsetup")
    shown = pip(py, "config", "list").stdout
    assert (
        f"install.constraint='{prefix / CONSTRAINTS_FILE} {tmp_path}/global-constraints.txt'"
        in (shown)
    ), shown  # the global constraint is kept beside ours
    before = freeze(py)
    for args in (
        ["torch==2.5.1"],  # another version from the package index
        ["--force-reinstall", "torch==2.4.1"],  # the plain build of the same version (the trap)
        ["torchvision==0.19.1", "--force-reinstall"],  # a companion swap
    ):
        res = pip(py, "install", "--index-url", index.simple, *args)
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        assert "The user requested (constraint) torch" in out or "torchvision" in out, out
        assert "pinned.by.envsetup.to.change.run.envsetup.install" in out, out
        assert freeze(py) == before
    res = pip(py, "install", "-q", "--index-url", index.simple, "libge")  # needs torch>=2.0: fine
    assert res.returncode == 0, res.stderr
    assert "libge==1.0" in freeze(py) and "torch==2.4.1+cpu" in freeze(py)
    res = pip(py, "install", "--index-url", index.simple, "libnp")  # the global cap holds
    assert res.returncode == 1 and "libnp<0" in res.stdout + res.stderr

    # uv reads no configuration in the environment: with UV_CONSTRAINT it refuses too ...
    uv = find_uv()
    assert uv is not None
    base = [uv, "pip", "install", "--python", str(py), "--index-url", index.simple]
    res = subprocess.run([*base, "torch==2.5.1"], capture_output=True, text=True,
                         env={**env, "UV_CONSTRAINT": str(prefix / CONSTRAINTS_FILE)})  # fmt: skip
    assert res.returncode != 0 and "torch" in res.stderr, res.stderr
    assert "torch==2.4.1+cpu" in freeze(py)
    # ... and without it, swaps: doctor names the swap
    res = subprocess.run([*base, "torch==2.5.1"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    from envsetup.detect import detect_profile

    prof = detect_profile(str(py))
    assert prof.guard is not None and prof.guard.active is True
    (f,) = [f for f in diagnose(prof) if f.code == "torch-replaced"]
    assert f.severity == "error" and "torch 2.5.1 (recorded 2.4.1+cpu)" in f.message
    assert f.fix is not None and "--torch 2.4.1 --variant cpu" in f.fix


def test_lift_guard_restores_on_failure_and_resets_after(
    tmp_path: Path, index: StackIndex, env: dict[str, str], torch_env: Path
) -> None:
    py = venv_with_torch(tmp_path, torch_env)
    write_guard(py, plan())
    prefix = Path(read_guard(py).prefix)  # type: ignore[union-attr]
    files = [prefix / GUARD_FILE, prefix / CONSTRAINTS_FILE, prefix / "pip.conf"]
    saved = [f.read_bytes() for f in files]
    with pytest.raises(RuntimeError), lift_guard(py, plan("cu121")) as old:
        assert old is not None and old.packages["torch"] == "2.4.1+cpu"
        assert not (prefix / GUARD_FILE).exists()
        assert CONSTRAINTS_FILE not in pip(py, "config", "list").stdout
        raise RuntimeError("the install failed")
    assert [f.read_bytes() for f in files] == saved  # the old guard, byte for byte

    with lift_guard(py, plan("cu121")):
        res = pip(py, "install", "-q", "--force-reinstall", "--no-deps", "--index-url",
                  f"{index.whl}/cu121", "torch==2.4.1", "torchvision==0.19.1")  # fmt: skip
        assert res.returncode == 0, res.stderr
    g = read_guard(prefix)
    assert g is not None and g.packages["torch"] == "2.4.1+cu121" and g.variant == "cu121"
    res = pip(py, "install", "--index-url", f"{index.whl}/cpu", "--force-reinstall", "torch")
    assert res.returncode == 1 and "==2.4.1+cu121" in res.stdout + res.stderr

    with lift_guard(py, None, guard=False):  # --no-guard: nothing is left
        pass
    assert read_guard(prefix) is None and not (prefix / "pip.conf").exists()


def test_an_existing_site_config_is_merged_and_put_back(
    tmp_path: Path, index: StackIndex, env: dict[str, str], torch_env: Path
) -> None:
    py = venv_with_torch(tmp_path, torch_env)
    prefix = Path(subprocess.check_output([str(py), "-c", "import sys; print(sys.prefix)"],
                                          text=True).strip())  # fmt: skip
    (prefix / "mine.txt").write_text("libge<0\n")
    original = f"[global]\ntimeout = 30\n\n[install]\nconstraint = {prefix / 'mine.txt'}\n"
    (prefix / "pip.conf").write_text(original)
    write_guard(py, plan())
    conf = configparser.RawConfigParser()
    conf.read(prefix / "pip.conf")
    assert conf.get("global", "timeout") == "30"
    assert conf.get("install", "constraint").split() == [
        str(prefix / CONSTRAINTS_FILE),
        str(prefix / "mine.txt"),  # the site value, which pip uses over the global one
    ]
    res = pip(py, "install", "--index-url", index.simple, "libge")
    assert res.returncode == 1 and "libge<0" in res.stdout + res.stderr  # the user's still holds
    assert remove_guard(py) is True
    conf = configparser.RawConfigParser()
    conf.read(prefix / "pip.conf")
    assert conf.get("install", "constraint") == str(prefix / "mine.txt")
    assert conf.get("global", "timeout") == "30"
    assert not (prefix / CONSTRAINTS_FILE).exists() and not (prefix / GUARD_FILE).exists()


def test_probe_reads_or_explains_the_record(tmp_path: Path) -> None:
    assert probe_guard(str(tmp_path)) is None
    (tmp_path / GUARD_FILE).write_text("[1, 2]")
    g = probe_guard(str(tmp_path))
    assert g is not None and "not envsetup's record" in g.unknown["record"]
    rec = {"packages": {"torch": "2.4.1+cu121"}, "variant": "cu121", "builds": ["ext"]}
    (tmp_path / GUARD_FILE).write_text(json.dumps(rec))
    g = probe_guard(str(tmp_path))
    assert g is not None and g.packages == {"torch": "2.4.1+cu121"} and g.builds == ("ext",)


def test_doctor_rules_from_the_record() -> None:
    base = {
        **CPU,
        "guard": {"path": "/v/envsetup-guard.json", "packages": {"torch": "2.4.1+cu121"},
                  "variant": "cu121", "builds": ["ext"], "active": True},
        "torch": {"version": "2.4.1+cu121", "cuda": "12.1",
                  "packages": [{"name": "torch", "version": "2.4.1+cu121"}]},
        "cuda": {"nvcc_version": "13.0.88"},
    }  # fmt: skip
    codes = {f.code: f for f in diagnose(Profile.from_dict(base))}
    assert "torch-replaced" not in codes
    f = codes["extension-toolkit-mismatch"]
    assert "nvcc is CUDA 13.0.88 but torch is built with CUDA 12.1" in f.message
    assert "ext compiles against torch" in f.message
    swapped = {**base, "torch": {"version": "2.4.1", "cuda": "12.1",
                                 "packages": [{"name": "torch", "version": "2.4.1"}]}}  # fmt: skip
    (f,) = [f for f in diagnose(Profile.from_dict(swapped)) if f.code == "torch-replaced"]
    assert "torch 2.4.1 (recorded 2.4.1+cu121)" in f.message


@pytest.mark.parametrize("where", ["my envs", 'Jörg\'s "envs"', "100% proj"])
def test_the_guard_works_on_any_path_for_pip_and_says_how_to_guard_uv(
    where: str,
    tmp_path: Path,
    index: StackIndex,
    env: dict[str, str],
    torch_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pip splits a configured constraint on whitespace and reads its files in the locale's
    encoding: a venv under ``~/my envs/`` once made every later pip command in it fail."""
    home = tmp_path / where
    home.mkdir()
    py = venv_with_torch(home, torch_env)
    # the global constraint in effect lies under a path with a space too: it is kept, whole
    cap = home / "global constraints.txt"
    cap.write_text("libnp<0\n")
    (tmp_path / "global.conf").write_text(f"[global]\nconstraint = {cap.as_uri()}\n")
    write_guard(py, plan())
    res = pip(py, "install", "-q", "--index-url", index.simple, "libge")
    assert res.returncode == 0, res.stdout + res.stderr  # pip still works in the environment
    res = pip(py, "install", "--index-url", index.simple, "torch==2.5.1")
    assert res.returncode == 1 and LABEL in res.stdout + res.stderr  # and still refuses a swap
    res = pip(py, "install", "--index-url", index.simple, "libnp")
    assert res.returncode == 1 and "libnp<0" in res.stdout + res.stderr  # the cap still holds

    from envsetup.detect import detect_profile

    monkeypatch.delenv("UV_CONSTRAINT", raising=False)
    prof = detect_profile(str(py))
    assert prof.guard is not None and prof.guard.active is True
    (f,) = [f for f in diagnose(prof) if f.code == "guard-pip-only"]
    assert f.severity == "info" and "uv" in f.message and f.fix is not None
    assert f.fix.startswith("export UV_CONSTRAINT=")
    # the fix, as a shell would run it, makes uv refuse the swap too, and the note goes away
    value = subprocess.run(
        ["sh", "-c", f'{f.fix} && printf %s "$UV_CONSTRAINT"'], capture_output=True, text=True
    ).stdout
    assert value.split() == [value] and value.endswith(CONSTRAINTS_FILE)
    uv = find_uv()
    assert uv is not None
    res = subprocess.run(
        [uv, "pip", "install", "--python", str(py), "--index-url", index.simple, "torch==2.5.1"],
        capture_output=True, text=True, env={**env, "UV_CONSTRAINT": value},
    )  # fmt: skip
    assert res.returncode != 0 and "torch" in res.stderr, res.stderr
    monkeypatch.setenv("UV_CONSTRAINT", value)
    assert "guard-pip-only" not in {f.code for f in diagnose(detect_profile(str(py)))}
    assert remove_guard(py) is True
    assert pip(py, "install", "-q", "--index-url", index.simple, "libge==1.0").returncode == 0
