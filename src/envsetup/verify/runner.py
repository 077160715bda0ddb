"""Run the check script in the target interpreter and hold each check to its deadline.

One interpreter runs all the checks (``import torch`` costs 1-2 s, so starts are kept few). It
prints a marked JSON line when a check starts and when it ends; a reader thread passes the lines
on, and this side waits for each check's result no longer than its deadline. On a hang or a
crash the child is killed, that check fails with the cause, and the checks after it run in a
fresh interpreter (all skipped instead when the lost check was ``import`` or ``device``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

from envsetup import proc
from envsetup.errors import EnvsetupError
from envsetup.plan import Plan

MARK = "@@envsetup-verify "
STARTUP_TIMEOUT = 60.0  # from starting the interpreter to its first "start" line
BETWEEN_TIMEOUT = 60.0  # from one result to the next "start" line
PREREQUISITES = ("import", "device")

_SCRIPT: Optional[str] = None


def script_source() -> str:
    """The checks script's text (read, never imported: it runs in the target only)."""
    global _SCRIPT
    if _SCRIPT is None:
        from importlib.resources import files

        _SCRIPT = files("envsetup.verify").joinpath("checks_script.py").read_text("utf-8")
    return _SCRIPT


def cache_root(env: Mapping[str, str]) -> Path:
    from envsetup.paths import cache_dir

    return cache_dir(env) / "inductor"


def inductor_cache(python: str, env: Mapping[str, str]) -> tuple[str, bool]:
    """The TORCHINDUCTOR_CACHE_DIR to give the target, and whether it is a temporary one.

    Compiled kernels are reused between runs (a warm torch.compile takes seconds instead of
    tens of seconds) in a per-user cache keyed by the interpreter and the C++ compiler. When the
    compiler the target would use cannot be found, a warm cache could hide that torch.compile
    is broken, so a fresh temporary directory is used instead.
    """
    if env.get("TORCHINDUCTOR_CACHE_DIR"):
        return env["TORCHINDUCTOR_CACHE_DIR"], False
    cxx = env.get("CXX") or "g++"
    found = shutil.which(cxx, path=env.get("PATH"))
    if found is None:
        return tempfile.mkdtemp(prefix="envsetup-inductor-"), True
    key = f"{os.path.realpath(python)}\0{os.path.realpath(found)}\0{env.get('CC', '')}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_root(env) / digest
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return tempfile.mkdtemp(prefix="envsetup-inductor-"), True
    return str(path), False


class _Child:
    """One run of the script: its lines arrive on a queue, None at the end of its output."""

    def __init__(self, python: str, config: dict[str, Any], env: dict[str, str]):
        self.log = io.StringIO()
        argv = [python, "-I", "-c", script_source(), json.dumps(config)]
        try:
            self.proc = proc.stream(argv, self.log, env=env)
        except OSError as exc:
            raise EnvsetupError(
                f"could not run {python}: {exc.strerror or exc}", code="target-failed"
            ) from None
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.noise: deque[str] = deque(maxlen=20)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.proc.lines():
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            self.lines.put(None)

    def next_line(self, deadline: float) -> tuple[bool, Optional[str]]:
        """(timed_out, line); line None at the end of the output."""
        wait = deadline - time.monotonic()
        if wait <= 0:
            return True, None
        try:
            return False, self.lines.get(timeout=wait)
        except queue.Empty:
            return True, None

    def exit_code(self) -> Optional[int]:
        try:
            return self.proc.popen.wait(timeout=10)
        except Exception:
            return None

    def kill(self) -> None:
        self.proc.kill()

    def last_words(self) -> str:
        for line in reversed(self.noise):
            text = line.strip()
            if text and not text.startswith(("File ", "^", "~")):
                return text[:300]
        return "no output"


def _describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class _Collector:
    """The results so far, judged, in the order they came; passes each on to ``on_result``."""

    def __init__(self, plan: Optional[Plan], on_result: Optional[Callable[[Any], None]]):
        self.plan = plan
        self.on_result = on_result
        self.results: dict[str, Any] = {}
        self.done = False  # the current child said it had run all its checks

    def add(self, result: Any) -> None:
        from envsetup.verify.verdicts import judge

        result = judge(result, self.plan)
        self.results[result.name] = result
        if self.on_result is not None:
            self.on_result(result)

    def first_pending(self, names: list[str]) -> str:
        return next((n for n in names if n not in self.results), names[-1])


