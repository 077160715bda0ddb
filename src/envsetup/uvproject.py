"""Exports for a team's project: one pyproject for several kinds of machine, and a requirements
file that stays right when other packages are added to it.

``uv_project([(label, profile, plan), ...])`` writes uv's documented PyTorch pattern: an explicit
``[[tool.uv.index]]`` per PyTorch variant, ``[tool.uv.sources]`` entries with an environment marker
per platform, and ``[tool.uv] environments`` for those platforms, so that ``uv lock`` locks every
machine kind at once and ``uv sync`` on each machine installs its build. Two kinds of machine on
one platform that need different builds (a GPU node and a CPU node, both Linux x86_64) cannot be
told apart by markers: then each build is an extra, the extras are declared conflicting, and each
machine syncs with its own (``uv sync --extra cu121``); the export says so in one line.

``requirements(plan)`` writes the build as pip requirements: ``--extra-index-url`` for the variant
index (the user's default index stays in force for everything else) and each torch-family pin
with its full local version (``torch==2.4.1+cu121``), which only the variant index serves (a
package index accepts no local versions), so adding ``transformers`` to the file keeps both
right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from envsetup.errors import UsageError
from envsetup.plan import Plan
from envsetup.secrets import for_export, index_name_for

# Plan.platform -> the PEP 508 marker uv evaluates for it (Windows reports AMD64).
MARKERS = {
    "linux_x86_64": "sys_platform == 'linux' and platform_machine == 'x86_64'",
    "linux_aarch64": "sys_platform == 'linux' and platform_machine == 'aarch64'",
    "windows_x86_64": "sys_platform == 'win32' and platform_machine == 'AMD64'",
    "macos_arm64": "sys_platform == 'darwin' and platform_machine == 'arm64'",
    "macos_x86_64": "sys_platform == 'darwin' and platform_machine == 'x86_64'",
}


@dataclass(frozen=True)
class Machine:
    label: str  # what the user calls it: the profile file's name
    profile: Any
    plan: Plan


@dataclass(frozen=True)
class UvExport:
    text: str  # the pyproject.toml
    notes: tuple[str, ...] = ()  # one line each, for stderr (e.g. why extras are used)
    extras: dict[str, tuple[str, ...]] = field(default_factory=dict)  # extra -> its machines


def _s(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def index_name(variant: str) -> str:
    return "pytorch-" + re.sub(r"[^a-z0-9]+", "-", variant.lower()).strip("-")


def _pin_version(plan: Plan, name: str, version: str) -> str:
    """The version a pin names: the full local version for a variant index's builds (the
    PyTorch index labels torchvision and torchaudio builds like torch's), public otherwise."""
    local = (plan.local_version or "").partition("+")[2]
    if plan.index_url and local:
        return f"{version}+{local}"
    return version


def _python_range(plans: Sequence[Plan]) -> str:
    minors = sorted({tuple(int(x) for x in p.python.rstrip("t").split(".")) for p in plans})
    lo, hi = minors[0], minors[-1]
    return f">={lo[0]}.{lo[1]},<{hi[0]}.{hi[1] + 1}"


