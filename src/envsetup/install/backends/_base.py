"""The one protocol every installer backend follows, and the records it speaks in.

A backend is a module with one object, ``BACKEND``, registered by name in
:mod:`envsetup.install.backends`. It knows its installer and nothing else: how to find it,
whether it can carry out a plan, the one-line command a person would type, the plan as a file
for a teammate, and the staged steps the transaction runs. It builds argv lists; the
transaction (:mod:`envsetup.install.run`) runs them, snapshots and restores the environment,
and never names an installer.

Staged steps: ``stage`` (input files, and zero or more ``fetch`` commands that bring files
to disk before anything in the target changes), ``install`` (one command, built once the fetch
has run; it may fetch what is still missing, as long as the installer fetches everything
before it changes anything: pip and uv do), and the optional ``checkpoint``/``rollback`` pair
for an installer with its own history (conda's revisions). The restore itself is the
transaction's: it puts back the files it recorded.

A whole stack (torch with the user's packages, resolved together: :class:`envsetup.stack.Stack`)
comes in ``Context.stack``. A backend that installs one names the resolver whose set it installs
(``resolver = "uv"``); one without a ``resolver`` installs the torch build alone, and the
registry hands a stack to one that has. The source builds against torch go in
``Staging.builds``: steps run after the install, under the same restore.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    from envsetup.install.sources import Sources
    from envsetup.install.target import TargetInfo
    from envsetup.plan import Plan
    from envsetup.stack import Stack


def requirements(plan: Plan) -> list[str]:
    """The pins as exact requirements: with the build's local label when the plan has one
    (``torch==2.4.1+cu121``), so that another build of the same version already installed is
    replaced, and no other build of it can be taken."""
    from envsetup.install.target import wanted

    exact = wanted(plan)
    return [f"{p.name}=={exact.get(p.name, p.version)}" for p in plan.pins]


@dataclass(frozen=True)
class Where:
    """What a direct command needs to know of its target: enough for ``envsetup plan`` to
    write the commands for another machine (``--profile``) without running anything there."""

    python: str
    prefix: Optional[str] = None  # the environment's prefix, when known
    has_pip: bool = True
    break_system_packages: bool = False
    tool: tuple[str, ...] = ()  # how to run the installer; empty: by its plain name
    extra: tuple[str, ...] = ()  # the user's other requirements (a stack), from the rest


@dataclass(frozen=True)
class Tool:
    """How to run an installer here (``("/usr/bin/uv",)``, ``(python, "-m", "pip")``), or why
    it cannot run (``why``, one line naming what to do)."""

    argv: tuple[str, ...] = ()
    why: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.argv)


@dataclass(frozen=True)
class Fit:
    """Whether a backend can carry out a plan; ``instead`` names a registered backend that can
    (conda's channels stopped at torch 2.5: pip installs the same wheels into the conda env)."""

    ok: bool
    why: str = ""
    instead: Optional[str] = None


@dataclass(frozen=True)
class Step:
    what: str  # "fetch" | "install" | "rollback": the log and the display name it
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)  # set on top of the clean environment

    def shell(self) -> str:
        """The step as one shell line (what --dry-run prints)."""
        prefix = [f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        return " ".join([*prefix, shlex.join(self.argv)])


@dataclass(frozen=True)
class Staging:
    fetch: tuple[Step, ...] = ()  # into ``Context.stage``, before anything in the target changes
    files: tuple[tuple[str, str], ...] = ()  # (name in the work directory, text), written first
    builds: tuple[Step, ...] = ()  # after the install, under the same restore (source builds)


@dataclass(frozen=True)
class Context:
    """What a backend builds the staged steps for."""

    plan: Plan
    target: TargetInfo
    sources: Sources
    tool: Tool
    work: Path  # a private directory, removed after the install
    break_system_packages: bool = False
    stack: Optional[Stack] = None  # the whole set to install, when the user named packages
    repair: bool = False  # the planned build is installed but broken: reinstall it

    @property
    def stage(self) -> Path:
        return self.work / "stage"


@dataclass(frozen=True)
class Chosen:
    """The registry's pick for an install."""

    backend: Backend
    tool: Tool
    note: Optional[str] = None  # why another backend than the one asked for installs


class Backend(Protocol):
    """One installer. Every method builds or reads; only :meth:`checkpoint` may run a query."""

    name: str
    summary: str  # one line: what it installs with (``--installer`` help, the wizard)
    default_when: str  # when it is the default ("conda in a conda environment"); "": never
    export_name: str  # the ``--export`` kind it writes ("requirements", "uv", "conda")
    # The resolver whose set it installs for a stack ("uv", "pip"); "" (or no such attribute):
    # it installs the torch build alone.
    resolver: str

    def find(self, target: TargetInfo) -> Tool:
        """How to run the installer for ``target``, or why it cannot run."""
        ...

    def preferred(self, target: TargetInfo) -> bool:
        """Whether it is the default installer for ``target`` (once it is found)."""
        ...

    def fits(self, plan: Plan, target: Optional[TargetInfo], sources: Sources) -> Fit:
        """Whether it can carry out ``plan`` from ``sources`` (into ``target``, when known)."""
        ...

    def direct(self, plan: Plan, where: Where, sources: Sources) -> list[str]:
        """The one command a person would type (no staging, no restore)."""
        ...

    def export(self, plan: Plan, sources: Sources) -> str:
        """The plan as a file for this installer (requirements.txt, pyproject, environment.yml)."""
        ...

    def stage(self, ctx: Context) -> Staging:
        """The files and fetch steps for ``ctx``."""
        ...

    def install(self, ctx: Context) -> Step:
        """The install step, once the fetch steps have run (what they staged is on disk)."""
        ...

    def checkpoint(self, ctx: Context) -> Optional[str]:
        """Before installing: the installer's own restore point, if it keeps one."""
        ...

    def rollback(self, ctx: Context, point: str) -> Optional[Step]:
        """After a failed install: go back to ``point`` (before the files are put back)."""
        ...
