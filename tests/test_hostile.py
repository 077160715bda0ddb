"""Hostile and broken input, as a user can hand it to the real CLI: every case ends quickly with
a one-line error and a documented exit code, never an internal error (3) or a traceback."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import CliResult, run_cli

NESTED = "[" * 100_000 + "]" * 100_000


def one_line_error(r: CliResult, code: int) -> str:
    assert r.returncode == code, r
    assert "Traceback" not in r.stderr, r
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("envsetup: "), r
    return lines[0]


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file", id="binary"),
        pytest.param(NESTED.encode(), "nested too deeply", id="deeply-nested"),
        pytest.param(
            b'{"nvidia": {"gpus": [' + b"{}," * 5000 + b"{}]}}", "5001 entries", id="5001-gpus"
        ),
        pytest.param(b'{"system": {"os": "linux"', "invalid JSON", id="truncated"),
        pytest.param(b"[1, 2]", "must be a JSON object", id="a-list"),
    ],
)
def test_bad_profile_files(tmp_path: Path, content: bytes, expect: str) -> None:
    f = tmp_path / "profile.json"
    f.write_bytes(content)
    line = one_line_error(run_cli("plan", "--profile", str(f)), 2)
    assert str(f) in line and expect in line


def test_profile_that_never_ends() -> None:
    start = time.monotonic()
    line = one_line_error(run_cli("plan", "--profile", "/dev/zero", timeout=45), 2)
    assert "larger than" in line
    assert time.monotonic() - start < 45


def test_huge_profile_is_refused_before_it_is_read(tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    gpu = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    f.write_text(json.dumps({"nvidia": {"driver_version": "570.124.06", "gpus": [gpu] * 200_000}}))
    assert f.stat().st_size > 8 << 20
    start = time.monotonic()
    line = one_line_error(run_cli("plan", "--profile", str(f)), 2)
    assert "MiB" in line and time.monotonic() - start < 20


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_profile_fifo_nobody_writes(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    # A writer that holds the FIFO open and never writes: the read deadline ends the wait.
    fd = os.open(fifo, os.O_RDWR)
    try:
        start = time.monotonic()
        line = one_line_error(run_cli("plan", "--profile", str(fifo), timeout=45), 2)
        assert "nothing could be read" in line and time.monotonic() - start < 45
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        pytest.param(NESTED.encode(), "nested too deeply", id="deeply-nested"),
        pytest.param(b"\xff\xfe\x00garbage", "not a text file", id="binary"),
        pytest.param(
            b'{"files": {"/proc/driver/nvidia/version": {"@file": 7}}}',
            "file name",
            id="bad-reference",
        ),
        pytest.param(
            b'{"files": {"/x": {"@file": "missing.txt"}}}', "No such file", id="missing-reference"
        ),
    ],
)
def test_bad_hardware_recordings(tmp_path: Path, content: bytes, expect: str) -> None:
    f = tmp_path / "replay.json"
    f.write_bytes(content)
    line = one_line_error(run_cli("doctor", "--json", env={"ENVSETUP_HW_REPLAY": str(f)}), 2)
    assert "ENVSETUP_HW_REPLAY" in line and expect in line


@pytest.mark.parametrize(
    "content",
    [pytest.param(NESTED.encode(), id="deeply-nested"), pytest.param(b"\x00\xff", id="binary")],
)
def test_bad_plan_files(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "plan.json"
    f.write_bytes(content)
    line = one_line_error(run_cli("install", "--yes", "--dry-run", "--plan-file", str(f)), 2)
    assert "--plan-file" in line


def _script(tmp_path: Path, name: str, body: str) -> str:
    f = tmp_path / name
    f.write_text("#!/bin/sh\n" + body + "\n")
    f.chmod(0o755)
    return str(f)


def _alive(marker: str) -> list[str]:
    import subprocess

    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if marker in ln and "ps -eo" not in ln]


@pytest.mark.parametrize("command", ["doctor", "plan", "install", "verify"])
@pytest.mark.parametrize(
    ("name", "body"),
    [
        pytest.param("true.sh", "exit 0", id="prints-nothing"),
        pytest.param("braces.sh", "echo '{}'", id="prints-empty-json"),
        pytest.param("binary.sh", r"printf '\377\376\000garbage\n'", id="prints-binary"),
        pytest.param("list.sh", "echo '[1, 2, 3]'", id="prints-a-list"),
    ],
)
def test_a_target_that_is_no_python(tmp_path: Path, command: str, name: str, body: str) -> None:
    py = _script(tmp_path, name, body)
    args = [command, "--python", py] + (["--yes", "--dry-run"] if command == "install" else [])
    line = one_line_error(run_cli(*args), 2)
    assert f"--python {py}" in line and "\\x" not in line and "\ufffd" not in line


@pytest.mark.parametrize("command", ["doctor", "verify"])
def test_a_target_that_hangs_is_ended_with_its_children(tmp_path: Path, command: str) -> None:
    marker = f"sleep 4{os.getpid() % 1000:03d}"
    py = _script(tmp_path, "hang.sh", f"{marker} & {marker}")
    start = time.monotonic()
    r = run_cli(command, "--python", py, timeout=120)
    assert time.monotonic() - start < 45
    one_line_error(r, 2)
    time.sleep(0.5)
    assert _alive(marker) == []
