"""Reading the JSON files a user hands envsetup (profiles, plans, hardware recordings, node
reports) without trusting them: a size limit, a read deadline, a nesting limit, and one-line
errors that name the file, what is wrong and what to do.

``/dev/zero`` stops at the size limit, a FIFO nobody writes to stops at the deadline, a binary
file is "not a text file", and 100,000 nested brackets are "nested too deeply" (the parser's
own recursion limit, caught), never a RecursionError.
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import Any, Optional

from envsetup.errors import UsageError

MIB = 1 << 20
MAX_BYTES = 16 * MIB  # a profile is ~10 KB, a hardware recording ~100 KB
READ_DEADLINE = 5.0  # seconds to read the whole file (a FIFO nobody writes to, a hung mount)


def read_bytes(
    path: str, what: str, *, max_bytes: int = MAX_BYTES, deadline: float = READ_DEADLINE
) -> bytes:
    """The file's bytes, at most ``max_bytes``, read within ``deadline`` seconds."""
    import select

    label = f"{what}{path}" if what.endswith("=") else f"{what} {path}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UsageError(
            f"{label}: {exc.strerror or exc}; give the path of a readable file"
        ) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{label}: is a directory; give a file")
        if stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
            raise UsageError(
                f"{label}: {st.st_size / MIB:.1f} MiB is larger than the {max_bytes / MIB:g} MiB "
                "such a file can be; give the file envsetup wrote"
            )
        regular = stat.S_ISREG(st.st_mode)
        if not regular and hasattr(os, "set_blocking"):
            os.set_blocking(fd, False)
        elif hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        end = time.monotonic() + deadline
        while True:
            if not regular and os.name != "nt":  # Windows' select takes sockets only
                left = end - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise UsageError(
                        f"{label}: nothing could be read within {deadline:g} s; give a regular "
                        "file (or - for standard input where the command takes it)"
                    )
            try:
                chunk = os.read(fd, min(1 << 16, max_bytes + 1 - size))
            except BlockingIOError:
                continue
            except OSError as exc:
                raise UsageError(f"{label}: {exc.strerror or exc}") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise UsageError(
                    f"{label}: larger than the {max_bytes / MIB:g} MiB such a file can be "
                    "(is it the right file?)"
                )
            if time.monotonic() > end:
                raise UsageError(f"{label}: not read within {deadline:g} s")
        return b"".join(chunks)
    finally:
        os.close(fd)


def loads(data: bytes, label: str, *, hint: Optional[str] = None) -> Any:
    """JSON from ``data`` (UTF-8), with the same checks and one-line errors as :func:`read`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{label}: not a text file (not UTF-8 JSON)") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        more = f"; {hint}" if hint else ""
        raise UsageError(
            f"{label}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg}){more}"
        ) from None
    except RecursionError:
        raise UsageError(f"{label}: JSON nested too deeply to be such a file") from None


def read(
    path: str,
    what: str,
    *,
    max_bytes: int = MAX_BYTES,
    deadline: float = READ_DEADLINE,
    hint: Optional[str] = None,
) -> Any:
    """Parse the JSON file at ``path``; ``what`` names where the path came from (a flag or a
    variable: ``--profile``, ``ENVSETUP_HW_REPLAY=``), for the one-line UsageError."""
    data = read_bytes(path, what, max_bytes=max_bytes, deadline=deadline)
    return loads(data, f"{what}{path}" if what.endswith("=") else f"{what} {path}", hint=hint)
