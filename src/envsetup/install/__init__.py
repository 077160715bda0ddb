"""``envsetup install``: carry out a Plan with a registered installer, never leaving it half-done.

Public API: :func:`install` (Plan + :class:`Options` → :class:`Outcome`),
:func:`envsetup.install.export.export`, and the registry of backends in
:mod:`envsetup.install.backends`. Attributes are imported on first
use, so that reading the registry (``--installer``'s help at start-up) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsetup.install.run import InstallError, Options, Outcome, install, quick_check

_WHERE = {
    "InstallError": "envsetup.install.run",
    "Options": "envsetup.install.run",
    "Outcome": "envsetup.install.run",
    "install": "envsetup.install.run",
    "quick_check": "envsetup.install.run",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)


__all__ = ["InstallError", "Options", "Outcome", "install", "quick_check"]
