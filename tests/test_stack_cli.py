"""``envsetup plan PACKAGE...`` run for real, resolved by the real uv (envsetup depends on it)
against the loopback indexes of tests/stackindex.py: with no uv on PATH, for another machine's
Python and platform, from paths, URLs, git and ``-e`` requirements, with a resolver failure that
must show uv's own report, offline, and with a requirements file that names nothing.

None of this machine's pip or uv configuration is read (tests/test_install.py ``hermetic_env``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import make_venv
from stackindex import StackIndex, build_indexes, library
from test_install import hermetic_env

OTHER_PY = "3.12.4" if sys.version_info[:2] != (3, 12) else "3.11.9"
BROKEN = "the broken sdist's own failure"

# A PEP 517 backend with no build requirements: metadata, a wheel, an editable wheel.
LOCAL_BACKEND = """
import base64, hashlib, os, zipfile
NAME, VERSION, REQUIRES = {name!r}, {version!r}, {requires!r}
DIST = NAME.replace("-", "_")
META = "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (NAME, VERSION) + "".join(
    "Requires-Dist: %s\\n" % r for r in REQUIRES)

def get_requires_for_build_wheel(config_settings=None):
    return []

get_requires_for_build_editable = get_requires_for_build_wheel

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    {fail}
    info = os.path.join(metadata_directory, "%s-%s.dist-info" % (DIST, VERSION))
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(META)
    return os.path.basename(info)

prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel

def _wheel(wheel_directory, files):
    info = "%s-%s.dist-info" % (DIST, VERSION)
    files = dict(files)
    files[info + "/METADATA"] = META.encode()
    files[info + "/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    rec = []
    for arc, data in files.items():
        d = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rec.append("%s,sha256=%s,%d" % (arc, d, len(data)))
    rec.append(info + "/RECORD,,")
    files[info + "/RECORD"] = ("\\n".join(rec) + "\\n").encode()
    name = "%s-%s-py3-none-any.whl" % (DIST, VERSION)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for arc, data in files.items():
            zf.writestr(arc, data)
    return name

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {{DIST + "/__init__.py": b"WHERE = 'wheel'\\n"}})

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    here = os.path.dirname(os.path.abspath(__file__))
    return _wheel(wheel_directory, {{DIST + ".pth": (here + "\\n").encode()}})
"""


def project(
    where: Path, name: str, version: str = "0.1", requires: tuple[str, ...] = (), fail: str = ""
) -> Path:
    """A local project directory built by an in-tree backend (its metadata is not static:
    Metadata 2.1 in the backend, nothing in pyproject's [project] but the name)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "_backend"\nbackend-path = ["."]\n'
        f'[project]\nname = "{name}"\ndynamic = ["version", "dependencies"]\n'
    )
    pkg = where / name.replace("-", "_")
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("WHERE = 'tree'\n")
    raise_line = f"raise RuntimeError({fail!r})" if fail else "pass"
    (where / "_backend.py").write_text(
        LOCAL_BACKEND.format(name=name, version=version, requires=list(requires), fail=raise_line)
    )
    return where


