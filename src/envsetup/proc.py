"""The one subprocess helper: argv lists, never a shell, a cleaned environment, timeouts.

Everything envsetup runs (the target interpreter, pip, uv, conda, nvidia-smi, compilers) goes
through :func:`run` or :func:`stream`, so the environment hygiene lives in one place.

Each program starts in a session of its own (POSIX), so that it and everything it starts form
one process group: a timeout, Ctrl-C or a signal to envsetup ends the whole group, never only
its leader (whose children would otherwise run on, re-parented to PID 1), and a terminal's
Ctrl-C or hang-up reaches envsetup alone, which decides what the program's end means.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

POSIX = os.name == "posix"

# Variables that would make a child interpreter or installer behave differently from what the
# user's shell would give them, or that would make it wait for input.
_DROP = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    "PYTHONNOUSERSITE",
    "__PYVENV_LAUNCHER__",
)
_SET = {"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONIOENCODING": "utf-8"}


def shell_join(argv: Sequence[str]) -> str:
    """A command line to paste into this system's shell: POSIX quoting, or cmd's on Windows."""
    if os.name == "nt":
        return subprocess.list2cmdline(list(argv))
    import shlex

    return shlex.join(argv)


def clean_env(extra: Mapping[str, str] | None = None, drop: Sequence[str] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP and k not in drop}
    env.update(_SET)
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int  # -1 when the program could not be started, -2 on timeout
    stdout: str
    stderr: str
    seconds: float
    error: Optional[str] = None  # why it did not run to completion

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def end_group(popen: subprocess.Popen[str], grace: float = 0.0) -> None:
    """End ``popen`` and every process of its group: SIGTERM, ``grace`` seconds, then SIGKILL
    (SIGKILL at once when ``grace`` is 0). Returns once the leader is reaped and the group is
    gone (or after a few seconds, for a process that ignores SIGKILL in the kernel)."""
    if not POSIX:
        if popen.poll() is None:
            popen.kill()
        popen.wait()
        return
    pgid = popen.pid  # the leader of its own session: its pid is the group's id
    if grace > 0 and _signal_group(pgid, signal.SIGTERM):
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=grace)
    _signal_group(pgid, signal.SIGKILL)
    popen.wait()
    deadline = time.monotonic() + 5.0
    while _group_alive(pgid) and time.monotonic() < deadline:
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.01)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running (zombies, already dead, do not count)."""
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its credentials: it is still there
        return True
    return True


def run(
    argv: Sequence[str],
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    cwd: str | Path | None = None,
) -> Result:
    """Run a program to completion. Never raises for the program's own failures.

    On a timeout (and on Ctrl-C or any exception while waiting) the program's whole process
    group is ended, so nothing it started outlives it."""
    start = time.monotonic()
    args = tuple(str(a) for a in argv)
    try:
        popen = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=dict(env) if env is not None else clean_env(),
            cwd=cwd,
            start_new_session=POSIX,
        )
    except FileNotFoundError:
        return Result(args, -1, "", "", time.monotonic() - start, f"{args[0]}: not found")
    except PermissionError:
        return Result(args, -1, "", "", time.monotonic() - start, f"{args[0]}: not executable")
    except OSError as exc:
        return Result(args, -1, "", "", time.monotonic() - start, f"{args[0]}: {exc.strerror}")
    try:
        out, err = popen.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        end_group(popen)
        out, err = popen.communicate()
        msg = f"{args[0]}: timed out after {timeout:g} s"
        return Result(args, -2, out or "", err or "", time.monotonic() - start, msg)
    except BaseException:
        end_group(popen)
        raise
    return Result(args, popen.returncode, out, err, time.monotonic() - start)


class Streamed:
    """A running program whose merged output is read line by line and copied to a log file.

    ``redact`` rewrites every line (and the command line) before it reaches the log or the
    caller: the install masks index credentials with it."""

    def __init__(
        self,
        argv: Sequence[str],
        log: IO[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        redact: Callable[[str], str] | None = None,
    ):
        self.argv = tuple(str(a) for a in argv)
        self.log = log
        self.redact = redact or (lambda s: s)
        log.write(self.redact(f"$ {' '.join(self.argv)}") + "\n")
        log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=dict(env) if env is not None else clean_env(),
            cwd=cwd,
            bufsize=1,
            start_new_session=POSIX,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def lines(self) -> Iterator[str]:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = self.redact(raw)
            self.log.write(line)
            yield line.rstrip("\n")
        self.log.flush()

    def wait(self, timeout: float | None = None) -> int:
        rc = self.popen.wait(timeout=timeout)
        self.log.write(f"[exit {rc}]\n")
        self.log.flush()
        return rc

    def stop(self, grace: float = 2.0) -> None:
        """End the program and everything it started (its whole process group)."""
        end_group(self.popen, grace)

    kill = stop


def stream(
    argv: Sequence[str],
    log: IO[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    redact: Callable[[str], str] | None = None,
) -> Streamed:
    """Start a long-running program (an installer) whose output is shown as it comes."""
    return Streamed(argv, log, env=env, cwd=cwd, redact=redact)
