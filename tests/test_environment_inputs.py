"""What the environment hands envsetup, as cron, CI and odd shells do: a closed standard input,
cache locations that cannot be used. Each is a one-line error with its exit code, or behaves as
its empty equivalent; never an internal error (exit 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_venv


def closed_stdin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``envsetup ARGS <&-``: file descriptor 0 closed, as a service or some CI runners start
    a command (Python's sys.stdin is then None)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ENVSETUP_")}
    full.update({"NO_COLOR": "1", "COLUMNS": "120", **(env or {})})
    cmd = " ".join(f"'{a}'" for a in [sys.executable, "-m", "envsetup", *args])
    return subprocess.run(
        ["sh", "-c", f"exec {cmd} <&-"], capture_output=True, text=True, env=full, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        ((), 0, "alone runs doctor"),  # the journey needs a terminal: the help says so
        (("doctor", "--json"), 0, ""),
        (("fleet", "report", "-"), 2, "no node profiles in standard input"),
    ],
    ids=["bare", "doctor", "fleet-report-stdin"],
)
def test_a_closed_stdin_is_an_empty_one(args: tuple[str, ...], code: int, needle: str) -> None:
    r = closed_stdin(*args)
    assert r.returncode == code, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert needle in r.stdout + r.stderr


def test_install_without_any_input_runs_from_its_flags(torch_venv: Path) -> None:
    r = closed_stdin(
        "install", "--dry-run", "--variant", "cpu", "--torch", "2.13.0", "--python", str(torch_venv)
    )
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stdout, r.stdout


@pytest.mark.parametrize("kind", ["a-file", "unmakeable"])
def test_an_unusable_cache_location_is_named_before_anything_changes(
    kind: str, tmp_path: Path
) -> None:
    py = make_venv(tmp_path / "venv")
    before = subprocess.run([str(py), "-m", "pip", "freeze", "--all"], capture_output=True,
                            text=True).stdout  # fmt: skip
    where = tmp_path / "cache"
    if kind == "a-file":
        where.write_text("not a directory")
    else:  # a directory below a file (a read-only directory would not stop root)
        (tmp_path / "cache-file").write_text("")
        where = tmp_path / "cache-file" / "below"
    (tmp_path / "wheels").mkdir()
    r = closed_stdin(
        "install", "--yes", "--variant", "cpu", "--torch", "2.13.0", "--python", str(py),
        "--find-links", str(tmp_path / "wheels"), env={"XDG_CACHE_HOME": str(where)},
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert f"XDG_CACHE_HOME={where}" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    after = subprocess.run([str(py), "-m", "pip", "freeze", "--all"], capture_output=True,
                           text=True).stdout  # fmt: skip
    assert after == before


def test_a_relative_cache_location_is_ignored_as_the_xdg_spec_says(tmp_path: Path) -> None:
    from envsetup.paths import cache_dir

    assert cache_dir({"XDG_CACHE_HOME": "rel/dir", "HOME": str(tmp_path)}).is_absolute()
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "envsetup"


@pytest.mark.parametrize("command", ["doctor", "verify"])
def test_an_output_that_cannot_encode_the_marks_still_gets_the_report(
    command: str, torch_venv: Path
) -> None:
    """PYTHONIOENCODING=ascii, or a Windows code page when output is redirected: the marks
    (✓, ·, →) become '?' instead of an internal error."""
    args = ["--quick", "--device", "cpu"] if command == "verify" else []
    r = closed_stdin(command, "--python", str(torch_venv), *args,
                     env={"PYTHONIOENCODING": "ascii"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "internal error" not in r.stderr and r.stdout.isascii() and r.stdout.strip()