def broken_sdist(dest: Path, name: str, version: str) -> Path:
    """An sdist whose metadata must be built (Metadata 2.1: not static) and whose build fails,
    as a package that needs a compiler this machine lacks."""
    src = project(dest.parent / f"src-{name}", name, version, fail=BROKEN)
    (src / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    path = dest / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for f in sorted(p for p in src.iterdir() if p.is_file()):
            data = f.read_bytes()
            info = tarfile.TarInfo(f"{name}-{version}/{f.name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackIndex]:
    root = build_indexes(tmp_path_factory.mktemp("stack-cli") / "root")
    broken_sdist(root / "simple", "broken", "0.1")
    with StackIndex(root) as server:
        yield server


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def no_uv_path() -> str:
    """PATH without any uv: envsetup must find its own dependency's binary."""
    keep = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    keep = [p for p in keep if not (Path(p) / "uv").exists() and not (Path(p) / "uv.exe").exists()]
    return os.pathsep.join(keep)


def env_for(tmp: Path, simple: str, whl: str) -> dict[str, str]:
    return hermetic_env(
        tmp,
        UV_DEFAULT_INDEX=simple,
        PIP_INDEX_URL=simple,
        ENVSETUP_TORCH_INDEX=whl,
        PATH=no_uv_path(),
    )


def envsetup(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "envsetup", *args], capture_output=True, text=True, env=env,
        timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd,
    )  # fmt: skip


def plan(env: dict[str, str], *args: str, cwd: Path | None = None) -> Any:
    return envsetup("plan", "--torch", "2.4.1", "--variant", "cpu", *args, env=env, cwd=cwd)


def packages(cp: Any) -> dict[str, dict[str, Any]]:
    assert cp.returncode == 0, cp.stderr
    return {p["name"]: p for p in json.loads(cp.stdout)["stack"]["packages"]}


def test_a_plan_for_another_machines_python_and_platform_needs_no_interpreter(
    index: StackIndex, tmp_path: Path
) -> None:
    other = tmp_path / "gpu-node.json"
    other.write_text(json.dumps({
        "system": {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.31"},
        "python": {"version": OTHER_PY, "executable": "/usr/bin/python3"},
    }))  # fmt: skip
    env = env_for(tmp_path, index.simple, index.whl)
    cp = plan(env, "--profile", str(other), "--json", "libnp")
    got = packages(cp)
    doc = json.loads(cp.stdout)["stack"]
    tag = "cp" + "".join(OTHER_PY.split(".")[:2])
    assert f"-{tag}-{tag}-" in got["torch"]["url"], got["torch"]  # the other Python's wheel
    assert set(got) == {"torch", "libnp", "numpy"}
    assert doc["python"] == f"Python {OTHER_PY} on x86_64-manylinux_2_31"
    argv = doc["command"]
    assert argv[argv.index("--python-platform") + 1] == "x86_64-manylinux_2_31"
    assert argv[argv.index("--python-version") + 1] == OTHER_PY
    assert doc["resolver"] == "uv" and Path(argv[0]).name.startswith("uv")


def test_path_url_and_editable_requirements_go_to_uv(index: StackIndex, tmp_path: Path) -> None:
    proj = project(tmp_path / "work" / "localproj", "localproj", "0.3", ("libnp",))
    wheel = library(tmp_path / "wheels", "libwhl", "1.0", ["libge"])
    req = tmp_path / "work" / "requirements.txt"
    req.write_text(f"-e ./localproj\nlibwhl @ {wheel.as_uri()}\n")
    env = env_for(tmp_path, index.simple, index.whl)
    cp = plan(env, "--json", "-r", str(req))
    got = packages(cp)
    assert got["localproj"]["source"] == "url" and got["localproj"]["editable"] is True
    (pip_argv,) = json.loads(cp.stdout)["commands"]["pip"]  # what to run by hand: the same set
    assert pip_argv[pip_argv.index("-e") + 1] == str(proj.resolve())
    assert f"libwhl @ {wheel.as_uri()}" in pip_argv
    assert got["localproj"]["url"] == proj.resolve().as_uri()
    assert got["libwhl"]["source"] == "url" and got["libwhl"]["url"] == wheel.as_uri()
    assert "numpy" in got and "libge" in got  # the dependencies of both, from the index
    # an unnamed wheel path, from the directory the command runs in
    got = packages(plan(env, "--json", f"wheels/{wheel.name}", cwd=tmp_path))
    assert got["libwhl"]["url"] == wheel.resolve().as_uri()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_git_requirement_goes_to_uv(index: StackIndex, tmp_path: Path) -> None:
    repo = project(tmp_path / "repo", "gitproj", "0.2", ("libge",))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.check_output([*git[:3], "rev-parse", "HEAD"], text=True).strip()
    env = env_for(tmp_path, index.simple, index.whl)
    got = packages(plan(env, "--json", f"git+{repo.as_uri()}"))
    assert got["gitproj"]["source"] == "url" and got["gitproj"]["url"].endswith(f"@{head}")
    assert "libge" in got


def test_a_path_of_torchs_family_is_refused_in_one_line(tmp_path: Path) -> None:
    project(tmp_path / "mytorch", "torch", "9.0")
    cp = plan(hermetic_env(tmp_path), "./mytorch", cwd=tmp_path)
    assert cp.returncode == 2, cp
    (line,) = cp.stderr.strip().splitlines()
    assert "./mytorch is torch, of torch's family" in line and "--torch and --variant" in line


def test_a_resolver_failure_names_the_package_and_shows_uvs_report(
    index: StackIndex, tmp_path: Path
) -> None:
    env = env_for(tmp_path, index.simple, index.whl)
    cp = plan(env, "libnp", "broken")
    assert cp.returncode == 1, cp
    err = cp.stderr
    assert "libnp, broken with torch 2.4.1+cpu" in err, err
    assert "broken==0.1" in err and BROKEN in err, err  # uv's own lines, with the build's error
    assert "See above" not in err


def test_offline_a_long_requirements_file_fails_at_once_naming_the_index(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    big = tmp_path / "requirements.txt"
    big.write_text("".join(f"package-{i:05d}>=1.0\n" for i in range(20000)))
    env = env_for(tmp_path, f"{dead}/simple", f"{dead}/whl")
    cp = plan(env, "-r", str(big))  # before: past 120 s
    assert cp.returncode == 1, cp
    assert f"cannot read the index {dead}/simple" in cp.stderr, cp.stderr
    assert "Connection refused" in cp.stderr or "os error" in cp.stderr, cp.stderr


def test_a_requirements_file_naming_nothing_plans_torch_alone(tmp_path: Path) -> None:
    empty = tmp_path / "requirements.txt"
    empty.write_text("# nothing yet\n\n-c constraints.txt\n")
    (tmp_path / "constraints.txt").write_text("numpy<2\n")
    cp = plan(hermetic_env(tmp_path), "--json", "-r", str(empty))
    assert cp.returncode == 0, cp
    doc = json.loads(cp.stdout)
    assert "stack" not in doc and doc["plan"]["torch"] == "2.4.1"
    assert cp.stderr.strip() == "envsetup: the requirements name no package: torch alone"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_local_project_and_a_wheel_url_are_installed_with_the_stack(
    index: StackIndex, tmp_path: Path, installer: str
) -> None:
    project(tmp_path / "work" / "localproj", "localproj", "0.3", ("libnp",))
    wheel = library(tmp_path / "wheels", "libwhl", "1.0")
    req = tmp_path / "work" / "requirements.txt"
    req.write_text(f"-e ./localproj\nlibwhl @ {wheel.as_uri()}\n")
    py = make_venv(tmp_path / "venv")
    env = env_for(tmp_path, index.simple, index.whl)
    cp = envsetup("install", "--yes", "--no-verify", "--python", str(py), "--torch", "2.4.1",
                  "--variant", "cpu", "--installer", installer, "-r", str(req), env=env,
                  timeout=280)  # fmt: skip
    assert cp.returncode == 0, cp
    code = "import localproj, libwhl, libnp, torch; print(localproj.__file__, torch.__version__)"
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True)
    where, version = out.stdout.split()
    assert Path(where).parent.parent == (tmp_path / "work" / "localproj").resolve()  # -e
    assert version == "2.4.1+cpu"


def test_the_index_pip_is_set_to_is_the_resolves_default_index(
    index: StackIndex, tmp_path: Path
) -> None:
    # pip's setting alone (no UV_*): uv, which reads no pip setting, must resolve from it too
    env = hermetic_env(tmp_path, PIP_INDEX_URL=index.simple, ENVSETUP_TORCH_INDEX=index.whl)
    got = packages(plan(env, "--json", "libnp"))
    assert got["libnp"]["url"].startswith(f"{index.url}/files/simple/")
    assert set(got) == {"torch", "libnp", "numpy"}


def test_exports_carry_paths_and_urls_or_say_what_they_need(
    index: StackIndex, tmp_path: Path
) -> None:
    proj = project(tmp_path / "localproj", "localproj", "0.3")
    env = env_for(tmp_path, index.simple, index.whl)
    cp = plan(env, "--export", "requirements", "libnp", "./localproj", cwd=tmp_path)
    assert cp.returncode == 0, cp
    assert cp.stdout.splitlines()[-2:] == ["libnp", str(proj.resolve())]
    cp = plan(env, "--export", "uv", "./localproj", cwd=tmp_path)
    assert cp.returncode == 2, cp
    assert cp.stderr.strip() == (
        f"envsetup: --export uv: {proj.resolve()} has no name, which a pyproject dependency "
        "needs: write it as NAME @ URL (file:///path for a local project)"
    )


class SlowIndex(StackIndex):
    """The same indexes, numpy's page answered after 1.5 s: a resolve that takes over a second."""

    def _get(self, h: Any) -> None:
        if h.path.rstrip("/").endswith("/simple/numpy"):
            time.sleep(1.5)
        super()._get(h)


def test_a_resolve_over_a_second_shows_its_progress(index: StackIndex, tmp_path: Path) -> None:
    with SlowIndex(index.root) as slow:
        env = env_for(tmp_path, slow.simple, slow.whl)
        cp = plan(env, "--json", "libnp")  # stderr is not a terminal: one line at the end
        assert cp.returncode == 0, cp
        assert re.fullmatch(
            r"envsetup: resolved libnp with torch for \S+ \(uv\) in \d+\.\d s\n", cp.stderr
        ), cp.stderr
        pexpect = pytest.importorskip("pexpect")
        env["UV_CACHE_DIR"] = str(tmp_path / "cold")  # numpy's page asked for again
        child = pexpect.spawn(
            sys.executable, ["-m", "envsetup", "plan", "--torch", "2.4.1", "--variant", "cpu",
                             "libnp"], env=env, encoding="utf-8", timeout=120, dimensions=(24, 120),
        )  # fmt: skip
        child.expect(r"resolving libnp with torch for \S+ \(uv\)")  # a status on the terminal
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
