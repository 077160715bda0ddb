"""Every mirror form (file:// directory indexes, http indexes, --find-links wheelhouses), torch
from its index alone, masked credentials, and an unreachable index answered in seconds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import make_venv
from envsetup.install.backends.uv import find_uv
from indexserver import IndexServer, companion_wheel, torch_wheel, write_simple_tree
from test_install import envsetup, freeze, hermetic_env, make_plan, torch_in, write_plan

INSTALLERS = ["pip", "uv"]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torch 2.3.1 and 2.4.1 (+cu121) with torchvision, as a flat directory."""
    d = tmp_path_factory.mktemp("wheels") / "cu121"
    for torch, vision in (("2.4.1", "0.19.1"), ("2.3.1", "0.18.1")):
        torch_wheel(d, f"{torch}+cu121", "12.1")
        companion_wheel(d, "torchvision", f"{vision}+cu121", torch)
    return d


@pytest.fixture(scope="module")
def index(wheels: Path) -> Iterator[IndexServer]:
    with IndexServer(wheels.parent) as server:
        yield server


def install(py: Path, tmp: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    plan = write_plan(tmp, make_plan())
    return envsetup("install", "--yes", "--no-verify", "--plan-file", plan, "--python", str(py),
                    *args, env=env or hermetic_env(tmp))  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize("installer", INSTALLERS)
def test_file_directory_mirror(installer: str, wheels: Path, tmp_path: Path) -> None:
    """A PEP 503 tree of index.html files, as pip reads a local mirror."""
    url = write_simple_tree(wheels, tmp_path / "mirror" / "cu121")
    assert url.startswith("file:///")
    py = make_venv(tmp_path / "venv")
    cp = install(py, tmp_path, "--installer", installer, "--index-url", url)
    assert cp.returncode == 0, cp.stderr
    assert torch_in(py) == ("2.4.1+cu121", "12.1")
    assert "torchvision==0.19.1+cu121" in freeze(py)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("installer", INSTALLERS)
def test_wheelhouse_alone_reads_no_index(
    installer: str, wheels: Path, index: IndexServer, tmp_path: Path
) -> None:
    py = make_venv(tmp_path / "venv")
    # The plan names an index that does not answer: with a wheelhouse, it is not read at all.
    plan = make_plan(index_url="http://127.0.0.1:9/cu121")
    path = write_plan(tmp_path, plan)
    seen = len(index.requests)
    cp = envsetup("install", "--yes", "--no-verify", "--json", "--plan-file", path, "--python",
                  str(py), "--installer", installer, "--find-links", str(wheels),
                  env=hermetic_env(tmp_path))  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert torch_in(py) == ("2.4.1+cu121", "12.1")
    argv = json.loads(cp.stdout)["commands"][-1]
    assert "--no-index" in argv and argv[argv.index("--find-links") + 1] == str(wheels)
    assert len(index.requests) == seen


@pytest.mark.timeout(180)
@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_index_and_a_wheelhouse(installer: str, tmp_path: Path) -> None:
    """--index-url and --find-links together: the pins from the index alone (the wheelhouse
    holds a higher build of the same torch), what they need from either."""
    from indexserver import build_wheel

    idx = tmp_path / "idx" / "cu121"
    torch_wheel(idx, "2.4.1+cu121", "12.1", requires=["tinydep"])
    companion_wheel(idx, "torchvision", "0.19.1+cu121", "2.4.1")
    house = _other_build(tmp_path)
    build_wheel(house, "tinydep", "1.0", files={"tinydep/__init__.py": b""})
    py = make_venv(tmp_path / "venv")
    with IndexServer(tmp_path / "idx") as server:
        plan = replace(make_plan(index_url=server.index("cu121")), local_version=None)
        path = write_plan(tmp_path, plan)
        cp = envsetup("install", "--yes", "--no-verify", "--json", "--plan-file", path,
                      "--python", str(py), "--installer", installer, "--index-url",
                      server.index("cu121"), "--find-links", str(house),
                      env=hermetic_env(tmp_path))  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert torch_in(py) == ("2.4.1+cu121", "12.1")
    assert "tinydep==1.0" in freeze(py)
    steps = [s["step"] for s in json.loads(cp.stdout)["steps"]]
    assert steps == (["fetch", "install"] if installer == "pip" else ["install"])


def _other_build(tmp: Path) -> Path:
    """Another torch 2.4.1 build, which sorts above +cu121: what a configuration could offer."""
    d = tmp / "elsewhere"
    torch_wheel(d, "2.4.1+zz", "99.9")
    companion_wheel(d, "torchvision", "0.19.1+zz", "2.4.1")
    return d


@pytest.mark.timeout(180)
@pytest.mark.parametrize("installer", INSTALLERS)
def test_torch_comes_from_its_index_alone(
    installer: str, index: IndexServer, tmp_path: Path
) -> None:
    """The user's installer configuration names other sources holding a higher build of the
    same torch: the raw installer takes it; envsetup takes torch from the index it was given."""
    other = _other_build(tmp_path)
    other_url = write_simple_tree(other, tmp_path / "other-mirror")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {other}\nextra-index-url = {other_url}\n")
    env = hermetic_env(tmp_path, PIP_CONFIG_FILE=str(conf), UV_INDEX=other_url,
                       UV_FIND_LINKS=str(other))  # fmt: skip
    url = index.index("cu121")
    # A plan without a local label: the pins are public versions, as a plain index gives them.
    plan = replace(make_plan(index_url=url), local_version=None)
    path = write_plan(tmp_path, plan)
    raw = make_venv(tmp_path / "raw")
    uv = find_uv()
    assert uv is not None
    argv = (
        [str(raw), "-m", "pip", "install", "-q", "--index-url", url, "torch==2.4.1"]
        if installer == "pip"
        else [uv, "pip", "install", "-q", "--python", str(raw), "--index-url", url, "torch==2.4.1"]
    )
    subprocess.run(argv, check=True, env=env, capture_output=True)
    assert torch_in(raw) == ("2.4.1+zz", "99.9")  # the configuration would have supplied torch
    py = make_venv(tmp_path / "venv")
    cp = envsetup("install", "--yes", "--no-verify", "--plan-file", path, "--python", str(py),
                  "--installer", installer, "--index-url", url, env=env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert torch_in(py) == ("2.4.1+cu121", "12.1")
    assert "torchvision==0.19.1+cu121" in freeze(py)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("installer", INSTALLERS)
def test_credentials_are_masked_everywhere(
    installer: str, index: IndexServer, tmp_path: Path
) -> None:
    secret = "s3cret-t0ken"
    url = index.index("cu121").replace("http://", f"http://builder:{secret}@")
    py = make_venv(tmp_path / "venv")
    outputs = []
    for extra in (["--dry-run"], ["--dry-run", "--json"], ["--json"]):
        cp = install(py, tmp_path, "--installer", installer, "--index-url", url, *extra)
        assert cp.returncode == 0, cp.stderr
        outputs += [cp.stdout, cp.stderr]
    doc = json.loads(outputs[-2])
    assert "builder:***@" in " ".join(doc["commands"][-1])
    logs = list((tmp_path / "cache" / "envsetup" / "logs").iterdir())
    assert logs and all(p.stat().st_mode & 0o777 == 0o600 for p in logs)
    outputs += [p.read_text() for p in logs]
    assert "builder:***@" in outputs[-1]
    prefix = py.parent.parent  # the guard's record and constraints file keep no secret either
    outputs += [
        (prefix / n).read_text() for n in ("envsetup-guard.json", "envsetup-constraints.txt")
    ]
    assert not [o for o in outputs if secret in o]
    assert torch_in(py) == ("2.4.1+cu121", "12.1")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.mark.timeout(120)
@pytest.mark.parametrize("installer", INSTALLERS)
def test_unreachable_index_is_answered_in_seconds(
    installer: str, old: Path, tmp_path: Path
) -> None:
    """With the installer's own retries on (pip's default 5, uv's 3), the index check answers
    first, stops the installer, and says what to do."""
    before = freeze(old)
    env = {
        k: v for k, v in hermetic_env(tmp_path).items() if k not in ("PIP_RETRIES", "PIP_TIMEOUT")
    }
    url = f"http://127.0.0.1:{_closed_port()}/cu121"
    start = time.monotonic()
    cp = install(old, tmp_path, "--installer", installer, "--index-url", url, env=env)
    took = time.monotonic() - start
    assert cp.returncode == 1, cp.stderr
    last = cp.stderr.strip().splitlines()[-1]
    assert last.startswith(f"envsetup: cannot read the index {url}: connection refused; ")
    assert "--index-url" in last and "ENVSETUP_TORCH_INDEX" in last and "--find-links" in last
    assert "nothing was changed" in last or "restored to its previous state" in last
    assert took < 60, took  # not the installer's retries (a loose bound: no hang)
    assert freeze(old) == before


@pytest.mark.timeout(120)
def test_an_index_that_never_answers(old: Path, tmp_path: Path) -> None:
    """A host that takes the connection and says nothing (a firewall, a dead proxy)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/cu121"
        env = {
            k: v
            for k, v in hermetic_env(tmp_path).items()
            if k not in ("PIP_RETRIES", "PIP_TIMEOUT")
        }
        cp = install(old, tmp_path, "--installer", "pip", "--index-url", url, env=env)
    assert cp.returncode == 1, cp.stderr
    last = cp.stderr.strip().splitlines()[-1]
    assert "the server stopped answering" in last and "--index-url" in last, last


@pytest.mark.timeout(120)
@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_mirror_without_the_build_says_so(installer: str, wheels: Path, tmp_path: Path) -> None:
    only_torch = tmp_path / "partial"
    only_torch.mkdir()
    for w in wheels.glob("torch-*.whl"):
        os.link(w, only_torch / w.name)
    url = write_simple_tree(only_torch, tmp_path / "mirror")
    py = make_venv(tmp_path / "venv")
    cp = install(py, tmp_path, "--installer", installer, "--index-url", url)
    assert cp.returncode == 1, cp.stderr
    last = cp.stderr.strip().splitlines()[-1]
    assert f"envsetup: {url} has no torchvision at all; " in last, last
    assert "--index-url" in last
    assert "torch==" not in freeze(py)


def test_the_check_reads_each_source_form(wheels: Path, index: IndexServer, tmp_path: Path) -> None:
    """The same answers from an http index, a file:// tree and a wheelhouse."""
    from envsetup.install.sources import SourceError, check, for_install

    plan = make_plan()
    tree_url = write_simple_tree(wheels, tmp_path / "tree")
    for sources in (
        for_install(plan, index.index("cu121")),
        for_install(plan, tree_url),
        for_install(plan, None, [str(wheels)]),
    ):
        check(sources, plan, plan.python, plan.platform)
        with pytest.raises(
            SourceError, match=r"has no torch 2\.9\.9 wheel \(it lists 2\.3\.1, 2\.4\.1\)"
        ):
            bad = replace(plan, torch="2.9.9", pins=(replace(plan.pins[0], version="2.9.9"),))
            check(sources, bad, plan.python, plan.platform)
        with pytest.raises(SourceError, match=r"no wheel for Python 2\.7"):
            check(sources, plan, "2.7", plan.platform)


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A venv with torch 2.3.1+cu121 installed by real pip."""
    py = make_venv(tmp_path / "old-venv")
    wheel = torch_wheel(tmp_path / "w", "2.3.1+cu121", "12.1")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", str(wheel)], check=True,
                   env=hermetic_env(tmp_path))  # fmt: skip
    return py
