"""verify --distributed for real with the real CPU torch: gloo across two processes, started by
envsetup, by the real torchrun, and as srun would start it; a rank that never comes is a failed
check at its deadline, with every process of the check gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def leftovers() -> list[str]:
    """Processes still running the check's script (it lives in an envsetup-dist-* directory)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "envsetup_distributed_check.py" in cmd:
            found.append(f"{pid}: {cmd}")
    return found


@pytest.mark.timeout(300)
def test_gloo_across_two_processes(torch_venv: Path) -> None:
    res = run_cli("verify", "--distributed", "--python", str(torch_venv), "--json", timeout=240)
    doc = res.json()
    assert res.returncode == 0 and doc["ok"], res
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["dist-init"]["data"] == {**checks["dist-init"]["data"], "backend": "gloo",
                                           "world_size": 2}  # fmt: skip
    assert checks["all-reduce"]["status"] == "pass" and checks["all-reduce"]["data"]["sum"] == 3.0
    bw = checks["bandwidth"]["data"]
    assert bw["busbw_gbps"] > 0 and bw["iterations"] >= 1
    assert [r["rank"] for r in bw["ranks"]] == [0, 1] and bw["nodes"] == [socket.gethostname()]
    assert checks["p2p"]["status"] == "skip"
    assert leftovers() == []


@pytest.mark.timeout(300)
def test_under_the_real_torchrun(torch_venv: Path) -> None:
    """torchrun starts two ranks; each runs envsetup, rank 0 reports for both."""
    torchrun = torch_venv.parent / "torchrun"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVSETUP_")}
    env.update(NO_COLOR="1", PYTHONPATH="")
    cp = subprocess.run(
        [str(torchrun), "--nproc-per-node=2", "--master-port", str(free_port()), "--no-python",
         sys.executable, "-m", "envsetup", "verify", "--distributed", "--python", str(torch_venv),
         "--timeout", "150"],
        capture_output=True, text=True, env=env, timeout=240, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert cp.stdout.count("envsetup verify --distributed") == 1  # rank 1 stays quiet
    assert "gloo, 2 rank(s)" in cp.stdout and "sum over 2 rank(s) correct" in cp.stdout
    assert "distributed check passed" in cp.stdout


@pytest.mark.timeout(120)
def test_a_rank_that_never_comes_is_a_timeout_not_a_hang(torch_venv: Path) -> None:
    """srun started this task as node 0 of 2, and node 1 never starts: node 0's two ranks wait
    at the rendezvous until the deadline, then the check fails and all of them are killed."""
    env = {
        "SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_NODEID": "0", "SLURM_LOCALID": "0",
        "SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_STEP_NODELIST": "localhost,nowhere", "MASTER_PORT": str(free_port()),
    }  # fmt: skip
    start = time.monotonic()
    res = run_cli("verify", "--distributed", "--python", str(torch_venv), "--timeout", "12",
                  "--json", env=env, timeout=100)  # fmt: skip
    took = time.monotonic() - start
    doc = res.json()
    assert res.returncode == 1 and not doc["ok"]
    (failed,) = [c for c in doc["checks"] if c["status"] == "fail"]
    assert failed["name"] == "dist-init" and "timed out after 12 s" in failed["detail"]
    assert "srun node 0 of 2" in failed["detail"]
    assert 12 <= took < 50
    assert leftovers() == []


def test_first_host_of_a_slurm_node_list() -> None:
    from envsetup.verify.distributed import first_host

    assert first_host("gpu[007-010,12],cpu1") == "gpu007"
    assert first_host("node1,node2") == "node1"
    assert first_host("rack2-gpu[3-5]") == "rack2-gpu3"
    assert first_host("") is None


def test_srun_without_a_master_is_a_usage_error(torch_venv: Path) -> None:
    env = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_STEP_NUM_NODES": "2",
           "SLURM_STEP_NUM_TASKS": "2"}  # fmt: skip
    res = run_cli("verify", "--distributed", "--python", str(torch_venv), env=env)
    assert res.returncode == 2 and "MASTER_ADDR" in res.stderr and res.stderr.count("\n") == 1
