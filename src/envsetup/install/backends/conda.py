"""conda: torch <= 2.5 from the official pytorch/nvidia channels, with the matching pytorch-cuda.

The official channels stopped at 2.5 (pytorch/pytorch#138506). For later releases (and for an
install from an index mirror or a wheelhouse, which conda cannot read) the backend does not fit
and names pip instead: pip installs the official wheels, the same builds as the plan, into the
conda environment. conda-forge's builds are not used: their variants and versions differ.

Steps: ``conda install --download-only`` fetches, ``conda install --offline`` installs, and a
failure rolls back to the revision recorded before (``conda install --revision N``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from envsetup.errors import UsageError

if TYPE_CHECKING:
    from envsetup.install.backends._base import Context, Fit, Staging, Step, Tool, Where
    from envsetup.install.sources import Sources
    from envsetup.install.target import TargetInfo
    from envsetup.plan import Plan

CHANNEL_LAST = "2.5.99"
NAMES = {"torch": "pytorch"}


def find_conda() -> Optional[str]:
    exe = os.environ.get("CONDA_EXE")
    if exe and Path(exe).is_file():
        return exe
    return shutil.which("conda")


def channel_has(plan: Plan) -> bool:
    """Whether the official pytorch conda channel publishes this plan's build."""
    from packaging.version import Version

    return (
        Version(plan.torch) <= Version(CHANNEL_LAST)
        and plan.variant != "default"
        and (plan.variant == "cpu" or plan.cuda is not None)
    )


def specs(plan: Plan) -> tuple[list[str], list[str]]:
    """(channels, package specs) for the official pytorch/nvidia channels (torch <= 2.5)."""
    pins = [f"{NAMES.get(p.name, p.name)}=={p.version}" for p in plan.pins]
    if plan.variant == "cpu":
        return ["pytorch"], [*pins, "cpuonly"]
    if plan.cuda:
        return ["pytorch", "nvidia"], [*pins, f"pytorch-cuda={plan.cuda}"]
    raise UsageError(
        f"the {plan.variant} build of torch is not on the pytorch conda channel: "
        "use --installer pip (it installs into the conda environment too)"
    )


def _prefix(where: Where) -> Optional[str]:
    if where.prefix:
        return where.prefix
    python = where.python
    if "\\" in python or python.lower().endswith(".exe"):
        from pathlib import PureWindowsPath

        return str(PureWindowsPath(python).parent)
    return str(Path(python).parent.parent) if "/" in python else None


class Conda:
    name = "conda"
    summary = "conda: the official pytorch channels (torch <= 2.5), pip's wheels after"
    default_when = "conda in a conda environment"
    export_name = "conda"
    resolver = ""  # a stack goes to an installer that reads indexes (the registry picks it)

    def find(self, target: TargetInfo) -> Tool:
        from envsetup.install.backends._base import Tool

        conda = find_conda()
        return Tool((conda,)) if conda else Tool(why="conda is not on PATH (nor CONDA_EXE set)")

    def preferred(self, target: TargetInfo) -> bool:
        return target.conda

    def fits(self, plan: Plan, target: Optional[TargetInfo], sources: Sources) -> Fit:
        from envsetup.install.backends._base import Fit

        if target is not None and not target.conda:
            return Fit(
                False,
                f"{target.prefix} is not a conda environment; pick one with --python, "
                "or use --installer pip",
            )
        if not channel_has(plan):
            return Fit(
                False,
                f"torch {plan.torch} ({plan.variant}) is not on the pytorch conda channel, which "
                "stopped at 2.5: installing the official wheels with pip into the conda env",
                instead="pip",
            )
        from envsetup.plan import PYTORCH_INDEX

        if any(not s.location.startswith(PYTORCH_INDEX) for s in sources.torch):
            return Fit(
                False,
                "conda reads channels, not an index mirror or a wheelhouse: installing the "
                "official wheels from them with pip into the conda env",
                instead="pip",
            )
        return Fit(True)

    def _base(self, tool: tuple[str, ...], prefix: Optional[str], plan: Plan) -> list[str]:
        channels, _ = specs(plan)
        args = [*(tool or ("conda",)), "install", "--yes"]
        if prefix:
            args += ["--prefix", prefix]
        for ch in channels:
            args += ["--channel", ch]
        return args

    def direct(self, plan: Plan, where: Where, sources: Sources) -> list[str]:
        return [*self._base(where.tool, _prefix(where), plan), *specs(plan)[1]]

    def export(self, plan: Plan, sources: Sources) -> str:
        """An environment.yml: the pytorch/nvidia channels up to 2.5, pip inside conda after."""
        header = (
            f"# torch {plan.torch} ({plan.variant}) for {plan.platform}, Python {plan.python}; "
            "made by envsetup"
        )
        lines = [header, "name: torch"]
        if self.fits(plan, None, sources).ok:
            channels, pkgs = specs(plan)
            lines += ["channels:", *(f"  - {c}" for c in channels), "dependencies:"]
            lines += [f"  - python={plan.python}", *(f"  - {s}" for s in pkgs)]
            return "\n".join(lines) + "\n"
        from envsetup.install.backends.pip import _lines, _union, source_args

        lines += ["channels:", "  - conda-forge", "dependencies:", f"  - python={plan.python}"]
        lines += ["  - pip", "  - pip:"]
        lines += [f"      - {ln}" for ln in _lines(source_args(_union(sources)))]
        lines += [f"      - {r}" for r in plan.requirements()]
        return "\n".join(lines) + "\n"

    def stage(self, ctx: Context) -> Staging:
        from envsetup.install.backends._base import Staging, Step

        argv = (*self._base(ctx.tool.argv, ctx.target.prefix, ctx.plan), "--download-only",
                *specs(ctx.plan)[1])  # fmt: skip
        return Staging(fetch=(Step("fetch", argv),))

    def install(self, ctx: Context) -> Step:
        from envsetup.install.backends._base import Step

        argv = (*self._base(ctx.tool.argv, ctx.target.prefix, ctx.plan), "--offline",
                *(["--force-reinstall"] if ctx.repair else []), *specs(ctx.plan)[1])  # fmt: skip
        return Step("install", argv)

    def checkpoint(self, ctx: Context) -> Optional[str]:
        from envsetup import proc

        res = proc.run([*ctx.tool.argv, "list", "--prefix", ctx.target.prefix, "--revisions",
                        "--json"], timeout=120)  # fmt: skip
        try:
            return str(int(json.loads(res.stdout)[-1]["rev"])) if res.ok else None
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def rollback(self, ctx: Context, point: str) -> Optional[Step]:
        from envsetup.install.backends._base import Step

        argv = (*ctx.tool.argv, "install", "--yes", "--prefix", ctx.target.prefix, "--offline",
                "--revision", point)  # fmt: skip
        return Step("rollback", argv)


BACKEND = Conda()
