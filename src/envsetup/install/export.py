"""The plan as a file for a Dockerfile or a teammate, in each registered installer's format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from envsetup.errors import UsageError
from envsetup.install import backends
from envsetup.install.sources import for_install
from envsetup.plan import Plan


def kinds() -> list[str]:
    return list(backends.exports())


def export(
    plan: Plan, kind: str, index_url: Optional[str] = None, find_links: Sequence[str] = ()
) -> str:
    writers = backends.exports()
    if kind not in writers:
        raise UsageError(f"--export {kind}: choose one of {', '.join(writers)}")
    return writers[kind].export(plan, for_install(plan, index_url, find_links))
