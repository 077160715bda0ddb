"""No secret in any output: a canary password planted in every source of credentials (the
flags, each variable pip and uv read, a pip.conf, a uv.toml) never appears in anything envsetup
prints or writes; exported files name the variables that supply a credential, and real pip
installs from such a file with the variables set."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import make_venv
from indexserver import IndexServer, companion_wheel, torch_wheel
from test_install import envsetup, hermetic_env, make_plan, torch_in, write_plan


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


CLOSED = f"127.0.0.1:{_closed_port()}"
# one canary per source, so that a leak names its source
CANARY = {
    name: f"cnry{secrets.token_hex(8)}"
    for name in (
        "ENVSETUP_TORCH_INDEX", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL",
        "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX_PRIVATE_PASSWORD",
        "pip.conf", "uv.toml", "--index-url", "--find-links", "--index-base", "served",
    )
}  # fmt: skip


def _url(source: str, path: str = "simple") -> str:
    return f"http://user:{CANARY[source]}@{CLOSED}/{path}"


def _leaks(text: str) -> list[str]:
    return [name for name, value in CANARY.items() if value in text]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment with a canary in every place a credential can come from."""
    tmp = tmp_path_factory.mktemp("planted")
    pip_conf = tmp / "pip.conf"
    pip_conf.write_text(f"[global]\nindex-url = {_url('pip.conf')}\n", encoding="utf-8")
    uv_toml = tmp / "uv.toml"
    uv_toml.write_text(
        f'[[index]]\nname = "private"\nurl = "{_url("uv.toml")}"\n', encoding="utf-8"
    )
    env = hermetic_env(tmp)
    del env["UV_NO_CONFIG"]
    env.update(
        ENVSETUP_TORCH_INDEX=_url("ENVSETUP_TORCH_INDEX", "whl"),
        PIP_INDEX_URL=_url("PIP_INDEX_URL"),
        PIP_EXTRA_INDEX_URL=_url("PIP_EXTRA_INDEX_URL"),
        UV_INDEX_URL=_url("UV_INDEX_URL"),
        UV_DEFAULT_INDEX=_url("UV_DEFAULT_INDEX"),
        UV_INDEX=f"private={_url('UV_INDEX')}",
        UV_EXTRA_INDEX_URL=_url("UV_EXTRA_INDEX_URL"),
        UV_INDEX_PRIVATE_USERNAME="user",
        UV_INDEX_PRIVATE_PASSWORD=CANARY["UV_INDEX_PRIVATE_PASSWORD"],
        PIP_CONFIG_FILE=str(pip_conf),
        UV_CONFIG_FILE=str(uv_toml),
        COLUMNS="60",
    )
    return env


