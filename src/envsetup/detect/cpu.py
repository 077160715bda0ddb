"""The CPU: brand, cores and the ISA flags that matter to torch builds.

On Linux /proc/cpuinfo is read directly (a few milliseconds). Elsewhere py-cpuinfo answers;
its full call times the CPU clock (about a second), so it is used only where there is no
/proc/cpuinfo to read.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Optional

from envsetup.profile import Cpu

# Flags worth reporting: vector widths torch's CPU kernels dispatch on, and AMX for bf16/int8.
FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    # aarch64
    "asimd",
    "asimdhp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)

_ARM_IMPLEMENTERS = {"0x41": "ARM", "0x61": "Apple", "0xc0": "Ampere", "0x48": "HiSilicon",
                     "0x4e": "NVIDIA", "0x51": "Qualcomm"}  # fmt: skip


def parse_proc_cpuinfo(text: str) -> dict[str, Any]:
    brand: Optional[str] = None
    vendor: Optional[str] = None
    flags: set[str] = set()
    cores: set[tuple[str, str]] = set()
    logical = 0
    phys_id = core_id = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            logical += 1
        elif key == "model name" and brand is None:
            brand = value
        elif key == "vendor_id" and vendor is None:
            vendor = value
        elif key == "CPU implementer" and vendor is None:
            vendor = _ARM_IMPLEMENTERS.get(value.lower(), value)
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key == "physical id":
            phys_id = value
        elif key == "core id":
            core_id = value
            cores.add((phys_id, core_id))
    return {
        "brand": brand,
        "vendor": vendor,
        "logical_cores": logical or None,
        "physical_cores": len(cores) or None,
        "flags": tuple(f for f in FLAGS if f in flags),
    }


def probe_cpu(root: Path = Path("/")) -> Cpu:
    arch = platform.machine() or None
    try:
        text = (root / "proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = None
    if text:
        info = parse_proc_cpuinfo(text)
        info["logical_cores"] = info["logical_cores"] or os.cpu_count()
        unknown = {} if info["brand"] else {"brand": "no 'model name' in /proc/cpuinfo"}
        return Cpu(arch=arch, source="/proc/cpuinfo", unknown=unknown, **info)
    try:
        import cpuinfo

        data = cpuinfo.get_cpu_info()
    except Exception as exc:
        return Cpu(arch=arch, logical_cores=os.cpu_count(), unknown={"brand": f"py-cpuinfo: {exc}"})
    flags = set(data.get("flags", ()))
    return Cpu(
        brand=data.get("brand_raw"),
        vendor=data.get("vendor_id_raw"),
        arch=arch,
        logical_cores=data.get("count") or os.cpu_count(),
        flags=tuple(f for f in FLAGS if f in flags),
        source="py-cpuinfo",
    )
