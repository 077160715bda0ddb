"""The target interpreter: the Python that torch is (or will be) installed into.

envsetup never imports torch (or anything of the target's) in its own process: it runs a small
self-contained script in the target, which prints one JSON document on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

from envsetup import proc
from envsetup.errors import EnvsetupError, UsageError


def resolve_python(path: Optional[str]) -> str:
    """The target interpreter's path: ``path`` (a file, or a venv directory), else our own."""
    if path is None:
        return sys.executable
    p = Path(path).expanduser()
    if p.is_dir():
        for cand in (p / "bin" / "python", p / "Scripts" / "python.exe", p / "python.exe"):
            if cand.is_file():
                return str(cand.absolute())
        raise UsageError(
            f"--python {path}: a directory with no bin/python in it; "
            "give the path of a Python interpreter or of a virtual environment"
        )
    if not p.exists():
        found = shutil.which(path) if os.sep not in path else None
        if found:
            return found
        raise UsageError(f"--python {path}: no such file; give the path of a Python interpreter")
    if not os.access(p, os.X_OK):
        raise UsageError(f"--python {path}: not executable; give the path of a Python interpreter")
    return str(p.absolute())  # keep a venv's symlinked python: resolving it leaves the venv


PROBE_TIMEOUT = 15.0  # seconds for an interpreter to say it is one


def check_python(python: str, flag: str = "--python") -> None:
    """A one-line UsageError unless ``python`` answers as a CPython/PyPy 3 interpreter within
    :data:`PROBE_TIMEOUT` (``/bin/true``, a shell script that hangs, a binary that prints
    garbage are the user's mistakes, exit 2)."""
    probe = "import sys, json; print(json.dumps({'python': list(sys.version_info[:2])}))"
    res = proc.run([python, "-I", "-c", probe], timeout=PROBE_TIMEOUT)
    why = res.error
    if why is None:
        lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
        try:
            data = json.loads(lines[-1]) if lines else None
        except ValueError:
            data = None
        ok = isinstance(data, dict) and isinstance(data.get("python"), list)
        major = data["python"][:1] if ok and isinstance(data, dict) else None
        if res.returncode != 0 or not ok or major != [3]:
            why = f"exit {res.returncode}, {'no Python answer' if not ok else 'not Python 3'}"
    if why is not None:
        raise UsageError(
            f"{flag} {python}: does not run as a Python interpreter ({why}); give the path "
            "of a Python 3 interpreter or of a virtual environment"
        )


def printable(text: str, limit: int = 80) -> str:
    """A program's output fit for a one-line message: binary is named, not dumped."""
    if any((not c.isprintable() and c not in "\t") or c == "\ufffd" for c in text):
        return f"{len(text)} characters of binary output"
    text = " ".join(text.split())
    return repr(text) if len(text) <= limit else repr(text[: limit - 1] + "…")


def run_script(
    python: str,
    script: str,
    args: tuple[str, ...] = (),
    *,
    timeout: float = 60.0,
    env: Optional[dict[str, str]] = None,
    isolated: bool = True,
) -> Any:
    """Run ``script`` (Python source) in the target and return the JSON it printed last.

    ``isolated`` runs with ``-I`` (no user site, no PYTHONPATH, no cwd on sys.path) so the
    target's own sys.path is what is seen. Raises EnvsetupError when the script cannot run.
    """
    argv = [python, *(["-I"] if isolated else []), "-c", script, *args]
    res = proc.run(argv, timeout=timeout, env=env if env is not None else proc.clean_env())
    if res.error:
        raise EnvsetupError(f"could not run {python}: {res.error}", code="target-failed")
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvsetupError(
            f"{python} failed (exit {res.returncode}): {tail}", code="target-failed"
        )
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise EnvsetupError(
            f"{python} printed something that is not JSON: {printable(lines[-1])}",
            code="target-failed",
        ) from None