def _run_one(
    python: str,
    names: list[str],
    config: dict[str, Any],
    env: dict[str, str],
    timeouts: Mapping[str, float],
    out: _Collector,
    on_start: Optional[Callable[[str], None]],
) -> Optional[Any]:
    """Run ``names`` in one child. Returns the failed result of the check it lost (hung or
    crashed in), or None when the child ran to its end."""
    from envsetup.verify import CheckResult

    out.done = False
    child = _Child(python, dict(config, checks=names), env)
    current: Optional[str] = None
    started = time.monotonic()
    deadline = started + STARTUP_TIMEOUT
    try:
        while True:
            timed_out, line = child.next_line(deadline)
            if timed_out:
                child.kill()
                if current is None:
                    return CheckResult(
                        out.first_pending(names),
                        "fail",
                        time.monotonic() - started,
                        f"{python} did not start the checks within {STARTUP_TIMEOUT:g} s",
                    )
                limit = timeouts.get(current, 60.0)
                return CheckResult(
                    current,
                    "fail",
                    time.monotonic() - started,
                    f"timed out after {limit:g} s (the check was killed)",
                )
            if line is None:  # the child's output ended
                code = child.exit_code()
                if current is None and out.done:
                    return None
                return CheckResult(
                    current or out.first_pending(names),
                    "fail",
                    time.monotonic() - started,
                    f"{python} {_describe_exit(code)} during this check: {child.last_words()}",
                )
            if not line.startswith(MARK):
                if line.strip():
                    child.noise.append(line)
                continue
            try:
                event = json.loads(line[len(MARK) :])
            except json.JSONDecodeError:
                child.noise.append(line)
                continue
            kind = event.get("event")
            if kind == "start":
                current = str(event.get("name"))
                started = time.monotonic()
                deadline = started + timeouts.get(current, 60.0)
                if on_start is not None:
                    on_start(current)
            elif kind == "result":
                took = float(event.get("seconds") or 0.0)
                overran = current is not None and took > timeouts.get(current, 60.0)
                if current is not None and overran and event.get("name") == current:
                    limit = timeouts.get(current, 60.0)
                    # Over its deadline by the check's own clock, though its result came before
                    # this side looked (a check faster than this thread's wake-up): the same as
                    # a hang caught live, so that the outcome never depends on the race.
                    child.kill()
                    return CheckResult(
                        current, "fail", took, f"timed out after {limit:g} s (the check was killed)"
                    )
                out.add(
                    CheckResult(
                        name=str(event.get("name")),
                        status=str(event.get("status")),
                        seconds=float(event.get("seconds") or 0.0),
                        detail=str(event.get("detail") or ""),
                        data=dict(event.get("data") or {}),
                    )
                )
                current = None
                started = time.monotonic()
                deadline = started + BETWEEN_TIMEOUT
            elif kind == "done":
                out.done = True
                child.exit_code()
                return None
    finally:
        child.kill()


def run_checks(
    python: str,
    names: list[str],
    config: dict[str, Any],
    *,
    timeouts: Mapping[str, float],
    plan: Optional[Plan] = None,
    env: Optional[Mapping[str, str]] = None,
    on_result: Optional[Callable[[Any], None]] = None,
    on_start: Optional[Callable[[str], None]] = None,
) -> tuple[list[Any], Optional[str]]:
    """Run the named checks; returns the results (in ``names`` order) and the inductor cache
    directory used (None when it was a temporary one, removed again)."""
    from envsetup.verify import OFFLINE_ENV, CheckResult

    full_env = proc.clean_env(extra=env)
    full_env.update(OFFLINE_ENV)
    cache, temporary = inductor_cache(python, full_env)
    full_env["TORCHINDUCTOR_CACHE_DIR"] = cache
    out = _Collector(plan, on_result)
    try:
        pending = list(names)
        while pending:
            lost = _run_one(python, pending, config, full_env, timeouts, out, on_start)
            if lost is not None:
                out.add(lost)
            pending = [n for n in names if n not in out.results]
            if lost is None:
                # The child finished without reporting some checks: never loop on it.
                for n in pending:
                    out.add(CheckResult(n, "fail", 0.0, f"{python} did not report this check"))
                pending = []
            elif lost.name in PREREQUISITES:
                why = "torch did not import" if lost.name == "import" else "no usable device"
                for n in pending:
                    out.add(CheckResult(n, "skip", 0.0, f"{why} (see the {lost.name} check)"))
                pending = []
    finally:
        if temporary:
            shutil.rmtree(cache, ignore_errors=True)
    return [out.results[n] for n in names if n in out.results], (None if temporary else cache)