@pytest.fixture(scope="module")
def profiles(planted: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """This machine's doctor --json, twice (a fleet of two)."""
    tmp = tmp_path_factory.mktemp("profiles")
    cp = envsetup("doctor", "--json", env=planted)
    assert cp.stdout.startswith("{"), cp.stderr
    out = []
    for name in ("a.json", "b.json"):
        (tmp / name).write_text(cp.stdout, encoding="utf-8")
        out.append(str(tmp / name))
    return out


def _scan(runs: list[tuple[list[str], Any]], files: list[Path]) -> list[str]:
    found = []
    for args, cp in runs:
        for stream, text in (("stdout", cp.stdout), ("stderr", cp.stderr)):
            found += [f"{' '.join(args)} ({stream}): {leak}" for leak in _leaks(text)]
    for f in files:
        found += [f"{f.name}: {leak}" for leak in _leaks(f.read_text(encoding="utf-8"))]
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """The tiny torch 2.4.1+cu121 with torchvision, from an index that asks for a password."""
    root = tmp_path_factory.mktemp("served")
    torch_wheel(root / "cu121", "2.4.1+cu121", "12.1")
    companion_wheel(root / "cu121", "torchvision", "0.19.1+cu121", "2.4.1")
    with IndexServer(root) as server:
        server.auth = ("builder", CANARY["served"])
        yield server


def _with_credentials(server: IndexServer) -> str:
    return server.index("cu121").replace("http://", f"http://builder:{CANARY['served']}@")


def _real_install(served: IndexServer, planted: dict[str, str], tmp: Path) -> tuple[Any, Any]:
    """pip installs from the index that asks for the password; returns the run and the venv."""
    py = make_venv(tmp / "venv")
    env = dict(planted)
    for name in ("PIP_EXTRA_INDEX_URL", "UV_INDEX", "UV_EXTRA_INDEX_URL"):
        env.pop(name)  # no index that does not answer beside the served one
    args = ["install", "--yes", "--no-verify", "--plan-file", write_plan(tmp, make_plan()),
            "--python", str(py), "--installer", "pip", "--index-url",
            _with_credentials(served)]  # fmt: skip
    cp = envsetup(*args, env=env)
    assert cp.returncode == 0, cp.stderr
    assert torch_in(py) == ("2.4.1+cu121", "12.1")
    assert "builder" in served.authorized
    return (args, cp), py.parent.parent


@pytest.mark.timeout(300)
def test_no_canary_in_any_output(
    planted: dict[str, str], profiles: list[str], served: IndexServer, tmp_path: Path
) -> None:
    """Every command's stdout and stderr (text, --json, --markdown), the files it writes
    (exports, the fleet page), an install's log and the guard's files after a real install
    from an index that asks for a password, and an error (an index that refuses)."""
    prof = profiles[0]
    plan = write_plan(tmp_path, make_plan())
    index_url = _url("--index-url", "cu121")
    wheelhouse = _url("--find-links", "wheels/")
    out = tmp_path / "out"
    out.mkdir()
    both = " ".join(profiles)
    targets = [make_venv(tmp_path / f"target{i}", pip=False) for i in (0, 1)]  # uv installs
    dry = f"install --dry-run --yes --plan-file {plan}"
    lines = [
        "doctor", "doctor --json", "doctor --markdown",
        f"plan --profile {prof} --variant cpu",
        f"plan --profile {prof} --variant cpu --json",
        f"plan --profile {prof} --variant cpu --online",
        f"plan --profile {prof} --variant cpu --online --json",
        f"plan --profile {prof} --variant cu126 --index-base {_url('--index-base', 'whl')}",
        f"plan --profile {profiles[0]} --profile {profiles[1]} --variant cpu --export uv six",
        f"{dry} --index-url {index_url}",
        f"{dry} --json --index-url {index_url}",
        # the error path: the index refuses the connection
        f"install --yes --no-verify --plan-file {plan} --python {targets[0]} --installer uv "
        f"--index-url {index_url}",
        f"install --yes --no-verify --json --plan-file {plan} --python {targets[1]} "
        f"--installer uv --index-url {index_url}",
        f"fleet report {both}", f"fleet report --json {both}", f"fleet report --markdown {both}",
        f"fleet report --html {out / 'fleet.html'} {both}",
    ]  # fmt: skip
    for kind in ("requirements", "uv", "conda"):
        lines += [
            f"plan --profile {prof} --variant cpu --export {kind}",
            f"plan --profile {prof} --variant cpu --export {kind} -o {out / ('plan-' + kind)}",
            f"{dry} --index-url {index_url} --export {kind}",
            f"{dry} --index-url {index_url} --export {kind} -o {out / ('install-' + kind)}",
            f"{dry} --find-links {wheelhouse} --export {kind}",
        ]
    commands = [line.split() for line in lines]  # no spaces in these paths
    with ThreadPoolExecutor(4) as pool:  # each run waits on its own process
        runs = list(zip(commands, pool.map(lambda a: envsetup(*a, env=planted), commands)))
    installed, prefix = _real_install(served, planted, tmp_path)
    runs.append(installed)
    by = {" ".join(a): cp for a, cp in runs}
    # each command did its job (so that its output is one worth scanning)
    shown = by[lines[3]]
    assert shown.returncode == 0, shown.stderr
    assert f"user:***@{CLOSED}/whl/cpu" in shown.stdout
    failed = by[lines[11]]
    assert failed.returncode != 0 and f"user:***@{CLOSED}/cu121" in failed.stderr
    exported = (out / "install-requirements").read_text(encoding="utf-8")
    assert "${UV_INDEX_PYTORCH_CU121_PASSWORD}" in exported
    assert 'url = "http://' + CLOSED in (out / "plan-uv").read_text(encoding="utf-8")
    assert (out / "fleet.html").stat().st_size > 0
    files = [p for p in out.iterdir() if p.is_file()]
    logs = sorted((Path(planted["XDG_CACHE_HOME"]) / "envsetup" / "logs").glob("*.log"))
    assert any("builder:***@" in p.read_text(encoding="utf-8") for p in logs)
    files += [*logs, prefix / "envsetup-guard.json", prefix / "envsetup-constraints.txt"]
    assert _scan(runs, files) == []


@pytest.mark.timeout(180)
def test_exported_requirements_name_the_variables_and_pip_uses_them(
    served: IndexServer, tmp_path: Path
) -> None:
    """install --export requirements writes ${VAR} references to uv's per-index variables in
    place of the credentials; real pip expands them from the environment and is let in."""
    env = hermetic_env(tmp_path)
    plan = write_plan(tmp_path, make_plan())
    req = tmp_path / "requirements.txt"
    cp = envsetup("install", "--dry-run", "--plan-file", plan, "--index-url",
                  _with_credentials(served), "--export", "requirements", "-o", str(req),
                  env=env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    text = req.read_text(encoding="utf-8")
    assert CANARY["served"] not in text and "builder" not in text
    assert "${UV_INDEX_PYTORCH_CU121_USERNAME}:${UV_INDEX_PYTORCH_CU121_PASSWORD}@" in text

    def pip_download(**creds: str) -> subprocess.CompletedProcess[str]:
        dest = tmp_path / f"dl{len(creds)}"
        return subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "-q", "-d",
             str(dest), "-r", str(req)],
            capture_output=True, text=True, env=dict(env, **creds), timeout=120,
        )  # fmt: skip

    assert pip_download().returncode != 0  # without the variables the index says 401
    ok = pip_download(
        UV_INDEX_PYTORCH_CU121_USERNAME="builder",
        UV_INDEX_PYTORCH_CU121_PASSWORD=CANARY["served"],
    )
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "dl2").iterdir()) == [
        "torch",
        "torchvision",
    ]


