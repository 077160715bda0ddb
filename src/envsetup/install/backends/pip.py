"""pip: the target's own pip, or envsetup's pointed at the target (``pip --python``, pip >= 22.3).

Sources. The plan's pins come from the torch sources alone: pip gets them on its command line
(``--index-url``, or ``--no-index --find-links DIR``), and the ``extra-index-url`` and
``find-links`` of the user's pip configuration are set aside for those steps by setting
``PIP_EXTRA_INDEX_URL`` and ``PIP_FIND_LINKS`` to a blank value: pip reads the environment
after its configuration files, and a blank list replaces the configured one. (A configured
``find-links`` is otherwise added to the command line's, and pip takes the highest matching
version from any source: a wheelhouse in the configuration could supply torch.)

Steps. When the pins and the rest come from the same sources (today's case), one ``pip install``
does everything: pip downloads every file it needs before it uninstalls or installs anything,
so a failed download leaves the target as it was, and nothing is paid twice. When they differ
(a wheelhouse beside an index), the pins are fetched first with ``pip download --no-deps`` from
the torch sources, then installed from those very files while pip fetches their dependencies
from the rest.

A stack (resolved by uv: :mod:`envsetup.stack`) is one ``pip install --no-deps -r stack.txt`` of
every package it changes as ``name==version --hash=sha256:...``, the default index as pip's
configuration has it (as the resolve read it) and the PyTorch index as an extra index: the
hashes make pip take those very files, and only the variant index has the pins' local versions.
Nothing is installed by direct URL, so ``pip freeze`` reads ``torch==2.13.0+cpu``. The packages
that compile against torch follow in a second ``pip install --no-deps --no-build-isolation``, once
torch is in place.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from envsetup.install.backends._base import Context, Fit, Staging, Step, Tool, Where
    from envsetup.install.sources import Source, Sources
    from envsetup.install.target import TargetInfo
    from envsetup.plan import Plan

# Set for the steps that must see only the sources on their command line (see above).
CONFIG_SET_ASIDE = {"PIP_EXTRA_INDEX_URL": " ", "PIP_FIND_LINKS": " "}
# An install goes into the target's environment, whatever a configured ``user = true`` says.
INTO_TARGET = {"PIP_USER": "0"}


def source_args(sources: tuple[Source, ...]) -> list[str]:
    """pip's arguments for these sources (the first index is the default one)."""
    from envsetup.install.sources import indexes, wheelhouses

    urls, houses = indexes(sources), wheelhouses(sources)
    args = ["--index-url", urls[0]] if urls else (["--no-index"] if houses else [])
    for url in urls[1:]:
        args += ["--extra-index-url", url]
    for d in houses:
        args += ["--find-links", d]
    return args


def stack_source_args(sources: Sources) -> list[str]:
    """A stack's sources: the rest as the default index (none: pip's own), the torch sources
    as extra ones, so that the default index is never hidden."""
    from envsetup.install.sources import indexes

    rest = indexes(sources.rest)
    args = ["--index-url", rest[0]] if rest else []
    for url in [*rest[1:], *indexes(sources.torch)]:
        args += ["--extra-index-url", url]
    return args


def _union(sources: Sources) -> tuple[Source, ...]:
    return tuple(dict.fromkeys((*sources.torch, *sources.rest)))


