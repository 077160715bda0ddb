"""One install transaction per environment at a time.

The lock belongs to the target environment (its ``sys.prefix``), not to the process: every
``envsetup install`` (by flags, the wizard, or the bare-``envsetup`` journey) that changes an
environment takes it before the snapshot and keeps it through the restore. A second one on the
same environment waits, saying which process holds it; with ``--no-wait`` it stops at once
(exit 5, :data:`envsetup.errors.EXIT_BUSY`). Dry runs take no lock.

Where it lives: ``PREFIX/.envsetup-lock/`` when the prefix is writable (a venv or conda
environment: every user and every envsetup that can change it sees the same lock, and it goes
with the environment when that is removed; the snapshot skips the directory); otherwise (a
root-owned prefix whose site-packages the user may still write) in the user's cache,
``~/.cache/envsetup/locks/<hash of the prefix's real path>/``.

The lock itself is an OS lock (``filelock``: ``flock`` on POSIX, ``msvcrt.locking`` on
Windows), which the OS releases when its process dies however it dies (SIGKILL, a crash, a
power-off of the process): a lock left by a dead process is simply free, so taking it over
needs no guess about staleness. Beside it, ``holder.json`` says who holds it (pid, host,
command, since when), for the waiting line; it is written once the lock is held and removed
before it is released, and a record left by a dead holder is overwritten by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from envsetup.errors import EXIT_BUSY, EnvsetupError

LOCK_DIR = ".envsetup-lock"  # in the prefix; the snapshot does not record it
LOCK_FILE = "install.lock"
HOLDER_FILE = "holder.json"
POLL = 0.1  # seconds between two tries while waiting


class BusyError(EnvsetupError):
    """Another envsetup install holds the environment (``--no-wait``)."""

    code = "busy"
    exit_code = EXIT_BUSY


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    since: float  # time.time() when the lock was taken
    prefix: str

    def describe(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host}, `{self.command}`, since {when}"


_CREDENTIAL = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def _command() -> str:
    """This process's command line, as the holder record shows it (credentials masked)."""
    args = [_CREDENTIAL.sub(r"\1***@", a) for a in sys.argv[1:]]
    line = " ".join(["envsetup", *args])
    return line if len(line) <= 200 else line[:199] + "…"


def place(prefix: str) -> Path:
    """The directory holding the lock of the environment at ``prefix`` (made if missing)."""
    own = Path(prefix) / LOCK_DIR
    with contextlib.suppress(OSError):
        own.mkdir(exist_ok=True)
    if own.is_dir() and os.access(own, os.W_OK):
        return own
    from envsetup.paths import cache_dir

    real = os.path.normcase(os.path.realpath(prefix))
    key = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    where = cache_dir() / "locks" / key
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvsetupError(
            f"no place for the install lock of {prefix}: {where}: {exc.strerror or exc}; "
            "make the cache writable (XDG_CACHE_HOME)",
            code="lock-failed",
        ) from None
    return where


def read_holder(where: Path) -> Optional[Holder]:
    try:
        data = json.loads((where / HOLDER_FILE).read_text(encoding="utf-8"))
        return Holder(
            int(data["pid"]), str(data["host"]), str(data["command"]), float(data["since"]),
            str(data["prefix"]),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_holder(where: Path, holder: Holder) -> None:
    tmp = where / f"{HOLDER_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(holder)), encoding="utf-8")
    os.replace(tmp, where / HOLDER_FILE)


def _who(where: Path) -> str:
    """The holder, as the waiting line names it (its record may lag its lock by a moment)."""
    for _ in range(10):
        holder = read_holder(where)
        if holder is not None:
            return holder.describe()
        time.sleep(0.05)
    return f"another process (its record {where / HOLDER_FILE} is missing)"


@dataclass
class Held:
    where: Path
    waited: bool  # another install held it first: what it found must be read again


@contextlib.contextmanager
def hold(prefix: str, *, wait: bool = True, say: Callable[[str], None]) -> Iterator[Held]:
    """Hold the install lock of the environment at ``prefix`` for the ``with`` body.

    Free: taken at once. Held by another process: with ``wait``, ``say`` gets one line naming
    the holder and this waits until it is released (Ctrl-C stops the wait, nothing changed);
    without, :class:`BusyError` names the holder."""
    from filelock import FileLock, Timeout

    where = place(prefix)
    lock = FileLock(str(where / LOCK_FILE))
    waited = False
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = _who(where)
        if not wait:
            raise BusyError(
                f"another envsetup install is changing {prefix}: {who}; nothing was changed "
                "(without --no-wait, envsetup waits for it)"
            ) from None
        say(f"waiting for the envsetup install already changing {prefix}: {who}")
        lock.acquire(timeout=-1, poll_interval=POLL)
        waited = True
    try:
        mine = Holder(os.getpid(), socket.gethostname(), _command(), time.time(), prefix)
        with contextlib.suppress(OSError):
            _write_holder(where, mine)
        yield Held(where, waited)
    finally:
        with contextlib.suppress(OSError):
            if (h := read_holder(where)) is not None and h.pid == os.getpid():
                (where / HOLDER_FILE).unlink()
        lock.release()


__all__ = ["BusyError", "Held", "Holder", "hold", "place", "read_holder"]
