"""Where envsetup keeps its own files (install logs, the inductor cache), from the environment.

``XDG_CACHE_HOME`` (when absolute, as the XDG spec requires: a relative value is ignored), else
``%LOCALAPPDATA%`` on Windows, else ``~/.cache``; envsetup's directory is ``envsetup`` inside it.
A location that cannot be made or written is a one-line usage error naming the variable, not a
traceback halfway through an install.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from envsetup.errors import UsageError


def _base(env: Mapping[str, str]) -> tuple[Path, str]:
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg), "XDG_CACHE_HOME"
    if os.name == "nt" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]), "LOCALAPPDATA"
    return Path(os.path.expanduser("~")) / ".cache", "HOME"


def file_url_path(url: str) -> Path:
    """The local path a ``file:`` URL names, decoded once (``file:///C:/a%20b`` on Windows,
    ``file:///home/a%20b`` elsewhere), as pip and uv read it."""
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    return Path(url2pathname(urlsplit(url).path))


def cache_dir(env: Optional[Mapping[str, str]] = None) -> Path:
    """envsetup's cache directory (not made here)."""
    return _base(os.environ if env is None else env)[0] / "envsetup"


def private_dir(path: Path, env: Optional[Mapping[str, str]] = None) -> Path:
    """``path`` made (if needed) readable by its owner only (install logs may name private
    mirrors); a location that cannot be made is a UsageError naming where it came from."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
        if not os.access(path, os.W_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        _, var = _base(os.environ if env is None else env)
        value = os.environ.get(var, "") if env is None else env.get(var, "")
        why = exc.strerror or str(exc)
        raise UsageError(
            f"cannot use {path} for envsetup's files ({why}; from {var}={value}): point "
            "XDG_CACHE_HOME at a writable directory"
        ) from None
    return path
