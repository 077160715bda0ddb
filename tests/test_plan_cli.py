"""`envsetup plan` and `envsetup compat` for real, in a subprocess; `compat check` against a real
local HTTP server laid out like the PyTorch index."""

from __future__ import annotations

import functools
import http.server
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, make_venv, run_cli, venv_python
from envsetup.compat import load_table


def envsetup(*args: str, env: dict[str, str] | None = None) -> CliResult:
    return run_cli(*args, env=env, timeout=120)


A100 = {
    "system": {"os": "linux", "arch": "x86_64"},
    "python": {"version": "3.11.7"},
    "nvidia": {
        "driver_version": "535.104.05",
        "gpus": [{"index": 0, "name": "NVIDIA A100", "compute_capability": "8.0"}],
    },
}


@pytest.fixture
def a100(tmp_path: Path) -> Path:
    p = tmp_path / "a100.json"
    p.write_text(json.dumps(A100))
    return p


def test_plan_json(a100: Path) -> None:
    r = envsetup("plan", "--profile", str(a100), "--torch", "2.4", "--vision", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["plan"]["requirements"] == ["torch==2.4.1", "torchvision==0.19.1"]
    alone = envsetup("plan", "--profile", str(a100), "--torch", "2.4", "--json").json()
    assert alone["plan"]["requirements"] == ["torch==2.4.1"]  # companions only when asked
    assert doc["plan"]["index_url"] == "https://download.pytorch.org/whl/cu121"
    assert doc["commands"]["pip"][0][-2:] == [
        "--index-url",
        "https://download.pytorch.org/whl/cu121",
    ]


def test_plan_human_and_mirror_env(a100: Path) -> None:
    r = envsetup(
        "plan",
        "--profile",
        str(a100),
        "--torch",
        "2.4",
        env={"ENVSETUP_TORCH_INDEX": "http://127.0.0.1:9/whl/"},
    )
    assert r.returncode == 0, r
    assert "torch==2.4.1" in r.stdout and "http://127.0.0.1:9/whl/cu121" in r.stdout
    assert "pip" in r.stdout and "conda" in r.stdout
    r = envsetup(
        "plan",
        "--profile",
        str(a100),
        "--torch",
        "2.4",
        "--index-base",
        "https://m.example/t",
        "--json",
    )
    assert r.json()["plan"]["index_url"] == "https://m.example/t/cu121"


def test_plan_no_build_exit_4(a100: Path) -> None:
    r = envsetup("plan", "--profile", str(a100), "--variant", "cu130", "--json")
    assert r.returncode == 4, r
    assert r.json()["plan"] is None
    assert r.stderr.startswith("envsetup: no torch build fits") and r.stderr.count("\n") == 1
    assert "580.65.06" in r.stderr


@pytest.mark.parametrize(
    ("content", "args", "needle"),
    [
        ("{not json", (), "invalid JSON"),
        ('{"python": {"version": 3.11}}', (), "python.version: expected a string"),
        ('{"gpu": []}', (), "gpu: unknown key"),
        (
            '{"system": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.11.7"},'
            ' "nvidia": {"driver_version": "new"}}',
            (),
            "driver_version 'new' is not a driver version",
        ),
        ("{}", (), "system.os, system.arch, python.version missing"),
        (
            '{"system": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.11.7",'
            ' "bits": -64}}',
            (),
            "python.bits: -64 is out of range",
        ),
        (
            '{"system": {"os": "linux", "arch": "x86_64"}, "nvidia": {"driver_version": "580"}}',
            (),
            "python.version missing",
        ),
        (json.dumps(A100), ("--torch", "two.four"), "unknown torch version spec 'two.four'"),
        (json.dumps(A100), ("--variant", "cuda"), "unknown variant 'cuda'"),
        (json.dumps(A100), ("--index-base", "ftp://x"), "--index-base 'ftp://x' is not"),
        (json.dumps(A100), ("--index-base", "http:///"), "--index-base 'http:///' has no host"),
        (
            json.dumps(A100),
            ("--index-base", "https://m.example/whl?token=a"),
            "--index-base 'https://m.example/whl?token=a' has a query or fragment",
        ),
        (json.dumps(A100), ("--index-base", "https://m.example/w#x"), "has a query or fragment"),
        (json.dumps(A100), ("--index-base", ""), "--index-base '' is not a URL"),
        (json.dumps(A100), ("--python", "/nonexistent/py"), "--python /nonexistent/py: no such"),
    ],
    ids=[
        "bad-json",
        "float-python",
        "unknown-key",
        "bad-driver",
        "empty-object",
        "negative-int",
        "no-python",
        "bad-spec",
        "bad-variant",
        "bad-index",
        "index-without-host",
        "index-with-query",
        "index-with-fragment",
        "index-empty",
        "bad-python-with-profile",
    ],
)
def test_plan_bad_input(tmp_path: Path, content: str, args: tuple[str, ...], needle: str) -> None:
    p = tmp_path / "p.json"
    p.write_text(content)
    r = envsetup("plan", "--profile", str(p), *args)
    assert r.returncode == 2, r
    assert needle in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_index_from_environment_checked_and_named(a100: Path) -> None:
    r = envsetup("plan", "--profile", str(a100), env={"ENVSETUP_TORCH_INDEX": "http:///"})
    assert r.returncode == 2, r
    assert r.stderr.startswith("envsetup: ENVSETUP_TORCH_INDEX 'http:///' has no host")
    assert r.stderr.count("\n") == 1
    # the scheme may be written in capitals; the URL the commands carry is usable as it is
    r = envsetup(
        "plan", "--profile", str(a100), "--torch", "2.4", "--json",
        env={"ENVSETUP_TORCH_INDEX": "HTTPS://Mirror.example/whl/"},
    )  # fmt: skip
    assert r.returncode == 0, r
    assert r.json()["plan"]["index_url"] == "https://Mirror.example/whl/cu121"


@pytest.fixture
def bare_venv(tmp_path: Path) -> Path:
    """A real venv directory (no pip: nothing is installed into it)."""
    d = tmp_path / "target env"
    make_venv(d, pip=False)
    return d


def test_install_commands_name_the_interpreter_of_a_venv_directory(bare_venv: Path) -> None:
    py = str(venv_python(bare_venv))
    r = envsetup("plan", "--python", str(bare_venv), "--json")  # this machine, probed
    assert r.returncode == 0, r
    cmds = r.json()["commands"]
    assert cmds["pip"][0][:4] == [py, "-m", "pip", "install"]
    assert cmds["uv"][0][3:5] == ["--python", py]


def test_install_commands_for_a_profile_and_a_venv_directory(a100: Path, bare_venv: Path) -> None:
    py = str(venv_python(bare_venv))
    r = envsetup("plan", "--profile", str(a100), "--python", str(bare_venv), "--json")
    assert r.returncode == 0, r
    cmds = r.json()["commands"]
    assert cmds["pip"][0][0] == py and cmds["uv"][0][4] == py
    human = envsetup("plan", "--profile", str(a100), "--python", str(bare_venv))
    assert human.returncode == 0, human
    assert f"'{py}' -m pip install" in human.stdout.replace("\n", "")


@pytest.mark.parametrize(
    ("python", "why"),
    [
        ({"version": "3.11.0", "bits": 32}, "it is a 32-bit interpreter"),
        (
            {"version": "3.10.14", "implementation": "pypy", "executable": "/opt/pypy/bin/pypy3"},
            "/opt/pypy/bin/pypy3: it is a pypy interpreter",
        ),
    ],
    ids=["32-bit", "pypy"],
)
def test_torch_wheels_are_64_bit_cpython_only(
    tmp_path: Path, python: dict[str, Any], why: str
) -> None:
    p = tmp_path / "p.json"
    p.write_text(json.dumps({**A100, "python": python}))
    r = envsetup("plan", "--profile", str(p), "--json")
    assert r.returncode == 4, r
    assert r.json()["plan"] is None
    assert why in r.stderr and "use a 64-bit CPython 3." in r.stderr
    assert r.stderr.count("\n") == 1


def test_compat_list() -> None:
    r = envsetup("compat", "list", "--json")
    assert r.returncode == 0, r
    rows = r.json()["releases"]
    assert rows[0]["torch"] == load_table().newest and rows[-1]["torch"] == "2.0.0"
    human = envsetup("compat", "list", "--torch", "2.4")
    assert "2.4.1" in human.stdout and "2.5.0" not in human.stdout


# ---------------------------------------------------------------- compat check


def lay_out_index(root: Path, *, extra: list[str]) -> None:
    """A PyTorch-index layout: <variant>/torch/index.html listing the table's wheels (+ extra)."""
    table = load_table()
    pages: dict[str, list[str]] = {}
    for patch, rel in table.patches():
        for name in rel.variants:
            if any(
                b.patches is None or patch.version in b.patches for b in rel.variants[name].values()
            ):
                pages.setdefault(name, []).append(
                    f"torch-{patch.version}+{name}-cp311-cp311-linux_x86_64.whl"
                )
    for name in extra:  # "2.14.1+cu134" or "2.16.0+cpu"
        local = name.split("+")[1]
        pages.setdefault(local, []).append(f"torch-{name}-cp311-cp311-linux_x86_64.whl")
    for variant, files in pages.items():
        d = root / variant / "torch"
        d.mkdir(parents=True)
        links = "".join(f'<a href="{f}#sha256=00">{f}</a><br/>\n' for f in files)
        (d / "index.html").write_text(f"<!DOCTYPE html><html><body>{links}</body></html>")


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.timeout(120)
def test_compat_check_complete(tmp_path: Path, serve: Any) -> None:
    lay_out_index(tmp_path, extra=[])
    r = envsetup("compat", "check", "--index-base", serve(tmp_path), "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["stale"] is False and doc["missing_releases"] == [] and doc["missing_variants"] == []


def _next_release() -> str:
    """One minor past the shipped table's newest: a release it cannot hold yet."""
    major, minor = load_table().newest.split(".")[:2]
    return f"{major}.{int(minor) + 1}.0"


@pytest.mark.timeout(120)
def test_compat_check_stale(tmp_path: Path, serve: Any) -> None:
    later = _next_release()
    lay_out_index(tmp_path, extra=[f"{later}+cpu", "2.13.0+cu134", f"{later}rc1+cpu"])
    base = serve(tmp_path)
    r = envsetup("compat", "check", "--index-base", base, "--json")
    assert r.returncode == 1, r
    doc = r.json()
    assert doc["missing_releases"] == [later]
    assert doc["missing_variants"] == [{"torch": "2.13.0", "variant": "cu134"}]
    human = envsetup("compat", "check", "--index-base", base)
    assert human.returncode == 1 and later in human.stdout and "stale" in human.stdout


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_compat_check_timeout_must_be_positive(value: str) -> None:
    r = envsetup("compat", "check", "--index-base", "http://127.0.0.1:9", f"--timeout={value}")
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"envsetup: --timeout {value}: give the seconds per request")
    assert r.stderr.count("\n") == 1


@pytest.mark.timeout(120)
def test_compat_check_reads_a_local_mirror(tmp_path: Path) -> None:
    later = _next_release()
    lay_out_index(tmp_path / "whl", extra=[f"{later}+cpu"])
    # a page with no index.html: its wheel files are the listing
    flat = tmp_path / "whl" / "cu134" / "torch"
    flat.mkdir(parents=True)
    (flat / "torch-2.13.0+cu134-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    r = envsetup("compat", "check", "--index-base", (tmp_path / "whl").as_uri(), "--json")
    assert r.returncode == 1, r
    doc = r.json()
    assert doc["missing_releases"] == [later] and doc["not_on_index"] == []
    assert doc["missing_variants"] == [{"torch": "2.13.0", "variant": "cu134"}]
    gone = envsetup("compat", "check", "--index-base", (tmp_path / "nothing").as_uri())
    assert gone.returncode == 1 and "is not a directory" in gone.stderr, gone
    assert gone.stderr.count("\n") == 1


@pytest.mark.timeout(60)
def test_compat_check_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = envsetup("compat", "check", "--index-base", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert r.returncode == 1, r  # the index cannot be read: a failure, not a usage error
    assert r.stderr.startswith(f"envsetup: cannot read the index http://127.0.0.1:{port}/")
    assert "connection refused" in r.stderr and r.stderr.count("\n") == 1


# ---------------------------------------------------------------- issue 12: specs, Why, 80 columns


CPU_ONLY = {"system": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.11.7"}}


@pytest.fixture
def cpu_only(tmp_path: Path) -> Path:
    p = tmp_path / "cpu.json"
    p.write_text(json.dumps(CPU_ONLY))
    return p


def test_empty_torch_spec_is_a_usage_error(cpu_only: Path) -> None:
    r = envsetup("plan", "--profile", str(cpu_only), "--torch", "")
    assert r.returncode == 2, r
    assert (
        r.stderr.startswith("envsetup: empty torch version spec ''") and r.stderr.count("\n") == 1
    )


def test_a_valid_spec_matching_nothing_is_no_build(cpu_only: Path) -> None:
    r = envsetup("plan", "--profile", str(cpu_only), "--torch", "2.13.0,!=2.13.0", "--json")
    assert r.returncode == 4, r
    assert r.json()["plan"] is None and "matches" in r.json()["error"]


def test_plan_output_groups_refused_builds_and_says_what_matters(cpu_only: Path) -> None:
    r = envsetup("plan", "--profile", str(cpu_only), env={"COLUMNS": "80"})
    assert r.returncode == 0, r
    newest = load_table().newest  # read from the table: a new release does not break this
    assert f"torch=={newest}" in r.stdout and f"{newest}+cpu" in r.stdout
    assert "known to the table" not in r.stdout and "matching latest" not in r.stdout
    refused = [ln for ln in r.stdout.splitlines() if ln.startswith("  x ")]
    assert re.match(rf"  x \d+ CUDA builds of torch 2\.0\.0 - {re.escape(newest)}: no NVIDIA GPU",
                    refused[0]), refused  # fmt: skip
    assert len(refused) <= 7
    warnings = [ln for ln in r.stdout.splitlines() if ln.startswith("  ! ")]
    assert len([w for w in warnings if "medium-confidence" in w]) == 1


def test_compat_list_reads_at_80_columns() -> None:
    r = envsetup("compat", "list", env={"COLUMNS": "80"})
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    assert "…" not in r.stdout  # nothing truncated
    rows = [ln for ln in lines if ln[:8].strip()[:2] == "2."]
    assert len(rows) == len(load_table().patches())
    # a row is one line, or two where a release has free-threaded builds or ROCm
    starts = [i for i, ln in enumerate(lines) if ln[:8].strip()[:2] == "2."]
    assert max(b - a for a, b in zip(starts, starts[1:])) <= 3
    assert "3.11-3.15" in r.stdout and "3.14t-3.15t" in r.stdout


@pytest.mark.timeout(120)
def test_plan_online_names_a_release_newer_than_the_table(cpu_only: Path) -> None:
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "indexes"))
    from replay import ReplayIndex

    with ReplayIndex() as index:
        page = index.page("/simple/torch/")
        # a release one minor past the table's newest, whatever the table holds by then
        recorded = page["files"][-1]["filename"].split("-")[1]
        major, minor = load_table().newest.split(".")[:2]
        later = f"{major}.{int(minor) + 1}.0"
        f = next(f for f in page["files"] if f["filename"].startswith(f"torch-{recorded}-"))
        page["files"].append(dict(f, filename=f["filename"].replace(recorded, later)))
        index.pages["/simple/torch/"] = page
        env = {"PIP_INDEX_URL": index.package_url}
        r = envsetup("plan", "--profile", str(cpu_only), "--online", env=env)
        assert r.returncode == 0, r
        collected = load_table().collected
        assert (
            f"envsetup: torch {later} is on the index but not in this table (collected "
            f"{collected}): upgrade envsetup\n"
        ) == r.stderr
        doc = envsetup("plan", "--profile", str(cpu_only), "--online", "--json", env=env).json()
        assert doc["freshness"]["newer"].startswith(f"torch {later} is on the index")
        asked = len(index.requests)
        offline = envsetup("plan", "--profile", str(cpu_only), env=env)
        assert offline.stderr == "" and len(index.requests) == asked  # offline by default


@pytest.mark.timeout(60)
def test_plan_online_without_network_still_plans(cpu_only: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PIP_INDEX_URL": f"http://127.0.0.1:{port}/simple"}
    r = envsetup("plan", "--profile", str(cpu_only), "--online", env=env)
    assert r.returncode == 0, r
    assert (
        r.stderr.startswith("envsetup: --online: cannot read the index")
        and r.stderr.count("\n") == 1
    )
