"""Where an install takes its files from, and the check that the source can serve the plan.

Two kinds of source: an index (``http(s)://`` PEP 503/691, or a ``file://`` directory laid out
like one, with ``index.html`` files) and a wheelhouse (a plain directory of wheels, pip's and
uv's ``--find-links``). An install names two groups of them:

- ``torch``: the only sources of the plan's pins (torch, torchvision, torchaudio). No index or
  wheelhouse from the installer's own configuration can supply a pin: each backend makes sure
  of it (see its module).
- ``rest``: the sources of everything else, the first index being the default one. For torch
  alone that is the torch sources themselves (an index given with ``--index-url`` is a full
  index, as the PyTorch index is) plus the ``--find-links`` wheelhouses. For a stack (torch with
  the user's packages, :func:`for_stack`) it is the user's default index: none named, which
  leaves each installer's own (``PIP_INDEX_URL`` / ``UV_DEFAULT_INDEX``, its configuration, or
  its built-in default), as the resolve used it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from envsetup.errors import EXIT_FAIL, EnvsetupError

if TYPE_CHECKING:
    from envsetup.plan import Plan


@dataclass(frozen=True)
class Source:
    location: str  # an index URL, or a wheelhouse directory (an absolute path)

    @property
    def wheelhouse(self) -> bool:
        return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", self.location) is None

    @property
    def shown(self) -> str:
        from envsetup.secrets import mask_url

        return mask_url(self.location)


@dataclass(frozen=True)
class Sources:
    torch: tuple[Source, ...] = ()  # empty: the installer's own default index
    rest: tuple[Source, ...] = ()

    @property
    def single(self) -> bool:
        """The pins and everything else come from the same sources."""
        return self.torch == self.rest

    @property
    def secrets(self) -> list[str]:
        """Every location that may carry credentials (to mask in output and logs)."""
        return [s.location for s in (*self.torch, *self.rest) if not s.wheelhouse]

    def mask(self, text: str) -> str:
        """``text`` with these sources' credentials (and every other secret) masked."""
        from envsetup.secrets import mask

        return mask(text, [s for s in self.secrets if "@" in s])

    def mask_argv(self, argv: Sequence[str]) -> list[str]:
        return [self.mask(a) for a in argv]


def indexes(sources: Sequence[Source]) -> list[str]:
    return [s.location for s in sources if not s.wheelhouse]


def wheelhouses(sources: Sequence[Source]) -> list[str]:
    return [s.location for s in sources if s.wheelhouse]


def for_install(plan: Plan, index_url: Optional[str], find_links: Sequence[str] = ()) -> Sources:
    """The sources of an install: ``--index-url`` (else, with only ``--find-links``, the
    wheelhouses; else the plan's index) for the pins; the same plus the wheelhouses for the
    rest. No source at all leaves the installer's own default index (the plain-index build)."""
    houses = tuple(Source(d) for d in find_links)
    if index_url:
        torch: tuple[Source, ...] = (Source(index_url),)
    elif houses:
        torch = houses
    elif plan.index_url:
        torch = (Source(plan.index_url),)
    else:
        return Sources((), houses)
    rest = torch + tuple(h for h in houses if h not in torch)
    return Sources(torch, rest)


def for_stack(plan: Plan, index_url: Optional[str], default_index: Optional[str]) -> Sources:
    """The sources of a stack: the torch family from ``--index-url`` or the plan's PyTorch
    index (none for the plain package-index build), everything else from ``default_index``
    (None: the installer's own default index)."""
    index = index_url or plan.index_url
    torch = (Source(index),) if index else ()
    rest = (Source(default_index),) if default_index else ()
    return Sources(torch, rest)


class SourceError(EnvsetupError):
    """The torch source cannot serve the plan: unreachable, or without the pinned builds."""

    code = "index-failed"
    exit_code = EXIT_FAIL

    def __init__(self, reason: str, *, unreachable: bool = False):
        super().__init__(f"{reason}; nothing was changed; {ADVICE}")
        self.reason = reason
        self.unreachable = unreachable  # no answer at all (else: an answer without the build)

    def said(self, state: str) -> str:
        """The message, with what became of the environment."""
        return f"{self.reason}; {state}; {ADVICE}"


ADVICE = (
    "point --index-url at a reachable mirror (or set ENVSETUP_TORCH_INDEX to a mirror of the "
    "PyTorch index), or install from a wheelhouse with --find-links DIR"
)


def check(sources: Sources, plan: Plan, python: str, platform: str) -> None:
    """Each pin must be listed by the torch sources, for this Python and platform.

    Raises :class:`SourceError` with one line naming the source, what was wrong and what to do.
    Reads through :mod:`envsetup.index`: an unreachable host answers within its connect timeout.
    """
    from envsetup.index import CONNECT_TIMEOUT, IndexUnreachable, NotListed, open_source

    if not sources.torch:
        return
    for pin in plan.pins:
        found: Optional[NotListed] = None
        for src in sources.torch:
            source = open_source(src.location, timeout=(CONNECT_TIMEOUT, 15.0))
            try:
                with source:
                    source.require(pin.name, pin.version, python=python, platform=platform)
            except IndexUnreachable as exc:
                raise SourceError(exc.message, unreachable=True) from None
            except NotListed as exc:
                found = found or exc
                continue
            found = None
            break
        if found is not None:
            raise SourceError(found.message)


# An installer saying a distribution is missing: pip ("No matching distribution found for X"),
# uv ("X was not found in the provided package locations" / "... in the package registry").
_MISSING = re.compile(
    r"No matching distribution found for ([A-Za-z0-9._-]+)"
    r"|\b([A-Za-z0-9._-]+) was not found in the (?:provided package locations|package registry)"
)


def wheelhouse_hint(
    why: str, sources: Sources, plan: Plan, python: str, has_pip: bool = True
) -> str:
    """``why`` (an installer's failure) with how to fill the wheelhouse, when the install read
    one (--find-links) and the installer found a distribution missing: the ``pip download`` of
    the plan's pins and their dependencies, from the index the pins come from, for the target's
    Python (its own pip picks the right wheels; a target without pip: any pip, told the
    target's Python version)."""
    houses = wheelhouses(sources.rest) or wheelhouses(sources.torch)
    found = _MISSING.search(why)
    if not houses or found is None:
        return why
    from envsetup import proc
    from envsetup.install.backends._base import requirements

    index = next(iter(indexes(sources.torch)), None) or plan.index_url
    argv = [python, "-m", "pip"] if has_pip else ["pip"]
    argv += ["download", *requirements(plan), "-d", houses[0]]
    if index:
        argv += ["--index-url", index]
    if not has_pip:
        argv += ["--python-version", plan.python.rstrip("t"), "--only-binary=:all:"]
    missing = found.group(1) or found.group(2)
    return (
        f"{why}; the wheelhouse {houses[0]} lacks {missing} (a dependency of the plan): fill it "
        f"with {sources.mask(proc.shell_join(argv))}"
    )
