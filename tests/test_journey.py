"""`envsetup` alone on a terminal: doctor, plan, then the install wizard; driven through a real
pseudo-terminal. Nothing is installed here (the install wizard has its own terminal test)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from machines import h100x8, write

pexpect = pytest.importorskip("pexpect")


def spawn(tmp_path: Path, recording: dict[str, Any]) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVSETUP_")}
    env.update(NO_COLOR="1", TERM="xterm", ENVSETUP_HW_REPLAY=write(tmp_path, recording))
    return pexpect.spawn(sys.executable, ["-m", "envsetup"], env=env, encoding="utf-8",
                         timeout=60, dimensions=(50, 160))  # fmt: skip


@pytest.mark.timeout(120)
def test_journey_shows_doctor_then_plan_and_changes_nothing_when_declined(tmp_path: Path) -> None:
    child = spawn(tmp_path, h100x8())
    child.expect("1/3 doctor")
    child.expect("NVIDIA H100 80GB HBM3")
    child.expect("2/3 plan")
    # driver 565 on Hopper: a CUDA 12.x build (13.x needs 580), chosen by the resolver
    child.expect(r"torch==([0-9.]+)\S* \((cu12\d)\)")
    planned = f"{child.match.group(1)}+{child.match.group(2)}"
    # this interpreter has no torch: the question names the build it would install
    child.expect(r"(\w+) torch (\S+) now\?")
    assert (child.match.group(1), child.match.group(2)) == ("Install", planned)
    child.sendline("n")
    child.expect("nothing was changed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.timeout(120)
def test_ctrl_c_at_the_prompt_exits_130(tmp_path: Path) -> None:
    child = spawn(tmp_path, h100x8())
    child.expect(r"Install torch \S+ now")
    child.kill(signal.SIGINT)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130


def test_without_a_terminal_it_prints_the_help() -> None:
    res = run_cli()
    assert res.returncode == 0
    assert "doctor" in res.stdout and "On a terminal, `envsetup` alone runs" in res.stdout


@pytest.mark.timeout(600)
def test_declined_install_verifies_what_is_there_with_a_training_run(
    tmp_path: Path, torch_venv: Path
) -> None:
    """An interpreter with torch 2.13.0 on a CPU machine: the journey offers the newer build;
    declined, it offers to verify torch as it is, and then the workload, which trains for real."""
    import site

    import envsetup
    from machines import cpu_only
    from verify_venvs import layered_venv, site_packages

    py = layered_venv(tmp_path / "env", torch_venv)  # torch from the session venv, unchanged
    # envsetup and its libraries from this test's own environment, after torch's
    here = [Path(envsetup.__file__).parent.parent, *map(Path, site.getsitepackages())]
    (site_packages(py) / "zz_envsetup_test.pth").write_text("\n".join(map(str, here)) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVSETUP_")}
    env.update(NO_COLOR="1", TERM="xterm", ENVSETUP_HW_REPLAY=write(tmp_path, cpu_only()))
    child = pexpect.spawn(str(py), ["-m", "envsetup"], env=env, encoding="utf-8", timeout=300,
                          dimensions=(50, 160))  # fmt: skip
    child.expect(r"Upgrade torch 2\.13\.0\S* → \S+ now\?", timeout=120)
    child.sendline("n")
    child.expect(r"Verify torch 2\.13\.0\S* as it is\?", timeout=60)
    child.sendline("y")
    child.expect(r"Also train a small model", timeout=60)
    child.sendline("y")
    child.expect(r"workload\s+[\d.]+s")  # the row of the training run
    child.expect(pexpect.EOF)
    child.close()
    out = child.before or ""
    assert child.exitstatus == 0, out