class Pip:
    name = "pip"
    summary = "pip: the target's own pip (or envsetup's, pointed at the target)"
    default_when = "pip"
    export_name = "requirements"
    resolver = "uv"  # a stack it installs is resolved by uv (envsetup.stack), pinned here

    def find(self, target: TargetInfo) -> Tool:
        from envsetup.install.backends._base import Tool

        if target.has_pip:
            return Tool((target.python, "-m", "pip"))
        if importlib.util.find_spec("pip") is not None:
            return Tool((sys.executable, "-m", "pip", "--python", target.python))
        return Tool(
            why=f"{target.python} has no pip, and neither has envsetup's own interpreter: "
            "install pip there (python -m ensurepip) or use --installer uv"
        )

    def preferred(self, target: TargetInfo) -> bool:
        return True

    def fits(self, plan: Plan, target: Optional[TargetInfo], sources: Sources) -> Fit:
        from envsetup.install.backends._base import Fit

        return Fit(True)

    def _bsp(self, on: bool) -> list[str]:
        return ["--break-system-packages"] if on else []

    def direct(self, plan: Plan, where: Where, sources: Sources) -> list[str]:
        from envsetup.install.backends._base import requirements

        tool = list(where.tool) or [where.python, "-m", "pip"]
        where_from = stack_source_args(sources) if where.extra else source_args(_union(sources))
        return [
            *tool,
            "install",
            *self._bsp(where.break_system_packages),
            *requirements(plan),
            *where.extra,
            *where_from,
        ]

    def export(self, plan: Plan, sources: Sources) -> str:
        lines = [_header(plan), *_lines(source_args(_union(sources))), *plan.requirements()]
        return "\n".join(lines) + "\n"

    def _stack_step(self, ctx: Context, what: str, name: str, *options: str) -> Step:
        from envsetup.install.backends._base import Step

        argv = (
            *ctx.tool.argv, "install", "--no-deps", *options, "--progress-bar", "off",
            *self._bsp(ctx.break_system_packages), *stack_source_args(ctx.sources),
            "-r", str(ctx.work / name),
        )  # fmt: skip
        return Step(what, argv, INTO_TARGET)

    def _stack(self, ctx: Context) -> tuple[Staging, Step]:
        from envsetup.install.backends._base import Staging

        assert ctx.stack is not None
        changes, builds = ctx.stack.changes(), ctx.stack.source_builds()
        files = [("stack.txt", ctx.stack.pinned(changes))] if changes else []
        later: tuple[Step, ...] = ()
        if builds:
            files.append(("builds.txt", ctx.stack.pinned(builds)))
            later = (self._stack_step(ctx, "build", "builds.txt", "--no-build-isolation"),)
        if not changes:  # only source builds left to do
            return Staging(files=tuple(files)), later[0]
        return Staging(files=tuple(files), builds=later), self._stack_step(
            ctx, "install", "stack.txt"
        )

    def stage(self, ctx: Context) -> Staging:
        from envsetup.install.backends._base import Staging, Step, requirements

        if ctx.stack is not None:
            return self._stack(ctx)[0]
        if ctx.sources.single or not ctx.sources.torch:
            return Staging()
        argv = (
            *ctx.tool.argv, "download", "--no-deps", "--only-binary=:all:", "--progress-bar",
            "off", "--dest", str(ctx.stage), *source_args(ctx.sources.torch),
            *requirements(ctx.plan),
        )  # fmt: skip
        return Staging(fetch=(Step("fetch", argv, CONFIG_SET_ASIDE),))

    def install(self, ctx: Context) -> Step:
        from envsetup.install.backends._base import Step, requirements

        if ctx.stack is not None:
            return self._stack(ctx)[1]
        common = [
            *ctx.tool.argv, "install", "--only-binary=:all:", "--progress-bar", "off",
            *self._bsp(ctx.break_system_packages),
            *(["--force-reinstall"] if ctx.repair else []),  # what it needs comes back too
        ]  # fmt: skip
        if not ctx.sources.torch:  # the plain-index build: the installer's configuration decides
            args = [*source_args(ctx.sources.rest), *requirements(ctx.plan)]
            return Step("install", (*common, *args), INTO_TARGET)
        if ctx.sources.single:
            args = [*source_args(ctx.sources.torch), *requirements(ctx.plan)]
            return Step("install", (*common, *args), {**CONFIG_SET_ASIDE, **INTO_TARGET})
        # The pins from the files just fetched, everything else from the rest.
        staged = sorted(ctx.stage.glob("*.whl")) if ctx.stage.is_dir() else []
        pins = [str(p) for p in staged] or [
            f"{ctx.stage}/{p.name}-{p.version}*.whl" for p in ctx.plan.pins
        ]
        return Step("install", (*common, *source_args(ctx.sources.rest), *pins), INTO_TARGET)

    def checkpoint(self, ctx: Context) -> Optional[str]:
        return None

    def rollback(self, ctx: Context, point: str) -> Optional[Step]:
        return None


def _header(plan: Plan) -> str:
    return (
        f"# torch {plan.torch} ({plan.variant}) for {plan.platform}, Python {plan.python}; "
        "made by envsetup"
    )


def _lines(args: list[str]) -> list[str]:
    """Command-line source arguments as requirements-file lines."""
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--no-index":
            out.append("--no-index")
            i += 1
        else:
            out.append(f"{args[i]} {args[i + 1]}")
            i += 2
    return out


BACKEND = Pip()
