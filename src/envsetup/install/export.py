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
from envsetup.install.sources import Sources, for_install
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
        sources = for_install(plan, index_url, find_links)
        return _without_credentials(writers[kind].export(plan, sources), kind, plan, sources)
    from envsetup import uvproject

    if kind == "requirements":
        return uvproject.requirements(plan, index_url, requirements)
    if kind == "uv":
        built = replace(plan, index_url=index_url) if index_url else plan
        return uvproject.uv_project([uvproject.Machine(label, None, built)], requirements).text
    sources = for_install(plan, index_url, find_links)
    text = _without_credentials(writers[kind].export(plan, sources), kind, plan, sources)
    extra = "".join(f"      - {r}\n" for r in requirements)
    if "  - pip:\n" in text:  # pip's list comes last
        return text + extra
    return text + "  - pip\n  - pip:\n" + extra


def _without_credentials(text: str, kind: str, plan: Plan, sources: Sources) -> str:
    """An export names the variables that supply an index's credentials, never the
    credentials (:func:`envsetup.secrets.for_export`): uv's ``UV_INDEX_<NAME>_USERNAME`` /
    ``_PASSWORD`` for the index of the pins (named ``pytorch-<variant>`` in every export) and
    for any other by its host."""
    from envsetup.secrets import for_export, index_name_for
    from envsetup.uvproject import index_name

    torch = {s.location for s in sources.torch}

    def name_of(url: str) -> str:
        return index_name(plan.variant) if url in torch else index_name_for(url)

    return for_export(text, name_of, pip=kind != "uv")
