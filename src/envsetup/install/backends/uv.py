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

A stack (resolved by uv: :mod:`envsetup.stack`) is one ``uv pip install -r pylock.toml`` of every
package it changes: a PEP 751 lock of those very files (URL and hash), which uv installs as
registry packages (``pip freeze`` reads ``torch==2.13.0+cpu``), resolving nothing. The packages
that compile against torch follow in a second ``uv pip install --no-deps --no-build-isolation``,
once torch is in place.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from envsetup.install.backends._base import Context, Fit, Staging, Step, Tool, Where
    from envsetup.install.sources import Source, Sources
    from envsetup.install.target import TargetInfo
    from envsetup.plan import Plan

PROJECT = "pyproject.toml"  # the generated requirements, in the work directory
INDEX_NAME = "torch-source"
LOCK = "pylock.toml"  # a stack's lock, in the work directory
# uv reads pylock.toml as a preview feature (it warns without this; older uv ignores it).
PYLOCK = {"UV_PREVIEW_FEATURES": "pylock"}


def find_uv() -> Optional[str]:
    """The uv binary: the ``uv`` package's (a dependency of envsetup: its wheel carries the
    binary), else the one on PATH."""
    if importlib.util.find_spec("uv") is not None:
        try:
            from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

            return str(find_uv_bin())
        except Exception:  # the package without its binary (a broken or partial install)
            pass
    return shutil.which("uv")


def source_args(sources: tuple[Source, ...]) -> list[str]:
    from envsetup.install.sources import indexes, wheelhouses

    urls, houses = indexes(sources), wheelhouses(sources)
    args = ["--index-url", urls[0]] if urls else (["--no-index"] if houses else [])
    for url in urls[1:]:
        args += ["--index", url]
    for d in houses:
        args += ["--find-links", d]
    return args


def stack_source_args(sources: Sources) -> list[str]:
    """A stack's sources on uv's command line: the rest as the default index (none: uv's own);
    the torch sources as indexes searched first (``--index``), as in the one-line command."""
    from envsetup.install.sources import indexes

    rest = indexes(sources.rest)
    args = ["--default-index", rest[0]] if rest else []
    for url in [*indexes(sources.torch), *rest[1:]]:
        args += ["--index", url]
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
    resolver = "uv"

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
        where_from = stack_source_args(sources) if where.extra else source_args(union)
        return [
            *self._base(where.tool, where.python, where.break_system_packages),
            *requirements(plan),
            *where.extra,
            *where_from,
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

    def _stack(self, ctx: Context) -> tuple[Staging, Step]:
        from envsetup.install.backends._base import Staging, Step

        assert ctx.stack is not None
        base = self._base(ctx.tool.argv, ctx.target.python, ctx.break_system_packages)
        changes, builds = ctx.stack.changes(), ctx.stack.source_builds()
        files = [(LOCK, ctx.stack.lock(changes))] if changes else []
        later: tuple[Step, ...] = ()
        if builds:
            files.append(("builds.txt", ctx.stack.pinned(builds)))
            argv = (*base, "--no-deps", "--no-build-isolation", *stack_source_args(ctx.sources),
                    "-r", str(ctx.work / "builds.txt"))  # fmt: skip
            later = (Step("build", argv),)
        if not changes:
            return Staging(files=tuple(files)), later[0]
        step = Step("install", (*base, "-r", str(ctx.work / LOCK)), PYLOCK)
        return Staging(files=tuple(files), builds=later), step

    def stage(self, ctx: Context) -> Staging:
        from envsetup.install.backends._base import Staging

        if ctx.stack is not None:
            return self._stack(ctx)[0]
        if not self._bound(ctx.sources):
            return Staging()
        return Staging(files=((PROJECT, pinned(ctx.plan, ctx.sources.torch[0])),))

    def install(self, ctx: Context) -> Step:
        from envsetup.install.backends._base import Step, requirements

        if ctx.stack is not None:
            return self._stack(ctx)[1]
        base = [*self._base(ctx.tool.argv, ctx.target.python, ctx.break_system_packages),
                "--only-binary", ":all:"]  # fmt: skip
        if ctx.repair:  # the build again; what it needs and lacks is installed by the resolve
            base += [a for p in ctx.plan.pins for a in ("--reinstall-package", p.name)]
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
