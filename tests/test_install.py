"""envsetup install with real pip and real uv into real venvs, from a real index on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Optional

import pytest

from conftest import make_venv
from envsetup.install import backends
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
    # The install step ran offline from the stage.
    assert "--no-index" in doc["commands"][1]
    if installer == "uv":  # resolved for this interpreter into a lock, installed from the lock
        assert doc["resolve"][1:3] == ["pip", "compile"] and str(py) in doc["resolve"]
        assert "--offline" in doc["commands"][1] and doc["commands"][1][-1].endswith("pylock.toml")
    else:
        assert doc["resolve"] is None
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
    cp = envsetup(
        "install", "--yes", "--dry-run", "--plan-file", plan, "--python", str(py),
        "--installer", "pip", "--index-url", index.index("cu121"), env=hermetic_env(tmp_path),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    lines = [ln for ln in cp.stdout.splitlines() if not ln.startswith("#")]
    assert lines[0].split()[:4] == [str(py), "-m", "pip", "download"]
    assert f"--index-url {index.index('cu121')}" in lines[0]
    assert "--no-index" in lines[1] and lines[1].endswith("torch==2.4.1 torchvision==0.19.1")
    assert freeze(py) == before
    assert not any("/files/" in r for r in index.requests if "dry" in r)


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
    uv = backends.find_uv()
    assert uv is not None
    env = hermetic_env(tmp_path, UV_PYTHON=sys.executable)
    cp = subprocess.run([uv, "lock"], cwd=project, capture_output=True, text=True, env=env)
    assert cp.returncode == 0, cp.stderr
    lock = (project / "uv.lock").read_text()
    assert 'version = "2.4.1+cu121"' in lock
    assert index.index("cu121") in lock


def test_conda_commands_exact(tmp_path: Path) -> None:
    info = probe(sys.executable)
    info = type(info)(**{**info.__dict__, "conda": True, "prefix": "/opt/envs/t"})
    plan = make_plan(torch="2.4.1", variant="cu121", cuda="12.1", vision="0.19.1")
    b = backends.CondaBackend(info, conda="conda", plan=plan)
    base = ["conda", "install", "--yes", "--prefix", "/opt/envs/t"]
    chans = ["--channel", "pytorch", "--channel", "nvidia"]
    specs = ["pytorch==2.4.1", "torchvision==0.19.1", "pytorch-cuda=12.1"]
    assert b.download(plan, tmp_path, None) == [*base, *chans, "--download-only", *specs]
    assert b.install(tmp_path, []) == [*base, *chans, "--offline", *specs]
    assert b.revision(3) == [*base, "--offline", "--revision", "3"]
    cpu = make_plan(torch="2.5.1", variant="cpu", cuda=None, vision=None)
    assert backends.CondaBackend(info, plan=cpu).direct(cpu, None) == [
        *base, "--channel", "pytorch", "pytorch==2.5.1", "cpuonly",
    ]  # fmt: skip
    assert backends.conda_channel_has(cpu)
    assert not backends.conda_channel_has(make_plan(torch="2.6.0", variant="cu126", cuda="12.6"))


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


def test_saved_wheel_holds_installed_files(index: IndexServer, tmp_path: Path) -> None:
    """The restore copy of an installed distribution carries its files, byte for byte."""
    from envsetup.install import snapshot

    py = make_venv(tmp_path / "venv")
    wheel = torch_wheel(tmp_path / "w", "2.3.1+cu121", "12.1")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
                   check=True, env=hermetic_env(tmp_path))  # fmt: skip
    saved = snapshot.save(probe(str(py)), ["torch"], tmp_path / "saved")
    assert [(s.name, s.version) for s in saved] == [("torch", "2.3.1+cu121")]
    with zipfile.ZipFile(saved[0].wheel) as zf, zipfile.ZipFile(wheel) as orig:
        assert zf.read("torch/version.py") == orig.read("torch/version.py")
        assert any(n.endswith(".dist-info/METADATA") for n in zf.namelist())


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
