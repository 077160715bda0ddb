"""The one subprocess helper ends whole process groups: nothing a program started outlives it."""

from __future__ import annotations

import io
import os
import sys
import time

import pytest

from envsetup import proc

# A program that starts a grandchild (which would outlive it), prints its pid, and waits.
SPAWNS = (
    "import subprocess, sys, time; "
    "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "print(c.pid, flush=True); time.sleep(60)"
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_timed_out_target_leaves_no_process() -> None:
    res = proc.run([sys.executable, "-c", SPAWNS], timeout=2)
    assert res.returncode == -2 and "timed out after 2 s" in (res.error or "")
    grandchild = int(res.stdout.split()[0])
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_stopping_an_installer_stops_its_group() -> None:
    log = io.StringIO()
    child = proc.stream([sys.executable, "-c", SPAWNS], log)
    assert os.getpgid(child.pid) == child.pid != os.getpgid(0)  # a group of its own
    grandchild = int(next(child.lines()))
    assert alive(grandchild)
    child.stop(grace=0.5)
    assert not alive(child.pid) and not alive(grandchild)


def test_secrets_never_reach_the_log() -> None:
    log = io.StringIO()
    child = proc.stream([sys.executable, "-c", "print('https://u:tok@host/x')"], log,
                        redact=lambda s: s.replace("tok", "***"))  # fmt: skip
    assert list(child.lines()) == ["https://u:***@host/x"]
    assert child.wait() == 0
    assert "tok" not in log.getvalue()
