"""The registry of installer backends: the one list every part of envsetup reads.

``--installer``'s choices and help, the default for a target, the wizard's choices, the
commands ``envsetup plan`` prints, and ``--export``'s kinds all come from :data:`BACKENDS`.
Adding an installer is one module (``backends/<name>.py`` with a ``BACKEND`` following
:class:`~envsetup.install.backends._base.Backend`) and one line here.

The order is the order of preference: a target's default installer is the first backend that
is preferred there and can be found (conda in a conda environment, else uv when installed,
else pip).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from envsetup.errors import UsageError
from envsetup.install.backends import conda, pip, uv

if TYPE_CHECKING:
    from envsetup.install.backends._base import (
        Backend,
        Chosen,
        Context,
        Fit,
        Staging,
        Step,
        Tool,
        Where,
    )
    from envsetup.install.sources import Sources
    from envsetup.install.target import TargetInfo
    from envsetup.plan import Plan

BACKENDS: dict[str, Backend] = {
    "conda": conda.BACKEND,
    "uv": uv.BACKEND,
    "pip": pip.BACKEND,
}


def names() -> list[str]:
    return list(BACKENDS)


def get(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"--installer {name}: choose one of {', '.join(BACKENDS)}") from None


def installer_help() -> str:
    """``--installer``'s help: the choices and the rule for the default."""
    rules = [b.default_when for b in BACKENDS.values() if b.default_when]
    return f"{' | '.join(BACKENDS)} (default: {', else '.join(rules)})"


def exports() -> dict[str, Backend]:
    """``--export`` kind → the backend that writes it."""
    return {b.export_name: b for b in BACKENDS.values()}


def default_for(target: TargetInfo) -> str:
    for b in BACKENDS.values():
        if b.preferred(target) and b.find(target).ok:
            return b.name
    return next(reversed(BACKENDS))


def available(plan: Plan, target: TargetInfo, sources: Sources) -> list[str]:
    """The installers that can carry out ``plan`` for ``target`` (the wizard's choices)."""
    out = []
    for b in BACKENDS.values():
        fit = b.fits(plan, target, sources)
        if (fit.ok or fit.instead) and b.find(target).ok:
            out.append(b.name)
    return out


def __getattr__(name: str) -> Any:
    """The protocol's records (``Step``, ``Context``, …), imported on first use: the registry
    itself is read at every start (``--installer``'s help) and must cost next to nothing."""
    if name in ("Backend", "Chosen", "Context", "Fit", "Staging", "Step", "Tool", "Where"):
        from envsetup.install.backends import _base

        return getattr(_base, name)
    raise AttributeError(name)


def resolver(backend: Backend) -> str:
    """The resolver whose set ``backend`` installs for a stack; "": torch alone."""
    return str(getattr(backend, "resolver", "") or "")


def choose(
    name: Optional[str], plan: Plan, target: TargetInfo, sources: Sources, *, stack: bool = False
) -> Chosen:
    """The backend for ``name`` (None: the target's default), checked against the plan; with
    ``stack``, one that installs a resolved set of packages (the first such backend that fits
    and is found, in the registry's order, when the one asked for installs torch alone)."""
    from envsetup.install.backends._base import Chosen

    asked = name or default_for(target)
    backend = get(asked)
    note = None
    if stack and not resolver(backend):
        instead = next(
            (b for b in BACKENDS.values()
             if resolver(b) and b.fits(plan, target, sources).ok and b.find(target).ok),
            None,
        )  # fmt: skip
        if instead is None:
            raise UsageError(
                f"--installer {asked} installs the torch build alone, and no installer that "
                "installs packages from indexes was found: install uv (pip install uv), or pip"
            )
        note = (
            f"{asked} installs the torch build alone: {instead.name} installs the whole set "
            f"into {target.prefix}"
        )
        backend = instead
    fit = backend.fits(plan, target, sources)
    if not fit.ok:
        if fit.instead is None:
            raise UsageError(f"--installer {backend.name}: {fit.why}")
        note, backend = fit.why, get(fit.instead)
    tool = backend.find(target)
    if not tool.ok:
        raise UsageError(f"--installer {backend.name}: {tool.why}")
    return Chosen(backend, tool, note)


def direct_commands(
    plan: Plan, python: str, extra: tuple[str, ...] = ()
) -> dict[str, list[list[str]]]:
    """The one command each installer would run to install ``plan`` into ``python`` (what
    ``envsetup plan`` shows); a backend that does not fit shows the one that installs instead.
    ``extra``: the user's other requirements (a stack), from the default index."""
    from envsetup.install.backends._base import Where
    from envsetup.install.sources import for_install, for_stack

    sources = for_stack(plan, None, None) if extra else for_install(plan, None)
    where = Where(python=python, extra=extra)
    out: dict[str, list[list[str]]] = {}
    for name, b in BACKENDS.items():
        fit = b.fits(plan, None, sources)
        chosen = get(fit.instead) if not fit.ok and fit.instead else b
        if extra and not resolver(chosen):
            chosen = next(x for x in BACKENDS.values() if resolver(x))
        out[name] = [sources.mask_argv(chosen.direct(plan, where, sources))]
    return out


__all__ = [
    "BACKENDS",
    "Backend",
    "Chosen",
    "Context",
    "Fit",
    "Staging",
    "Step",
    "Tool",
    "Where",
    "available",
    "choose",
    "default_for",
    "direct_commands",
    "exports",
    "get",
    "installer_help",
    "names",
    "resolver",
]
