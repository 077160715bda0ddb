"""Fleets of recorded machines for the fleet tests and bench/fleet.py.

The hardware of every machine comes from the real outputs in tests/fixtures/recorded/ (sources
in its SOURCES.md), replayed through envsetup.detect.hw.Replay. ``replays()`` gives recordings
for a real ``envsetup doctor`` per host (the Ansible tests); ``distinct_machines(n)`` gives n
different machines as profiles built by the real NVIDIA probe over those recordings, with
operating systems from the recorded os-release files, and ``write_fleet`` writes a directory of
node files made from them, each node with its own GPU serials.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

from machines import GIB, cpu_only, h100x8, nvml_error, pci, recorded, titanv_ada


def _smi_machine(smi: str, cc: tuple[int, int], cuda: int, pci_class: str) -> dict[str, Any]:
    """A recording whose NVML answers what the recorded nvidia-smi table shows."""
    from envsetup.detect.nvidia import parse_smi_table

    table = parse_smi_table(recorded(smi))
    devices = [
        {
            "name": g.name,
            "uuid": f"GPU-{g.index:08x}-1111-2222-3333-444444444444",
            "pci_bus_id": g.pci_bus_id,
            "cc": list(cc),
            "memory_total": (g.memory_total_mib or 0) * 1024 * 1024,
            "mig": [0, 0] if "Disabled" in recorded(smi) else None,
            "persistence": 1 if g.persistence_mode else 0,
        }
        for g in table["gpus"]
    ]
    return {
        "files": pci([("0x10de", pci_class)] * len(devices)),
        "nvml": {
            "driver_version": table["driver_version"],
            "cuda_driver_version": cuda,
            "devices": devices,
        },
    }


def h100_535() -> dict[str, Any]:
    """8x H100 80GB HBM3 on driver 535.161.08 (CUDA 12.2); H100 is compute capability 9.0
    (NVIDIA's CUDA GPUs list)."""
    return _smi_machine("nvidia-smi-535.161.08-8x-h100-sxm.txt", (9, 0), 12020, "0x030200")


def rtx5090_570() -> dict[str, Any]:
    """2x GeForce RTX 5090 on driver 570.133.07 (CUDA 12.8); the RTX 5090 is compute capability
    12.0 (NVIDIA's CUDA GPUs list)."""
    return _smi_machine("nvidia-smi-570.133.07-2x-rtx5090.txt", (12, 0), 12080, "0x030000")


def rtx3090_560() -> dict[str, Any]:
    """2x GeForce RTX 3090 on 560.35.03 (CUDA 12.6); compute capability 8.6."""
    return _smi_machine("nvidia-smi-560.35.03-2x-rtx3090.txt", (8, 6), 12060, "0x030000")


def rtx2070_440() -> dict[str, Any]:
    """A GeForce RTX 2070 laptop on 440.100 (CUDA 10.2); compute capability 7.5."""
    return _smi_machine("nvidia-smi-440.100-single-rtx2070-laptop.txt", (7, 5), 10020, "0x030000")


def rtx2000ada_580() -> dict[str, Any]:
    """An RTX 2000 Ada laptop GPU on 580.95.05 (CUDA 13.0); compute capability 8.9."""
    return _smi_machine(
        "nvidia-smi-580.95.05-single-rtx2000ada-laptop.txt", (8, 9), 13000, "0x030000"
    )


def mismatch_580() -> dict[str, Any]:
    """The TrueNAS host of the recorded driver/library mismatch: NVML refuses, the kernel
    module (/proc/driver/nvidia/version) is 580.173.02."""
    return nvml_error(
        "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
        **{"/proc/driver/nvidia/version": recorded("proc-version-proprietary-580.173.02.txt")},
    )


def replays() -> dict[str, dict[str, Any]]:
    """The heterogeneous fleet of the issue, one recording per kind of machine."""
    return {
        "h100-535": h100_535(),
        "rtx5090-570": rtx5090_570(),
        "cpu": cpu_only(),
        "mismatch": mismatch_580(),
    }


GPU_KINDS = {
    "h100-565": h100x8,
    "h100-535": h100_535,
    "rtx5090-570": rtx5090_570,
    "rtx3090-560": rtx3090_560,
    "titanv-ada-570": titanv_ada,
    "rtx2070-440": rtx2070_440,
    "rtx2000ada-580": rtx2000ada_580,
    "cpu": cpu_only,
    "mismatch-580": mismatch_580,
}
OS_RELEASES = ("os-release-ubuntu-22.04", "os-release-ubuntu-24.04", "os-release-debian-12",
               "os-release-rocky-9.5")  # fmt: skip
PYTHONS = ("3.10.12", "3.11.7", "3.12.3")
TORCHES = (None, "2.13.0+cpu", "2.4.1+cu121")


def _nvidia_section(recording: dict[str, Any]) -> dict[str, Any]:
    from envsetup.detect.hw import Replay
    from envsetup.detect.nvidia import probe_nvidia
    from envsetup.profile import to_dict

    return to_dict(probe_nvidia(Replay(copy.deepcopy(recording)), {}))  # type: ignore[no-any-return]


def distinct_machines(n: int) -> list[dict[str, Any]]:
    """``n`` (at most 324) different machines, as Profile JSON, spread over every kind."""
    from envsetup.detect.system import parse_os_release
    from envsetup.profile import Package, Profile, Python, System, Torch, to_dict

    combos = list(itertools.product(TORCHES, PYTHONS, OS_RELEASES, GPU_KINDS))
    assert n <= len(combos)
    step = 7  # coprime with len(combos): n different combinations, every kind among them
    nvidia = {k: _nvidia_section(f()) for k, f in GPU_KINDS.items()}
    out = []
    for i in range(n):
        torch, py, osr, gpu = combos[(i * step) % len(combos)]
        info = parse_os_release(recorded(osr))
        packages = (Package("torch", torch, installer="pip"),) if torch else ()
        cuda = None
        if torch and "+cu" in torch:
            local = torch.split("+cu")[1]
            cuda = f"{local[:-1]}.{local[-1]}"
        p = Profile(
            envsetup_version="0.1.0",
            system=System(os="linux", arch="x86_64", release="6.8.0-50-generic",
                          distro_id=info.get("ID"), distro_version=info.get("VERSION_ID"),
                          distro_name=info.get("PRETTY_NAME"), libc="glibc"),
            python=Python(executable="/opt/venv/bin/python", version=py, virtualenv="/opt/venv",
                          pip_version="24.0"),
            torch=Torch(version=torch, cuda=cuda, packages=packages, origin="pip" if torch else None),
        )  # fmt: skip
        d = to_dict(p)
        d["nvidia"] = nvidia[gpu]
        out.append(d)
    return out


def node_profile(machine: dict[str, Any], node: int) -> dict[str, Any]:
    """One node of a machine: the same machine, its own GPU serial numbers."""
    p = copy.deepcopy(machine)
    for g in p["nvidia"]["gpus"]:
        g["uuid"] = f"GPU-{node:08x}-{g['index']:04x}-0000-0000-000000000000"
    return p


def write_fleet(
    directory: Path, machines: list[dict[str, Any]], nodes: int, *, findings: bool = True
) -> dict[str, int]:
    """``nodes`` files in ``directory``, node k being machine k % len(machines); every third
    node a bare profile (the hand-written form), the others doctor --json documents with the
    findings the real rules give. Returns {node name: machine index}."""
    from envsetup.compat import load_table
    from envsetup.diagnose import diagnose_machine
    from envsetup.profile import Profile, to_dict

    directory.mkdir(parents=True, exist_ok=True)
    table = load_table() if findings else None
    memo: dict[int, Any] = {}
    where = {}
    for k in range(nodes):
        m = k % len(machines)
        prof = node_profile(machines[m], k)
        name = f"node{k:05d}"
        where[name] = m
        if k % 3 == 2:
            doc: Any = prof
        else:
            if m not in memo:
                fs: list[Any] = []
                if findings:
                    fs = to_dict(diagnose_machine(Profile.from_dict(machines[m]), table))
                memo[m] = fs
            doc = {"profile": prof, "findings": memo[m]}
        (directory / f"{name}.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return where


__all__ = ["GIB", "distinct_machines", "replays", "write_fleet"]
