"""``envsetup install``: carry out a Plan with pip, uv or conda, never leaving it half-done.

Public API: :func:`install` (Plan + :class:`Options` → :class:`Outcome`), :func:`export`,
and the backends in :mod:`envsetup.install.backends` (the one place argv is built).
"""

from __future__ import annotations

from envsetup.install.export import EXPORTS, export
from envsetup.install.run import InstallError, Options, Outcome, install, quick_check

__all__ = ["EXPORTS", "InstallError", "Options", "Outcome", "export", "install", "quick_check"]
