"""Recorded machines for the hardware boundary: built from real recorded outputs in
tests/fixtures/recorded/ (see SOURCES.md there), replayed through envsetup.detect.hw.Replay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

RECORDED = Path(__file__).parent / "fixtures" / "recorded"

GIB = 1024**3


def recorded(name: str) -> str:
    return (RECORDED / name).read_text(encoding="utf-8")


def pci(devices: list[tuple[str, str]]) -> dict[str, str]:
    """sysfs entries for PCI functions: (vendor, class) pairs."""
    files = {}
    for i, (vendor, cls) in enumerate(devices):
        base = f"/sys/bus/pci/devices/0000:{i + 1:02x}:00.0"
        files[f"{base}/vendor"] = vendor + "\n"
        files[f"{base}/class"] = cls + "\n"
    return files


def h100x8() -> dict[str, Any]:
    """The 8x H100 server of nvidia-smi-565.57.01-8x-h100-sxm.txt (open module 565.57.01)."""
    from envsetup.detect.nvidia import parse_smi_table

    table = parse_smi_table(recorded("nvidia-smi-565.57.01-8x-h100-sxm.txt"))
    devices = [
        {
            "name": g.name,
            "uuid": f"GPU-{g.index:08x}-0000-0000-0000-000000000000",
            "pci_bus_id": g.pci_bus_id,
            "cc": [9, 0],  # H100 is compute capability 9.0 (NVIDIA's CUDA GPUs list)
            "memory_total": g.memory_total_mib * 1024 * 1024,
            "mig": [0, 0],
            "persistence": 1,
        }
        for g in table["gpus"]
    ]
    return {
        "files": {
            "/proc/driver/nvidia/version": recorded("proc-version-open-565.57.01.txt"),
            **pci([("0x10de", "0x030200")] * 8),
        },
        "nvml": {
            "driver_version": table["driver_version"],
            "cuda_driver_version": 12070,
            "devices": devices,
        },
    }


def titanv_ada(missing: Optional[list[str]] = None) -> dict[str, Any]:
    """The TITAN V + RTX 5880 Ada workstation of the recorded compute_cap query (570.86.15)."""
    from envsetup.detect.nvidia import parse_smi_query

    rows = parse_smi_query(
        recorded("nvidia-smi-query-compute-cap-mode-driver-name-index-titanv-rtx5880ada.csv"),
        "compute_cap,compute_mode,driver_version,name,index",
    )
    devices = [
        {
            "name": r["name"],
            "uuid": f"GPU-{int(r['index']):08x}-aaaa-bbbb-cccc-dddddddddddd",
            "pci_bus_id": f"00000000:{int(r['index']) + 1:02X}:00.0",
            "cc": [int(x) for x in r["compute_cap"].split(".")],
            "memory_total": 12 * GIB,
            "mig": None,
            "persistence": 0,
        }
        for r in rows
    ]
    return {
        "files": pci([("0x10de", "0x030000"), ("0x10de", "0x030000")]),
        "nvml": {
            "driver_version": rows[0]["driver_version"],
            "cuda_driver_version": 12080,
            "devices": devices,
            "missing_functions": missing or [],
        },
    }


def nvml_error(error: str, *, gpus_on_bus: int = 1, **extra_files: str) -> dict[str, Any]:
    return {
        "files": {**pci([("0x10de", "0x030200")] * gpus_on_bus), **extra_files},
        "nvml": {"error": error},
    }


def cpu_only() -> dict[str, Any]:
    return {
        "files": pci([("0x1234", "0x030000")]),
        "nvml": {"error": "NVML_ERROR_LIBRARY_NOT_FOUND"},
    }


def write(tmp: Path, recording: dict[str, Any], name: str = "machine.json") -> str:
    path = tmp / name
    path.write_text(json.dumps(recording), encoding="utf-8")
    return str(path)
