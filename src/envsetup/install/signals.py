"""SIGINT, SIGTERM and SIGHUP during an install: all three end up the same way.

While :class:`Guard` is active, each of them raises :class:`Interrupted` in the main thread
(as Ctrl-C raises KeyboardInterrupt), so the transaction stops the installer's process group,
restores the environment and exits with 128 + the signal's number (130, 143, 129) after one
line saying so. While the restore runs (:meth:`Guard.deferred`), further signals are noted,
not raised: a second Ctrl-C or a ``docker stop`` cannot cut the restore short.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, Callable, Optional, Union

NAMES = {int(signal.SIGINT): "interrupted (Ctrl-C)"}
HANDLED = [signal.SIGINT]
for _name, _what in (("SIGTERM", "terminated (SIGTERM)"), ("SIGHUP", "hung up (SIGHUP)")):
    if hasattr(signal, _name):
        HANDLED.append(getattr(signal, _name))
        NAMES[int(getattr(signal, _name))] = _what


class Interrupted(KeyboardInterrupt):
    """A signal stopped the install; ``exit_code`` is 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def what(self) -> str:
        return NAMES.get(self.signum, f"stopped by signal {self.signum}")


Handler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]


class _Tolerant:
    """A stream that swallows the errors of a terminal that hung up."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Guard:
    def __init__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.saved: dict[int, Handler] = {}
        self.pending: Optional[Interrupted] = None
        self._defer = False

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            sys.stdout = _Tolerant(sys.stdout)
            sys.stderr = _Tolerant(sys.stderr)
        exc = Interrupted(signum)
        if self.pending is None:
            self.pending = exc
        if not self._defer:
            raise exc

    def __enter__(self) -> Guard:
        if self.active:
            for sig in HANDLED:
                self.saved[int(sig)] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)
        self.saved.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Note signals instead of raising them (while restoring)."""
        before, self._defer = self._defer, True
        try:
            yield
        finally:
            self._defer = before