def uv_project(
    machines: Sequence[Machine],
    requirements: Sequence[str] = (),
    *,
    name: str = "project",
    index_base: Optional[str] = None,
) -> UvExport:
    """The pyproject entries that give each machine kind its build through ``uv lock`` / ``uv
    sync``. ``index_base`` replaces the plans' PyTorch index base (a mirror); ``requirements``
    are the project's other dependencies."""
    if not machines:
        raise UsageError("--export uv needs at least one machine (--profile FILE)")
    by_platform: dict[str, list[Machine]] = {}
    for m in machines:
        by_platform.setdefault(m.plan.platform, []).append(m)

    def url(plan: Plan) -> Optional[str]:
        if plan.index_url is None:
            return None
        if index_base:
            return index_base.rstrip("/") + "/" + plan.index_url.rstrip("/").rsplit("/", 1)[1]
        return plan.index_url

    clash = {
        plat: ms
        for plat, ms in by_platform.items()
        if len({(m.plan.variant, m.plan.torch) for m in ms}) > 1
    }
    notes: list[str] = []
    plans = [m.plan for m in machines]
    head = [
        f"# made by envsetup for {', '.join(m.label for m in machines)}: merge into your "
        "pyproject.toml, then uv lock; uv sync on each machine",
        "[project]",
        f"name = {_s(name)}",
        'version = "0"',
        f"requires-python = {_s(_python_range(plans))}",
    ]
    indexes: dict[str, str] = {}
    for m in machines:
        u = url(m.plan)
        if u:
            indexes[index_name(m.plan.variant)] = u
    body: list[str] = []
    extras: dict[str, tuple[str, ...]] = {}
    if clash:
        plat, ms = next(iter(clash.items()))
        kinds = ", ".join(f"{m.label}: {m.plan.variant}" for m in ms)
        extras = _extras(machines)
        first = next(iter(extras))
        notes.append(
            f"{len(ms)} machines on {plat} need different builds ({kinds}); platform markers "
            "cannot tell them apart, so each build is an extra: run uv sync --extra NAME on each "
            f"machine (e.g. --extra {first} on {', '.join(extras[first])})"
        )
        deps = list(requirements)
        body += _deps("dependencies", deps)
        body.append("[project.optional-dependencies]")
        sources: dict[str, list[str]] = {}
        for extra, labels in extras.items():
            plan = next(m.plan for m in machines if m.label == labels[0])
            pins = [f"{p.name}=={_pin_version(plan, p.name, p.version)}" for p in plan.pins]
            body.append(f"{extra} = [{', '.join(_s(x) for x in pins)}]")
            if url(plan):
                for p in plan.pins:
                    sources.setdefault(p.name, []).append(
                        f'{{ index = "{index_name(plan.variant)}", extra = "{extra}" }}'
                    )
        body += ["", "[tool.uv]"]
        body.append("conflicts = [[" + ", ".join(f'{{ extra = "{e}" }}' for e in extras) + "]]")
    else:
        marked: list[str] = []
        sources = {}
        names = sorted({p.name for pl in plans for p in pl.pins}, key=_order)
        for n in names:
            versions: dict[str, list[str]] = {}
            for plat, ms in by_platform.items():
                plan = ms[0].plan
                pin = next((p for p in plan.pins if p.name == n), None)
                if pin is not None:
                    versions.setdefault(_pin_version(plan, n, pin.version), []).append(plat)
                    if url(plan):
                        sources.setdefault(n, []).append(
                            f'{{ index = "{index_name(plan.variant)}", marker = '
                            f"{_s(MARKERS[plat])} }}"
                        )
            for v, plats in versions.items():
                if len(versions) == 1 and len(plats) == len(by_platform):
                    marked.append(f"{n}=={v}")
                else:
                    marked.append(f"{n}=={v}; " + " or ".join(f"({MARKERS[p]})" for p in plats))
        body += _deps("dependencies", [*marked, *requirements])
        body += ["[tool.uv]"]
    body.append("environments = [" + ", ".join(_s(MARKERS[p]) for p in sorted(by_platform)) + "]")
    body.append("")
    if sources:
        body.append("[tool.uv.sources]")
    for n, entries in sorted(sources.items(), key=lambda kv: _order(kv[0])):
        body.append(f"{n} = [")
        body += [f"  {e}," for e in entries]
        body.append("]")
    if sources:
        body.append("")
    for iname, u in sorted(indexes.items()):
        body += ["[[tool.uv.index]]", f"name = {_s(iname)}", f"url = {_s(u)}", "explicit = true"]
        body.append("")
    named = {u: iname for iname, u in indexes.items()}
    text = for_export(
        "\n".join([*head, *body]).rstrip() + "\n",
        lambda u: named.get(u, index_name_for(u)),
        pip=False,
    )
    return UvExport(text=text, notes=tuple(notes), extras=extras)


def _order(name: str) -> tuple[int, str]:
    return (("torch", "torchvision", "torchaudio").index(name), name) if name in (
        "torch", "torchvision", "torchaudio") else (9, name)  # fmt: skip


def _deps(key: str, deps: Sequence[str]) -> list[str]:
    return [f"{key} = [", *(f"  {_s(d)}," for d in deps), "]", ""]


def _extras(machines: Sequence[Machine]) -> dict[str, tuple[str, ...]]:
    """One extra per distinct build: the variant's name, with the torch version where one
    variant comes in several versions."""
    builds: dict[tuple[str, str], list[str]] = {}
    for m in machines:
        builds.setdefault((m.plan.variant, m.plan.torch), []).append(m.label)
    per_variant: dict[str, int] = {}
    for variant, _ in builds:
        per_variant[variant] = per_variant.get(variant, 0) + 1
    out: dict[str, tuple[str, ...]] = {}
    for (variant, torch), labels in builds.items():
        extra = variant if per_variant[variant] == 1 else f"{variant}-torch{torch}"
        out[re.sub(r"[^a-z0-9]+", "-", extra.lower()).strip("-")] = tuple(labels)
    return out


def requirements(plan: Plan, index_url: Optional[str] = None, extra: Sequence[str] = ()) -> str:
    """The build as a pip requirements file that more packages can be added to.

    No ``--index-url`` (it would hide the user's package index): the variant index is an
    ``--extra-index-url`` and each torch-family pin carries its full local version, which only
    that index serves. The plain package-index build (variant ``default``) needs neither.
    """
    index = index_url or plan.index_url
    lines = [
        f"# torch {plan.local_version or plan.torch} ({plan.variant}) for {plan.platform}, Python "
        f"{plan.python}; made by envsetup. Add your packages below: they come from your default "
        "index."
    ]
    if index:
        lines.append(f"--extra-index-url {index}")
    for p in plan.pins:
        v = _pin_version(plan, p.name, p.version) if index else p.version
        lines.append(f"{p.name}=={v}")
    lines += list(extra)
    name = index_name(plan.variant)
    return for_export(
        "\n".join(lines) + "\n",
        lambda u: name if u == index else index_name_for(u),
        pip=True,
    )
