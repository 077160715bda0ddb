"""envsetup install with real pip and real uv into real venvs, from a real index on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from conftest import make_venv
from envsetup.install.backends.uv import find_uv
from envsetup.install.export import export
from envsetup.install.target import probe
from envsetup.plan import Pin, Plan
from indexserver import IndexServer, companion_wheel, torch_wheel

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


def hermetic_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No pip or uv configuration of this machine, no public index: only what a test serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_RETRIES="0",
        PIP_TIMEOUT="5",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(tmp / "uv-cache"),
        XDG_CACHE_HOME=str(tmp / "cache"),
        NO_COLOR="1",
        COLUMNS="120",
    )
    env.update(extra)
    return env


def envsetup(*args: str, env: dict[str, str], timeout: float = 300) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "envsetup", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def make_plan(
    torch: str = "2.4.1",
    variant: str = "cu121",
    cuda: Optional[str] = "12.1",
    vision: Optional[str] = "0.19.1",
    index_url: Optional[str] = None,
) -> Plan:
    pins = [Pin("torch", torch)] + ([Pin("torchvision", vision)] if vision else [])
    return Plan(
        torch=torch,
        variant=variant,
        pins=tuple(pins),
        index_url=index_url,
        platform=probe(sys.executable).platform,
        python=PY,
        local_version=f"{torch}+{variant}",
        cuda=cuda,
    )


def write_plan(tmp: Path, plan: Plan) -> str:
    path = tmp / "plan.json"
    path.write_text(plan.to_json(), encoding="utf-8")
    return str(path)


def freeze(python: Path) -> str:
    cp = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        env=hermetic_env(Path("/nonexistent")),
        check=True,
    )
    return cp.stdout


def torch_in(python: Path) -> tuple[str, Optional[str]]:
    code = "import torch; print(torch.__version__, torch.version.cuda)"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    version, cuda = out.stdout.split()
    return version, None if cuda == "None" else cuda


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("index")
    for variant, cuda in (("cu121", "12.1"), ("cu118", "11.8")):
        for torch, vision in (("2.4.1", "0.19.1"), ("2.3.1", "0.18.1")):
            torch_wheel(root / variant, f"{torch}+{variant}", cuda)
            companion_wheel(root / variant, "torchvision", f"{vision}+{variant}", torch)
    with IndexServer(root) as server:
        yield server


@pytest.mark.timeout(240)
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_install_into_fresh_venv(installer: str, index: IndexServer, tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv")
    plan = write_plan(tmp_path, make_plan())
    env = hermetic_env(tmp_path)
    args = ["install", "--yes", "--no-verify", "--json", "--plan-file", plan, "--python", str(py)]
    cp = envsetup(*args, "--installer", installer, "--index-url", index.index("cu121"), env=env)
    assert cp.returncode == 0, cp.stderr
    doc = json.loads(cp.stdout)
    assert doc["ok"] and doc["installer"] == installer
    assert doc["verify"]["ok"]
    assert torch_in(py) == ("2.4.1+cu121", "12.1")
    assert "torchvision==0.19.1+cu121" in freeze(py)
    assert sorted(doc["changed"]) == ["torch 2.4.1+cu121 added", "torchvision 0.19.1+cu121 added"]
    # One step: the installer fetches every file before it changes anything.
    assert [s["step"] for s in doc["steps"]] == ["install"]
    argv = doc["commands"][0]
    if installer == "uv":  # the pins bound to the index in a generated pyproject
        assert argv[1:5] == ["pip", "install", "--python", str(py)]
        assert argv[-2] == "-r" and argv[-1].endswith("pyproject.toml")
    else:  # the configuration's extra sources set aside for the install
        assert argv[:4] == [str(py), "-m", "pip", "install"]
        assert doc["steps"][0]["env"]["PIP_FIND_LINKS"].strip() == ""
    # The log is private; the work directory is gone.
    log = Path(doc["log"])
    assert log.stat().st_mode & 0o777 == 0o600 and log.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in (tmp_path / "cache" / "envsetup").iterdir()] == ["logs"]
    # An upgrade over an existing install: the other variant replaces the first.
    plan2 = write_plan(tmp_path, make_plan(variant="cu118", cuda="11.8"))
    args[args.index("--plan-file") + 1] = plan2
    cp = envsetup(*args, "--installer", installer, "--index-url", index.index("cu118"), env=env)
    assert cp.returncode == 0, cp.stderr
    assert torch_in(py) == ("2.4.1+cu118", "11.8")


@pytest.mark.timeout(120)
def test_new_venv_uv_is_default(index: IndexServer, tmp_path: Path) -> None:
    venv = tmp_path / "new-venv"
    plan = write_plan(tmp_path, make_plan(vision=None))
    # uv is on PATH (the test extra installs it next to this interpreter).
    env = hermetic_env(tmp_path, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cp = envsetup(
        "install", "--yes", "--no-verify", "--plan-file", plan, "--venv", str(venv),
        "--index-url", index.index("cu121"), env=env,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert "with uv" in cp.stdout
    assert torch_in(venv / "bin" / "python") == ("2.4.1+cu121", "12.1")


@pytest.mark.timeout(60)
def test_dry_run_changes_nothing(index: IndexServer, tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv")
    before = freeze(py)
    plan = write_plan(tmp_path, make_plan())
    seen = len(index.requests)
    cp = envsetup(
        "install", "--yes", "--dry-run", "--plan-file", plan, "--python", str(py),
        "--installer", "pip", "--index-url", index.index("cu121"), env=hermetic_env(tmp_path),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    lines = [ln for ln in cp.stdout.splitlines() if not ln.startswith("#")]
    assert len(lines) == 1
    assert lines[0].startswith("PIP_EXTRA_INDEX_URL=' ' PIP_FIND_LINKS=' ' PIP_USER=0 ")
    assert f"{py} -m pip install " in lines[0]
    assert f"--index-url {index.index('cu121')}" in lines[0]
    assert lines[0].endswith("torch==2.4.1+cu121 torchvision==0.19.1+cu121")
    assert freeze(py) == before
    assert len(index.requests) == seen  # nothing was fetched
    assert not (tmp_path / "cache" / "envsetup").exists()


@pytest.mark.timeout(60)
def test_dry_run_of_a_new_venv_names_the_venv(index: IndexServer, tmp_path: Path) -> None:
    venv = tmp_path / "new"
    plan = write_plan(tmp_path, make_plan())
    for installer in ("pip", "uv"):
        cp = envsetup(
            "install", "--yes", "--dry-run", "--plan-file", plan, "--venv", str(venv),
            "--installer", installer, "--index-url", index.index("cu121"),
            env=hermetic_env(tmp_path),
        )  # fmt: skip
        assert cp.returncode == 0, cp.stderr
        lines = [ln for ln in cp.stdout.splitlines() if not ln.startswith("#")]
        assert lines[0] == f"{sys.executable} -m venv {venv}"
        new_python = str(venv / "bin" / "python")
        assert new_python in lines[1] and sys.executable not in lines[1], lines
        assert f"# {installer} into {new_python} (a new venv)" in cp.stdout
        assert not venv.exists()
    doc = json.loads(envsetup(
        "install", "--yes", "--dry-run", "--json", "--plan-file", plan, "--venv", str(venv),
        "--installer", "pip", "--index-url", index.index("cu121"), env=hermetic_env(tmp_path),
    ).stdout)  # fmt: skip
    assert doc["create_venv"] == [sys.executable, "-m", "venv", str(venv)]
    assert doc["python"] == str(venv / "bin" / "python")
    assert doc["commands"][0][0] == str(venv / "bin" / "python")


@pytest.mark.timeout(120)
def test_an_installed_plan_is_a_no_op(index: IndexServer, tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv")
    plan = write_plan(tmp_path, make_plan())
    env = hermetic_env(tmp_path)
    args = ["install", "--yes", "--no-verify", "--plan-file", plan, "--python", str(py),
            "--installer", "pip", "--index-url", index.index("cu121")]  # fmt: skip
    assert envsetup(*args, env=env).returncode == 0
    logs = sorted((tmp_path / "cache" / "envsetup" / "logs").iterdir())
    seen = len(index.requests)
    for extra in ([], ["--dry-run"]):
        cp = envsetup(*args, *extra, env=env)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout == f"already installed: torch 2.4.1+cu121 (cu121) in {py}; nothing to do\n"
    assert json.loads(envsetup(*args, "--json", env=env).stdout)["already_installed"] is True
    assert len(index.requests) == seen  # no index read, no installer run
    assert sorted((tmp_path / "cache" / "envsetup" / "logs").iterdir()) == logs
    # Another build of the same version is not "installed": the cu118 plan runs.
    other = write_plan(tmp_path, make_plan(variant="cu118", cuda="11.8"))
    cp = envsetup("install", "--yes", "--no-verify", "--dry-run", "--plan-file", other,
                  "--python", str(py), "--installer", "pip", env=env)  # fmt: skip
    assert cp.returncode == 0 and "already installed" not in cp.stdout


@pytest.mark.timeout(60)
def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    env = hermetic_env(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"torch": "2.4.1"}')
    cases = [
        (["--plan-file", str(tmp_path / "missing.json")], "missing.json"),
        (["--plan-file", str(bad)], "not a plan"),
        (["--plan-file", str(bad), "--torch", "2.4"], "--plan-file fixes"),
        (["--with", "vision,telepathy"], "telepathy"),
        (["--python", str(tmp_path / "nope")], "no such file"),
    ]
    for args, needle in cases:
        cp = envsetup("install", "--yes", "--no-verify", *args, env=env)
        assert cp.returncode == 2, (args, cp.stderr)
        assert cp.stderr.count("\n") == 1 and needle in cp.stderr, cp.stderr
        assert "Traceback" not in cp.stderr


@pytest.mark.timeout(60)
def test_plan_for_another_python_is_refused(tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv", pip=False)
    plan = write_plan(tmp_path, Plan.from_dict({**make_plan().to_dict(), "python": "3.4"}))
    cp = envsetup("install", "--yes", "--no-verify", "--plan-file", plan, "--python", str(py),
                  env=hermetic_env(tmp_path))  # fmt: skip
    assert cp.returncode == 2
    assert "the plan is for Python 3.4" in cp.stderr


@pytest.mark.timeout(60)
def test_externally_managed_interpreter_is_refused(tmp_path: Path) -> None:
    # A venv is never externally managed; the refusal itself is checked on its record.
    py = make_venv(tmp_path / "venv", pip=False)
    info = probe(str(py))
    assert not info.externally_managed  # a venv is never externally managed
    fake = Plan.from_dict(make_plan().to_dict())
    from envsetup.install.target import TargetInfo, check

    managed = TargetInfo(**{**info.__dict__, "externally_managed": True})  # type: ignore[arg-type]
    with pytest.raises(Exception, match="externally managed"):
        check(managed, fake)
    check(managed, fake, break_system_packages=True)


@pytest.mark.timeout(120)
def test_flags_resolve_through_the_table_and_dry_run_changes_nothing(tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv")
    before = freeze(py)
    cp = envsetup("install", "--yes", "--dry-run", "--variant", "cpu", "--torch", "2.13",
                  "--installer", "pip", "--python", str(py), env=hermetic_env(tmp_path))  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    # the resolver's pick for "2.13, cpu" on this machine, with the CPU index of the PyTorch index
    assert "torch==2.13.0" in cp.stdout and "/whl/cpu" in cp.stdout
    assert freeze(py) == before


def test_exports_requirements_and_conda(tmp_path: Path) -> None:
    url = "https://download.pytorch.org/whl/cu121"
    plan = make_plan(index_url=url)
    req = export(plan, "requirements").splitlines()
    assert req[1:] == [f"--index-url {url}", "torch==2.4.1", "torchvision==0.19.1"]
    conda = export(plan, "conda").splitlines()
    assert conda[1:] == [
        "name: torch",
        "channels:",
        "  - pytorch",
        "  - nvidia",
        "dependencies:",
        f"  - python={PY}",
        "  - pytorch==2.4.1",
        "  - torchvision==0.19.1",
        "  - pytorch-cuda=12.1",
    ]
    # After 2.5 the pytorch channel has no builds: pip inside the conda env, same index.
    later = make_plan(torch="2.6.0", variant="cu126", cuda="12.6", vision="0.21.0", index_url=url)
    text = export(later, "conda")
    assert "  - pip:\n      - --index-url " + url + "\n      - torch==2.6.0\n" in text
    assert "pytorch-cuda" not in text


@pytest.mark.timeout(120)
def test_uv_export_resolves_with_real_uv(index: IndexServer, tmp_path: Path) -> None:
    """The [tool.uv] index and sources entries, checked by uv itself locking a project."""
    plan = make_plan(index_url=index.index("cu121"))
    snippet = export(plan, "uv")
    project = tmp_path / "proj"
    project.mkdir()
    body = snippet.replace(
        "[project]\n", f'[project]\nname = "demo"\nversion = "0"\nrequires-python = ">={PY}"\n'
    )
    (project / "pyproject.toml").write_text(body)
    uv = find_uv()
    assert uv is not None
    env = hermetic_env(tmp_path, UV_PYTHON=sys.executable)
    cp = subprocess.run([uv, "lock"], cwd=project, capture_output=True, text=True, env=env)
    assert cp.returncode == 0, cp.stderr
    lock = (project / "uv.lock").read_text()
    assert 'version = "2.4.1+cu121"' in lock
    assert index.index("cu121") in lock


def test_conda_commands_exact(tmp_path: Path) -> None:
    from envsetup.install import backends
    from envsetup.install.backends import conda
    from envsetup.install.sources import for_install

    info = probe(sys.executable)
    info = type(info)(**{**info.__dict__, "conda": True, "prefix": "/opt/envs/t"})
    plan = make_plan(torch="2.4.1", variant="cu121", cuda="12.1", vision="0.19.1")
    sources = for_install(plan, None)
    b = backends.get("conda")
    assert b.fits(plan, info, sources).ok
    ctx = backends.Context(plan, info, sources, backends.Tool(("conda",)), tmp_path)
    base = ["conda", "install", "--yes", "--prefix", "/opt/envs/t"]
    chans = ["--channel", "pytorch", "--channel", "nvidia"]
    specs = ["pytorch==2.4.1", "torchvision==0.19.1", "pytorch-cuda=12.1"]
    assert [list(s.argv) for s in b.stage(ctx).fetch] == [
        [*base, *chans, "--download-only", *specs]
    ]
    assert list(b.install(ctx).argv) == [*base, *chans, "--offline", *specs]
    back = b.rollback(ctx, "3")
    assert back is not None and list(back.argv) == [*base, "--offline", "--revision", "3"]
    cpu = make_plan(torch="2.5.1", variant="cpu", cuda=None, vision=None)
    where = backends.Where("/opt/envs/t/bin/python")
    assert b.direct(cpu, where, for_install(cpu, None)) == [
        *base, "--channel", "pytorch", "pytorch==2.5.1", "cpuonly",
    ]  # fmt: skip
    assert conda.channel_has(cpu)
    later = make_plan(torch="2.6.0", variant="cu126", cuda="12.6")
    assert not conda.channel_has(later)
    # After 2.5, or from a mirror, pip installs into the conda env instead, and says why.
    chosen = backends.choose("conda", later, info, for_install(later, None))
    assert chosen.backend.name == "pip" and "stopped at 2.5" in (chosen.note or "")
    chosen = backends.choose("conda", plan, info, for_install(plan, "file:///srv/mirror/cu121"))
    assert chosen.backend.name == "pip" and "mirror" in (chosen.note or "")
    # Not a conda environment: refused, with what to do.
    with pytest.raises(Exception, match="not a conda environment"):
        backends.choose("conda", plan, probe(sys.executable), sources)


@pytest.mark.skipif(shutil.which("conda") is None, reason="conda is not installed here")
@pytest.mark.timeout(900)
def test_conda_for_real(tmp_path: Path) -> None:  # pragma: no cover - needs conda
    conda = shutil.which("conda")
    assert conda
    prefix = tmp_path / "env"
    subprocess.run([conda, "create", "--yes", "--prefix", str(prefix), f"python={PY}"], check=True)
    plan = make_plan(torch="2.5.1", variant="cpu", cuda=None, vision=None)
    plan = Plan.from_dict({**plan.to_dict(), "local_version": None})
    path = write_plan(tmp_path, plan)
    cp = envsetup("install", "--yes", "--no-verify", "--plan-file", path, "--python", str(prefix),
                  "--installer", "conda", env=dict(os.environ))  # fmt: skip
    assert cp.returncode == 0, cp.stderr


def test_snapshot_puts_back_every_file(tmp_path: Path) -> None:
    """Record and hard-link a venv, let real pip replace torch (a script in bin/, a man page
    under share/), restore: pip freeze and every file (path, size, content) are back."""
    from envsetup.install import snapshot

    py = make_venv(tmp_path / "venv")
    env = hermetic_env(tmp_path)
    old = torch_wheel(tmp_path / "w", "2.3.1+cu121", "12.1", data=True)
    new = torch_wheel(tmp_path / "w", "2.4.1+cu121", "12.1", data=True, bulk=3)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", str(old)], check=True,
                   env=env)  # fmt: skip
    before, files = freeze(py), tree(tmp_path / "venv")
    info = probe(str(py))
    snap = snapshot.take(info, snapshot.record(info), tmp_path)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", str(new)], check=True,
                   env=env)  # fmt: skip
    assert (tmp_path / "venv" / "share" / "man" / "man1" / "torch-2.4.1+cu121.1").is_file()
    acted, problems = snapshot.restore(snap)
    assert acted > 0 and problems == []
    assert freeze(py) == before
    assert tree(tmp_path / "venv") == files
    assert snapshot.differences(snap.record) == []
    snap.remove()
    assert not (tmp_path / "snapshot").exists()


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file and link under ``root``: relative path → (size, sha256 of the content).

    envsetup's install lock (``.envsetup-lock/``, made by the first install and kept: its
    file is the lock every later install of the environment takes) is not part of the tree."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        if ".envsetup-lock" in p.relative_to(root).parts:
            continue
        if p.is_symlink():
            out[str(p.relative_to(root))] = (0, "-> " + os.readlink(p))
        elif p.is_file():
            out[str(p.relative_to(root))] = (
                p.stat().st_size,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = (0, "")
    return out


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--index-url", "notaurl"], {}, "--index-url 'notaurl' is not"),
        ([], {"ENVSETUP_TORCH_INDEX": "http:///"}, "ENVSETUP_TORCH_INDEX"),
        (
            ["--export", "requirements", "-o", "/nonexistent/dir/req.txt"],
            {},
            "--output /nonexistent",
        ),
    ],
)
def test_install_bad_input_is_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], needle: str
) -> None:
    cp = envsetup("install", "--yes", "--dry-run", *args, env=hermetic_env(tmp_path, **env))
    assert cp.returncode == 2, cp.stderr
    assert cp.stderr.count("\n") == 1 and needle in cp.stderr
