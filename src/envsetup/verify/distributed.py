"""``envsetup verify --distributed``: an all-reduce across GPUs (NCCL) or CPU processes (gloo),
across nodes when started by torchrun or srun, with the bandwidth it reached.

The check (:mod:`distributed_script`) runs in the target interpreter, like every verify check.
Where it runs from:

- **torchrun** (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set): this process is
  one rank; rank 0 reports for all of them, the others only by their exit code.
- **srun** (``SLURM_STEP_ID`` set): one task per node (``--ntasks-per-node=1``) starts one rank per
  local GPU, as node ``SLURM_NODEID`` of ``SLURM_STEP_NUM_NODES``; one task per GPU is one rank
  (``SLURM_PROCID`` of ``SLURM_STEP_NUM_TASKS``, ``SLURM_LOCALID``). ``MASTER_ADDR`` defaults to the
  first host of the step's node list, ``MASTER_PORT`` to 29500.
- otherwise this machine alone: one rank per local GPU, or two CPU processes over gloo.

A hang is a failed check, never a stuck job: the target runs in its own process group, and when
the deadline passes the whole group (the launcher and every rank) is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Callable, Optional

from envsetup.verify import CheckResult, VerifyReport
from envsetup.verify.runner import MARK

CHECKS = ("dist-init", "all-reduce", "bandwidth", "p2p")
DEFAULT_TIMEOUT = 180.0
DEFAULT_PORT = 29500


def first_host(nodelist: str) -> Optional[str]:
    """The first host of a Slurm host list: ``gpu[007-010,12],cpu1`` → ``gpu007``."""
    nodelist = nodelist.strip()
    if not nodelist:
        return None
    depth, end = 0, len(nodelist)
    for i, c in enumerate(nodelist):
        depth += c == "["
        depth -= c == "]"
        if c == "," and depth == 0:
            end = i
            break
    first = nodelist[:end]
    m = re.match(r"^([^\[]*)\[([^\]]*)\](.*)$", first)
    if not m:
        return first
    head = re.split(r"[,-]", m.group(2))[0]
    return f"{m.group(1)}{head}{m.group(3)}" if "[" not in m.group(3) else None


def speaks(env: Mapping[str, str]) -> bool:
    """Whether this process reports for the whole run (rank 0, or node 0), or only by its exit
    code (the other ranks of torchrun or srun)."""
    if all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        return env["RANK"] == "0"
    if "SLURM_STEP_ID" in env and "SLURM_PROCID" in env:
        return env["SLURM_PROCID"] == "0"
    return True


def launch_config(
    env: Mapping[str, str], processes: Optional[int], timeout: float
) -> tuple[dict[str, object], dict[str, str], str]:
    """(the script's config, variables for the target, how it was started) from the
    environment of torchrun, srun, or neither."""
    # torch's own rendezvous timeout is past envsetup's deadline: the deadline decides.
    base: dict[str, object] = {"timeout": timeout + 30.0}
    if all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        extra = {"LOCAL_RANK": env.get("LOCAL_RANK", "0")}
        return (
            dict(base, role="worker"),
            extra,
            f"torchrun rank {env['RANK']} of {env['WORLD_SIZE']}",
        )
    if "SLURM_STEP_ID" in env and "SLURM_PROCID" in env:
        nodes = int(env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_NNODES") or "1")
        tasks = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1")
        addr = env.get("MASTER_ADDR") or first_host(
            env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
        )
        port = env.get("MASTER_PORT") or str(DEFAULT_PORT)
        if not addr:
            from envsetup.errors import UsageError

            raise UsageError(
                "srun: no MASTER_ADDR and no node list to take it from; export "
                'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
            )
        if tasks == nodes:
            cfg = dict(base, role="launch", nnodes=nodes, node_rank=int(env.get("SLURM_NODEID", "0")),
                       master_addr=addr, master_port=port, processes=processes)  # fmt: skip
            return cfg, {}, f"srun node {env.get('SLURM_NODEID', '0')} of {nodes}"
        extra = {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": str(tasks), "MASTER_ADDR": addr,
                 "MASTER_PORT": port, "LOCAL_RANK": env.get("SLURM_LOCALID", "0")}  # fmt: skip
        return dict(base, role="worker"), extra, f"srun rank {env['SLURM_PROCID']} of {tasks}"
    return dict(base, role="launch", processes=processes), {}, "this machine"


def script_source() -> str:
    from importlib.resources import files

    return files("envsetup.verify").joinpath("distributed_script.py").read_text("utf-8")


def _kill_group(popen: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=10)


def run_distributed(
    python: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    processes: Optional[int] = None,
    env: Optional[Mapping[str, str]] = None,
    on_result: Optional[Callable[[CheckResult], None]] = None,
    on_start: Optional[Callable[[str], None]] = None,
) -> VerifyReport:
    """Run the distributed check in ``python``; every check fails or passes within ``timeout``
    seconds in all."""
    from envsetup import proc
    from envsetup.errors import EnvsetupError

    environ = dict(os.environ if env is None else env)
    config, extra, how = launch_config(environ, processes, timeout)
    full_env = proc.clean_env(extra=extra)
    if env is not None:
        full_env.update(env)
        full_env.update(extra)
    start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="envsetup-dist-")
    script = os.path.join(tmp, "envsetup_distributed_check.py")
    with open(script, "w", encoding="utf-8") as f:
        f.write(script_source())
    results: list[CheckResult] = []
    noise: list[str] = []
    current: Optional[str] = None

    def add(r: CheckResult) -> None:
        results.append(r)
        if on_result is not None:
            on_result(r)

    try:
        # Its own session: on a deadline the launcher and every rank it started go together.
        # (proc.stream cannot start one; this is the one place envsetup needs it.)
        popen = subprocess.Popen(
            [python, "-I", script, json.dumps(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, encoding="utf-8", errors="replace", env=full_env, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EnvsetupError(
            f"could not run {python}: {exc.strerror or exc}", code="target-failed"
        ) from None
    lines: queue.Queue[Optional[str]] = queue.Queue()

    def read() -> None:
        assert popen.stdout is not None
        try:
            for line in popen.stdout:
                lines.put(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = start + timeout
    timed_out = False
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                timed_out = True
                break
            if line is None:
                break
            if not line.startswith(MARK):
                if line.strip():
                    noise.append(line)
                continue
            try:
                event = json.loads(line[len(MARK) :])
            except json.JSONDecodeError:
                continue
            if event.get("event") == "start":
                current = str(event.get("name"))
                if on_start is not None:
                    on_start(current)
            elif event.get("event") == "result":
                current = None
                add(CheckResult(str(event.get("name")), str(event.get("status")),
                                float(event.get("seconds") or 0.0), str(event.get("detail") or ""),
                                dict(event.get("data") or {})))  # fmt: skip
    finally:
        if timed_out:
            _kill_group(popen)
        else:
            try:
                popen.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(popen)  # nothing a rank started outlives the check
        shutil.rmtree(tmp, ignore_errors=True)
    code = popen.returncode
    done = {r.name for r in results}
    if timed_out:
        name = current or next((c for c in CHECKS if c not in done), CHECKS[0])
        add(CheckResult(name, "fail", time.monotonic() - start,
                        f"timed out after {timeout:g} s ({how}; every process of the check "
                        "was killed)"))  # fmt: skip
    elif not results:
        if code == 0:  # a rank other than 0: rank 0 reports for everyone
            add(CheckResult("all-reduce", "pass", time.monotonic() - start,
                            f"{how}: passed (rank 0 reports the figures)"))  # fmt: skip
        else:
            last = noise[-1][:300] if noise else "no output"
            add(CheckResult("dist-init", "fail", time.monotonic() - start,
                            f"{how}: {python} exited with {code}: {last}"))  # fmt: skip
    elif code not in (0, None) and not any(r.status == "fail" for r in results):
        last = noise[-1][:300] if noise else "no output"
        add(CheckResult(current or "ranks", "fail", 0.0, f"exited with {code}: {last}"))
    return VerifyReport(python=python, device_requested="distributed", results=results,
                        seconds=time.monotonic() - start)  # fmt: skip
