"""uv: ``uv pip install --python TARGET``.

Sources. uv pins a package to one index only through a project's ``[tool.uv.sources]``, so the
install reads its requirements from a small generated ``pyproject.toml``: the pins are bound
to an ``explicit`` index holding the torch source (an index, or a wheelhouse as a ``flat`` one),
which nothing else is looked up in, and no configured or extra index of uv's can supply them;
everything else comes from the rest (``--index-url``, ``--find-links``) and whatever uv's own
configuration adds. When a wheelhouse is the only source, ``--no-index --find-links DIR`` says
it all.

Steps. One ``uv pip install``: uv resolves for the target interpreter, downloads and unpacks
every distribution into its cache, and only then changes the environment, so a failed download
leaves the target as it was; with a warm cache it links in a fraction of a second, as uv alone.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from envsetup.install.backends._base import Context, Fit, Staging, Step, Tool, Where
    from envsetup.install.sources import Source, Sources
    from envsetup.install.target import TargetInfo
    from envsetup.plan import Plan

PROJECT = "pyproject.toml"  # the generated requirements, in the work directory
INDEX_NAME = "torch-source"


def find_uv() -> Optional[str]:
    """The uv binary: on PATH, next to our interpreter, or from the ``uv`` package."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    if importlib.util.find_spec("uv") is not None:
        try:
            from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

            return str(find_uv_bin())
        except Exception:
            return None
    return None


def source_args(sources: tuple[Source, ...]) -> list[str]:
    from envsetup.install.sources import indexes, wheelhouses

    urls, houses = indexes(sources), wheelhouses(sources)
    args = ["--index-url", urls[0]] if urls else (["--no-index"] if houses else [])
    for url in urls[1:]:
        args += ["--index", url]
    for d in houses:
        args += ["--find-links", d]
    return args


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pinned(plan: Plan, source: Source) -> str:
    """A pyproject whose dependencies are the pins, each bound to ``source`` alone."""
    from envsetup.install.backends._base import requirements

    deps = "".join(f"  {_toml(r)},\n" for r in requirements(plan))
    lines = [
        "[project]",
        'name = "envsetup-plan"',
        'version = "0"',
        f"dependencies = [\n{deps}]",
        "",
        "[[tool.uv.index]]",
        f'name = "{INDEX_NAME}"',
        f"url = {_toml(Path(source.location).absolute().as_uri() if source.wheelhouse else source.location)}",
        *(['format = "flat"'] if source.wheelhouse else []),
        "explicit = true",
        "",
        "[tool.uv.sources]",
        *(f'{p.name} = {{ index = "{INDEX_NAME}" }}' for p in plan.pins),
    ]
    return "\n".join(lines) + "\n"


class Uv:
    name = "uv"
    summary = "uv: uv pip install --python TARGET"
    default_when = "uv when it is installed"
    export_name = "uv"

    def find(self, target: TargetInfo) -> Tool:
        from envsetup.install.backends._base import Tool

        uv = find_uv()
        return Tool((uv,)) if uv else Tool(why="uv is not installed; use --installer pip")

    def preferred(self, target: TargetInfo) -> bool:
        return True

    def fits(self, plan: Plan, target: Optional[TargetInfo], sources: Sources) -> Fit:
        from envsetup.install.backends._base import Fit

        return Fit(True)

    def _base(self, tool: tuple[str, ...], python: str, bsp: bool) -> list[str]:
        return [*(tool or ("uv",)), "pip", "install", "--python", python,
                *(["--break-system-packages"] if bsp else [])]  # fmt: skip

    def direct(self, plan: Plan, where: Where, sources: Sources) -> list[str]:
        from envsetup.install.backends._base import requirements

        union = tuple(dict.fromkeys((*sources.torch, *sources.rest)))
        return [
            *self._base(where.tool, where.python, where.break_system_packages),
            *requirements(plan),
            *source_args(union),
        ]

    def _bound(self, sources: Sources) -> bool:
        """Whether the pins need binding to their source (more than one place to look)."""
        from envsetup.install.sources import indexes

        only_houses = sources.single and not indexes(sources.torch)
        return bool(sources.torch) and not only_houses

    def export(self, plan: Plan, sources: Sources) -> str:
        """The ``[tool.uv]`` index and sources entries, with the dependencies they pin."""
        header = (
            f"# torch {plan.torch} ({plan.variant}) for {plan.platform}, Python {plan.python}; "
            "made by envsetup"
        )
        deps = ",\n".join(f"  {_toml(r)}" for r in plan.requirements())
        out = [header, "[project]", f"dependencies = [\n{deps},\n]", ""]
        if sources.torch:
            src = sources.torch[0]
            name = "pytorch-" + re.sub(r"[^a-z0-9]+", "-", plan.variant.lower()).strip("-")
            url = Path(src.location).absolute().as_uri() if src.wheelhouse else src.location
            out += ["[[tool.uv.index]]", f'name = "{name}"', f"url = {_toml(url)}"]
            out += [*(['format = "flat"'] if src.wheelhouse else []), "explicit = true", ""]
            out.append("[tool.uv.sources]")
            out += [f'{p.name} = {{ index = "{name}" }}' for p in plan.pins]
        return "\n".join(out) + "\n"

    def stage(self, ctx: Context) -> Staging:
        from envsetup.install.backends._base import Staging

        if not self._bound(ctx.sources):
            return Staging()
        return Staging(files=((PROJECT, pinned(ctx.plan, ctx.sources.torch[0])),))

    def install(self, ctx: Context) -> Step:
        from envsetup.install.backends._base import Step, requirements

        base = [*self._base(ctx.tool.argv, ctx.target.python, ctx.break_system_packages),
                "--only-binary", ":all:"]  # fmt: skip
        if self._bound(ctx.sources):
            reqs = ["-r", str(ctx.work / PROJECT)]
            return Step("install", (*base, *source_args(ctx.sources.rest), *reqs))
        sources = ctx.sources.torch or ctx.sources.rest
        return Step("install", (*base, *source_args(sources), *requirements(ctx.plan)))

    def checkpoint(self, ctx: Context) -> Optional[str]:
        return None

    def rollback(self, ctx: Context, point: str) -> Optional[Step]:
        return None


BACKEND = Uv()
