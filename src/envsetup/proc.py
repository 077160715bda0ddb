"""The one subprocess helper: argv lists, never a shell, a cleaned environment, timeouts.

Everything envsetup runs (the target interpreter, pip, uv, conda, nvidia-smi, compilers) goes
through :func:`run` or :func:`stream`, so the environment hygiene lives in one place.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

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


def run(
    argv: Sequence[str],
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    cwd: str | Path | None = None,
) -> Result:
    """Run a program to completion. Never raises for the program's own failures."""
    start = time.monotonic()
    args = tuple(str(a) for a in argv)
    try:
        cp = subprocess.run(
            args,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            env=dict(env) if env is not None else clean_env(),
            input=input,
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return Result(args, -1, "", "", time.monotonic() - start, f"{args[0]}: not found")
    except PermissionError:
        return Result(args, -1, "", "", time.monotonic() - start, f"{args[0]}: not executable")
    except OSError as exc:
        return Result(args, -1, "", "", time.monotonic() - start, f"{args[0]}: {exc.strerror}")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        msg = f"{args[0]}: timed out after {timeout:g} s"
        return Result(args, -2, out, err, time.monotonic() - start, msg)
    return Result(args, cp.returncode, cp.stdout, cp.stderr, time.monotonic() - start)


class Streamed:
    """A running program whose merged output is read line by line and copied to a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        log: IO[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ):
        self.argv = tuple(str(a) for a in argv)
        self.log = log
        log.write(f"$ {' '.join(self.argv)}\n")
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
        )

    def lines(self) -> Iterator[str]:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.log.write(line)
            yield line.rstrip("\n")
        self.log.flush()

    def wait(self, timeout: float | None = None) -> int:
        rc = self.popen.wait(timeout=timeout)
        self.log.write(f"[exit {rc}]\n")
        self.log.flush()
        return rc

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def stream(
    argv: Sequence[str],
    log: IO[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Streamed:
    """Start a long-running program (an installer) whose output is shown as it comes."""
    return Streamed(argv, log, env=env, cwd=cwd)
