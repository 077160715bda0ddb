"""One exit-code policy (errors.py, the README's table), checked command by command through the
real CLI: 0 ok, 1 a failure the command found, 2 the user's mistake, 4 no build fits; never 3
(internal) for anything a user can type."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from conftest import make_venv, run_cli
from machines import cpu_only, nvml_error, write

CPU_PROFILE = {"system": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.11.7"}}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("exit-codes")
    out = {
        "cpu": write(root, cpu_only(), "cpu.json"),
        "mismatch": write(root, nvml_error("NVML_ERROR_LIB_RM_VERSION_MISMATCH"), "mm.json"),
    }
    prof = root / "profile.json"
    prof.write_text(json.dumps(CPU_PROFILE))
    out["profile"] = str(prof)
    nodes = root / "nodes"
    nodes.mkdir()
    (nodes / "a.json").write_text(json.dumps(CPU_PROFILE))
    out["nodes"] = str(nodes)
    bad = root / "bad-nodes"
    bad.mkdir()
    (bad / "a.json").write_text(json.dumps(CPU_PROFILE))
    (bad / "b.json").write_text("{not json")
    out["bad-nodes"] = str(bad)
    out["empty-venv"] = str(make_venv(root / "empty", pip=False))
    return out


@pytest.fixture(scope="module")
def dead_url() -> Iterator[str]:
    with socket.socket() as s:  # a port nobody listens on: refused at once
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


# (command line, replayed machine or None, expected exit code); {name} is filled from `files`.
CASES = [
    # doctor
    ("doctor", "cpu", 0),
    ("doctor", "mismatch", 1),
    ("doctor --frobnicate", "cpu", 2),
    ("doctor --python /nonexistent/python3", "cpu", 2),
    ("doctor --json --markdown", "cpu", 2),
    # plan
    ("plan --profile {profile}", None, 0),
    ("plan --profile {profile} --torch ''", None, 2),
    ("plan --profile {profile} --torch 2.4.1+cu121", None, 2),
    ("plan --profile {profile} --variant cuda12", None, 2),
    ("plan --profile {profile} --torch '2.13.0,!=2.13.0'", None, 4),
    ("plan --profile {profile} --torch 1.13", None, 4),
    ("plan --profile /nonexistent.json", None, 2),
    # install
    ("install --yes --dry-run --variant cpu --torch 2.13.0", "cpu", 0),
    ("install --yes --dry-run --variant bogus", "cpu", 2),
    ("install --yes --dry-run --index-url ftp://mirror/whl", "cpu", 2),
    ("install --yes --dry-run --torch 1.13", "cpu", 4),
    ("install --yes --python /bin/true", "cpu", 2),
    # verify
    ("verify --device tpu", "cpu", 2),
    ("verify --python /bin/true", "cpu", 2),
    ("verify --quick --python {empty-venv}", "cpu", 1),
    # compat
    ("compat list", None, 0),
    ("compat list --torch ''", None, 2),
    ("compat check --timeout 0", None, 2),
    ("compat check --index-base {dead}", None, 1),
    ("compat refresh --check --index-url {dead}/simple --no-torch-index", None, 1),
    # fleet
    ("fleet report {nodes}", None, 0),
    ("fleet report {bad-nodes}", None, 2),
    ("fleet report /nonexistent-dir", None, 2),
    ("fleet report", None, 2),
]


@pytest.mark.parametrize(
    ("line", "machine", "code"), CASES, ids=[f"{c[0].split()[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_exit_code(
    files: dict[str, str], dead_url: str, line: str, machine: str | None, code: int
) -> None:
    import shlex

    argv = shlex.split(line.format(dead=dead_url, **files))
    env = {"ENVSETUP_HW_REPLAY": files[machine]} if machine else {}
    r = run_cli(*argv, env=env, timeout=120)
    assert r.returncode == code, r
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r
    if code == 2 and not r.stdout:  # the user's mistake: one line saying what was wrong
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("envsetup: "), r
