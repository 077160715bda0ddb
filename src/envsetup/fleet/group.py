"""Identical machines, grouped: the same GPUs, driver, OS, Python and torch build.

The machine of a node is read straight from its profile's JSON (already checked to be a
Profile), with the Profile's own defaults for what a hand-written profile leaves out, so that
thousands of nodes are grouped without building their dataclasses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from envsetup.fleet.nodes import Node
from envsetup.profile import Gpu, Nvidia, OtherAccelerators, Python, System, Torch

DIMENSIONS = ("gpus", "driver", "os", "python", "torch")
LABELS = {"gpus": "GPUs", "driver": "driver", "os": "OS", "python": "Python", "torch": "torch"}

_EMPTY: dict[str, Any] = {}


def _sm(cc: Any) -> str:
    return f"sm_{str(cc).replace('.', '')}" if cc else "cc unknown"


def machine(p: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, str]]:
    """(key, what it says in words) for one profile's JSON."""
    sy = p.get("system") or _EMPTY
    py = p.get("python") or _EMPTY
    nv = p.get("nvidia") or _EMPTY
    ot = p.get("other") or _EMPTY
    to = p.get("torch") or _EMPTY

    visible: Counter[tuple[str, str]] = Counter()
    hidden = 0
    for g in nv.get("gpus") or ():
        if g.get("visible", Gpu.visible):
            visible[(g.get("name") or "unnamed GPU", g.get("compute_capability") or "")] += 1
        else:
            hidden += 1
    pci = nv.get("pci_devices", Nvidia.pci_devices)
    amd = ot.get("amd_gpus", OtherAccelerators.amd_gpus)
    mps = ot.get("mps", OtherAccelerators.mps)
    kinds = tuple(sorted(visible.items()))
    words = [f"{n}× {name} ({_sm(cc)})" for (name, cc), n in kinds]
    if hidden:
        words.append(f"{hidden} hidden by CUDA_VISIBLE_DEVICES")
    if not kinds and not hidden and pci:
        words.append(f"{pci} NVIDIA GPU(s) on the PCI bus, none listed by a driver")
    if amd:
        words.append(f"{amd} AMD GPU(s)")
    if mps:
        words.append("Apple MPS")
    gpus = " + ".join(words) or "no GPU"

    drv = nv.get("driver_version")
    err = nv.get("nvml_error")
    err_kind = err.get("kind") if isinstance(err, dict) else None
    driver = (drv or "none") + (f" (NVML: {err_kind})" if err_kind else "")

    os_key = tuple(
        sy.get(k, getattr(System, k, None))
        for k in (
            "os",
            "arch",
            "distro_id",
            "distro_version",
            "wsl",
            "macos_version",
            "windows_build",
        )
    )
    os_name, arch, distro, dver, wsl, macos, winbuild = os_key
    if distro:
        base = f"{distro} {dver}" if dver else str(distro)
    elif macos:
        base = f"macOS {macos}"
    elif winbuild:
        base = f"Windows build {winbuild}"
    else:
        base = str(os_name)
    os_words = f"{base} {arch}" + (f" {str(wsl).upper()}" if wsl else "")

    version = py.get("version", Python.version)
    impl = py.get("implementation", Python.implementation)
    ft = py.get("free_threaded", Python.free_threaded)
    bits = py.get("bits", Python.bits)
    python = (
        f"{version}{'t' if ft else ''}"
        + (f" ({impl})" if impl != "cpython" else "")
        + (" 32-bit" if bits != 64 else "")
    )

    tv = to.get("version", Torch.version)
    torch = tv or "not installed"

    key = (kinds, hidden, pci if not kinds else 0, amd, mps, drv, err_kind, os_key,
           version, impl, ft, bits, tv)  # fmt: skip
    return key, {"gpus": gpus, "driver": driver, "os": os_words, "python": python, "torch": torch}


@dataclass
class Group:
    machine: dict[str, str]
    nodes: list[Node] = field(default_factory=list)


def group_nodes(nodes: list[Node]) -> list[Group]:
    """Groups of identical machines, the largest first (then in the order of their words)."""
    from envsetup.fleet.nodes import no_cycle_collection

    groups: dict[tuple[Any, ...], Group] = {}
    with no_cycle_collection():
        for node in nodes:
            key, words = machine(node.profile)
            g = groups.get(key)
            if g is None:
                g = groups[key] = Group(words)
            g.nodes.append(node)
    out = list(groups.values())
    out.sort(key=lambda g: (-len(g.nodes), [g.machine[d] for d in DIMENSIONS]))
    return out


def differences(groups: list[Group]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """({dimension: its values, in group order} where groups differ, {dimension: value} where
    every group agrees)."""
    differs: dict[str, list[str]] = {}
    same: dict[str, str] = {}
    for d in DIMENSIONS:
        values = list(dict.fromkeys(g.machine[d] for g in groups))
        if len(values) > 1:
            differs[d] = values
        elif values:
            same[d] = values[0]
    return differs, same
