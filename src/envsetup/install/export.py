"""The plan as a file for a Dockerfile or a teammate, in each registered installer's format.

torch alone: each backend writes its own file (``--index-url`` is the whole index, as for an
install). With the user's packages (a stack), the team exports of :mod:`envsetup.uvproject`
write the build so that the packages come from the default index: ``requirements`` keeps the
default index and adds the PyTorch variant as an extra index (the pins' local versions are only
there); ``uv`` writes uv's PyTorch pattern (an explicit index, ``[tool.uv.sources]`` with the
platform's marker); ``conda`` adds the packages to the environment's ``pip:`` list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Optional

from envsetup.errors import UsageError
from envsetup.install import backends
from envsetup.install.sources import for_install
from envsetup.plan import Plan


def kinds() -> list[str]:
    return list(backends.exports())


def export(
    plan: Plan,
    kind: str,
    index_url: Optional[str] = None,
    find_links: Sequence[str] = (),
    requirements: Sequence[str] = (),
    *,
    label: str = "this machine",
) -> str:
    """``plan`` as a ``kind`` file; ``requirements`` are the user's other packages."""
    writers = backends.exports()
    if kind not in writers:
        raise UsageError(f"--export {kind}: choose one of {', '.join(writers)}")
    if requirements and find_links:
        raise UsageError(
            "--find-links with packages: a wheelhouse holds the torch build alone; give the "
            "mirror as an index (--index-url file:///DIR) for an export with packages"
        )
    if not requirements or kind not in ("requirements", "uv", "conda"):
        return writers[kind].export(plan, for_install(plan, index_url, find_links))
    from envsetup import uvproject

    if kind == "requirements":
        return uvproject.requirements(plan, index_url, requirements)
    if kind == "uv":
        built = replace(plan, index_url=index_url) if index_url else plan
        return uvproject.uv_project([uvproject.Machine(label, None, built)], requirements).text
    text = writers[kind].export(plan, for_install(plan, index_url, find_links))
    extra = "".join(f"      - {r}\n" for r in requirements)
    if "  - pip:\n" in text:  # pip's list comes last
        return text + extra
    return text + "  - pip\n  - pip:\n" + extra