@pytest.mark.timeout(180)
def test_uv_export_names_uvs_index_variables_and_uv_locks_with_them(
    served: IndexServer, profiles: list[str], tmp_path: Path
) -> None:
    """The pyproject for uv: the index URL without credentials and a comment naming uv's
    variables for that index; real uv lock is let in with them set (and not without), and
    its lock file keeps no password."""
    from envsetup.install.backends.uv import find_uv

    plan = write_plan(tmp_path, make_plan())
    cp = envsetup("install", "--dry-run", "--plan-file", plan, "--index-url",
                  _with_credentials(served), "--export", "uv", env=hermetic_env(tmp_path))  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert CANARY["served"] not in cp.stdout and "builder" not in cp.stdout
    assert f'url = "{served.index("cu121")}"' in cp.stdout
    assert "UV_INDEX_PYTORCH_CU121_USERNAME and UV_INDEX_PYTORCH_CU121_PASSWORD" in cp.stdout
    assert 'name = "pytorch-cu121"' in cp.stdout

    project = tmp_path / "project"
    project.mkdir()
    base = served.url.replace("http://", f"http://builder:{CANARY['served']}@")
    env = hermetic_env(tmp_path, ENVSETUP_TORCH_INDEX=base)
    cp = envsetup("plan", "--profile", profiles[0], "--profile", profiles[1], "--variant",
                  "cu121", "--torch", "2.4.1", "--export", "uv", "-o",
                  str(project / "pyproject.toml"), env=env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    text = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert CANARY["served"] not in text and f'url = "{served.index("cu121")}"' in text
    uv = find_uv()
    assert uv is not None

    def lock(**creds: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([uv, "lock", "--python", sys.executable], cwd=project,
                              env=dict(env, **creds), capture_output=True, text=True,
                              timeout=120)  # fmt: skip

    assert lock().returncode != 0
    ok = lock(UV_INDEX_PYTORCH_CU121_USERNAME="builder",
              UV_INDEX_PYTORCH_CU121_PASSWORD=CANARY["served"])  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "2.4.1+cu121" in (project / "uv.lock").read_text(encoding="utf-8")
    assert CANARY["served"] not in (project / "uv.lock").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("source", "written"),
    [
        ("https://u:p%40ss%2Fw0rd@mirror.example/x", ["p@ss/w0rd", "p%40ss%2Fw0rd"]),
        ("https://t0ken-abc@mirror.example/x", ["t0ken-abc"]),
        ("https://u:p%C3%A4%20ss@mirror.example/x", ["pä ss", "p\\u00e4 ss", "p%C3%A4%20ss"]),
    ],
)
def test_a_registered_secret_is_masked_in_every_form(source: str, written: list[str]) -> None:
    """A secret from the command line is masked wherever it appears, not only inside its URL:
    decoded, percent-encoded, JSON-escaped (and a URL's user part stays readable)."""
    from envsetup import secrets as masking

    masking.reset()
    try:
        masking.collect(["--index-url", source], env={})
        for form in written:
            shown = masking.mask(f"error: {form}: {json.dumps({'k': form})}")
            assert "***" in shown and form not in shown
        assert masking.mask("https://someone:other@host/") == "https://someone:***@host/"
        assert masking.mask("git+ssh://git@host/r.git") == "git+ssh://git@host/r.git"
    finally:
        masking.reset()


def test_password_variables_and_config_files_are_registered(tmp_path: Path) -> None:
    from envsetup import secrets as masking

    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://me:fr0m-conf1g@host/simple\n")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine host login me password fr0m-netrc\n")
    masking.reset()
    try:
        masking.collect([], env={"PIP_CONFIG_FILE": str(conf), "NETRC": str(netrc),
                                 "UV_INDEX_X_PASSWORD": "fr0m-var", "HOME": str(tmp_path)})  # fmt: skip
        token = base64.b64encode(b"unrelated").decode()
        text = f"fr0m-conf1g fr0m-netrc fr0m-var {token}"
        assert masking.mask(text) == f"*** *** *** {token}"
    finally:
        masking.reset()


@pytest.mark.timeout(180)
def test_a_plan_file_from_plan_json_installs_with_the_credentials_it_masks(
    served: IndexServer, tmp_path: Path
) -> None:
    """plan --json masks the mirror's password; install --plan-file of that output takes the
    credentials back from ENVSETUP_TORCH_INDEX, and the index lets it in."""
    base = served.url.replace("http://", f"http://builder:{CANARY['served']}@")
    env = hermetic_env(tmp_path, ENVSETUP_TORCH_INDEX=base)
    shown = envsetup("plan", "--variant", "cu121", "--torch", "2.4.1", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert CANARY["served"] not in shown.stdout
    assert json.loads(shown.stdout)["plan"]["index_url"] == served.index("cu121").replace(
        "http://", "http://builder:***@"
    )
    plan = tmp_path / "plan.json"
    plan.write_text(shown.stdout, encoding="utf-8")
    py = make_venv(tmp_path / "venv")
    cp = envsetup("install", "--yes", "--no-verify", "--plan-file", str(plan), "--python",
                  str(py), "--installer", "pip", env=env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert torch_in(py) == ("2.4.1+cu121", "12.1")
    assert CANARY["served"] not in cp.stdout + cp.stderr
