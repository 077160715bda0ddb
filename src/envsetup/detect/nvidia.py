"""NVIDIA driver and GPUs: NVML first, then /proc, /sys and nvidia-smi; AMD and Apple by presence."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import re
from collections.abc import Mapping
from typing import Any, Callable, Optional

from envsetup.detect.hw import Hardware
from envsetup.profile import Gpu, Nvidia, NvmlError, OtherAccelerators

NVIDIA_VENDOR = "0x10de"
AMD_VENDOR = "0x1002"
PCI_DEVICES = "/sys/bus/pci/devices"

# pynvml exception class name → our classification of why NVML is unusable.
_NVML_KINDS = {
    "NVMLError_LibraryNotFound": "library_not_found",
    "NVMLError_DriverNotLoaded": "driver_not_loaded",
    "NVMLError_LibRmVersionMismatch": "lib_rm_version_mismatch",
    "NVMLError_NoPermission": "no_permission",
    "NVMLError_FunctionNotFound": "function_not_found",
}


def classify_nvml_error(exc: BaseException) -> NvmlError:
    kind = _NVML_KINDS.get(type(exc).__name__, "unknown")
    message = str(exc) or type(exc).__name__
    return NvmlError(kind=kind, message=message)


# ---------------------------------------------------------------- parsers of recorded text


def parse_proc_driver_version(text: str) -> tuple[Optional[str], Optional[str]]:
    """``/proc/driver/nvidia/version`` → (driver version, "open" | "proprietary")."""
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            m = re.search(r"\s(\d+\.\d+(?:\.\d+)?)\s", line + " ")
            version = m.group(1) if m else None
            kind = "open" if "Open Kernel Module" in line else "proprietary"
            return version, kind
    return None, None


_SMI_GPU_ROW = re.compile(
    r"^\|\s+(\d+)\s+(.+?)\s+(On|Off)\s+\|\s+([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)"
)
_SMI_MEMORY = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


def parse_smi_table(text: str) -> dict[str, Any]:
    """Plain ``nvidia-smi`` output: driver and CUDA versions, and a row per GPU."""
    drv = re.search(r"Driver Version:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", text)
    smi = re.search(r"NVIDIA-SMI\s+([\d.]+)", text)
    gpus: list[Gpu] = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        m = _SMI_GPU_ROW.match(line)
        if not m:
            continue
        mem = _SMI_MEMORY.search(lines[n + 1]) if n + 1 < len(lines) else None
        gpus.append(
            Gpu(
                index=int(m.group(1)),
                name=m.group(2).strip(),
                pci_bus_id=m.group(4),
                memory_total_mib=int(mem.group(2)) if mem else None,
                persistence_mode=m.group(3) == "On",
            )
        )
    return {
        "driver_version": drv.group(1) if drv else None,
        "cuda_driver_version": cuda.group(1) if cuda else None,
        "smi_version": smi.group(1) if smi else None,
        "gpus": gpus,
    }


def parse_smi_error(text: str) -> Optional[NvmlError]:
    """nvidia-smi's failure text → the same classification NVML errors get."""
    low = text.lower()
    if "version mismatch" in low:
        return NvmlError("lib_rm_version_mismatch", text.strip().splitlines()[0])
    if "couldn't communicate with the nvidia driver" in low or "driver not loaded" in low:
        return NvmlError("driver_not_loaded", text.strip().splitlines()[0])
    if "insufficient permissions" in low or "no permission" in low:
        return NvmlError("no_permission", text.strip().splitlines()[0])
    if "library not found" in low or "couldn't find libnvidia-ml" in low:
        return NvmlError("library_not_found", text.strip().splitlines()[0])
    return None


SMI_QUERY = "index,name,uuid,pci.bus_id,memory.total,driver_version,compute_cap"


def parse_smi_query(text: str, fields: str = SMI_QUERY) -> list[dict[str, str]]:
    """``nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits`` → one dict per GPU."""
    names = fields.split(",")
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) != len(names):
            continue
        values = [v.strip() for v in row]
        if values[0].split(" [")[0] == names[0]:  # the header line of --format=csv
            continue
        rows.append(dict(zip(names, values)))
    return rows


def cuda_version_from_int(value: int) -> str:
    """NVML's CUDA driver version integer (12080) → "12.8"."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def visible_gpus(value: Optional[str], gpus: list[Gpu]) -> list[Gpu]:
    """Apply CUDA_VISIBLE_DEVICES (indices, GPU-UUID prefixes or MIG ids) to the GPU list.

    CUDA reads the list left to right and stops at the first entry it cannot match; an empty
    value hides every GPU. Indices are taken in PCI order, as NVML lists the GPUs.
    """
    if value is None:
        return gpus
    keep: set[int] = set()
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            break
        if item.lstrip("-").isdigit():
            i = int(item)
            if i < 0 or i >= len(gpus):
                break
            keep.add(i)
            continue
        if item.startswith("MIG-"):
            # A MIG instance: its parent GPU is not nameable from here; keep MIG-enabled GPUs.
            keep.update(g.index for g in gpus if g.mig_mode)
            continue
        match = [g for g in gpus if g.uuid and g.uuid.startswith(item)]
        if len(match) != 1:
            break
        keep.add(match[0].index)
    return [dataclasses.replace(g, visible=g.index in keep) for g in gpus]


# ---------------------------------------------------------------- probes


def pci_devices(hw: Hardware) -> dict[str, int]:
    """Count display/3D controllers by vendor from sysfs (what lspci would list)."""
    counts = {NVIDIA_VENDOR: 0, AMD_VENDOR: 0}
    for dev in hw.listdir(PCI_DEVICES):
        cls = (hw.read_text(f"{PCI_DEVICES}/{dev}/class") or "").strip()
        if not cls.startswith("0x03"):  # 0x0300 VGA, 0x0302 3D controller
            continue
        vendor = (hw.read_text(f"{PCI_DEVICES}/{dev}/vendor") or "").strip().lower()
        if vendor in counts:
            counts[vendor] += 1
    return counts


_GPU_FIELDS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("name", "nvmlDeviceGetName", lambda v: _text(v)),
    ("uuid", "nvmlDeviceGetUUID", lambda v: _text(v)),
    ("pci_bus_id", "nvmlDeviceGetPciInfo", lambda v: _text(v.busId)),
    ("compute_capability", "nvmlDeviceGetCudaComputeCapability", lambda v: f"{v[0]}.{v[1]}"),
    ("memory_total_mib", "nvmlDeviceGetMemoryInfo", lambda v: int(v.total) // (1024 * 1024)),
    ("mig_mode", "nvmlDeviceGetMigMode", lambda v: bool(v[0])),
    ("persistence_mode", "nvmlDeviceGetPersistenceMode", bool),
)


def _nvml_gpus(nvml: Any, unknown: dict[str, str]) -> list[Gpu]:
    gpus = []
    for i in range(nvml.nvmlDeviceGetCount()):
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(i)
        except Exception as exc:  # e.g. a GPU this job's cgroup does not give it
            unknown[f"gpus[{i}]"] = (
                f"nvmlDeviceGetHandleByIndex: {classify_nvml_error(exc).kind}: {exc}"
            )
            continue
        fields: dict[str, Any] = {"index": i}

        for key, fn, convert in _GPU_FIELDS:
            try:
                fields[key] = convert(getattr(nvml, fn)(h))
            except Exception as exc:
                if type(exc).__name__ == "NVMLError_NotSupported":
                    fields[key] = None  # e.g. MIG on a GPU without it, persistence on Windows
                    continue
                unknown[f"gpus[{i}].{key}"] = f"{fn}: {classify_nvml_error(exc).kind}: {exc}"
        gpus.append(Gpu(**fields))
    return gpus


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_nvidia(hw: Hardware, env: Mapping[str, str]) -> Nvidia:
    unknown: dict[str, str] = {}
    out: dict[str, Any] = {"cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES")}
    out["pci_devices"] = pci_devices(hw)[NVIDIA_VENDOR]
    gpus: list[Gpu] = []

    proc_text = hw.read_text("/proc/driver/nvidia/version")
    proc_version, out["kernel_module"] = parse_proc_driver_version(proc_text or "")

    try:
        nvml = hw.nvml()
    except OSError as exc:  # no libnvidia-ml.so.1 to load: what NVML itself would report
        nvml = None
        out["nvml_error"] = NvmlError("library_not_found", f"NVML Shared Library Not Found ({exc})")
    except ImportError as exc:  # nvidia-ml-py missing from envsetup's own environment
        nvml = None
        out["nvml_error"] = NvmlError("library_not_found", f"nvidia-ml-py: {exc}")
    if nvml is not None:
        try:
            nvml.nvmlInit()
        except Exception as exc:
            out["nvml_error"] = classify_nvml_error(exc)
        else:
            try:
                out["driver_version"] = _text(nvml.nvmlSystemGetDriverVersion())
                out["source"] = "nvml"
                try:
                    out["cuda_driver_version"] = cuda_version_from_int(
                        nvml.nvmlSystemGetCudaDriverVersion_v2()
                    )
                except nvml.NVMLError:
                    try:
                        out["cuda_driver_version"] = cuda_version_from_int(
                            nvml.nvmlSystemGetCudaDriverVersion()
                        )
                    except nvml.NVMLError as exc:
                        unknown["cuda_driver_version"] = f"NVML: {exc}"
                gpus = _nvml_gpus(nvml, unknown)
                out["nvml_library"] = hw.loaded_nvml_path()
            except Exception as exc:
                out["nvml_error"] = classify_nvml_error(exc)
            finally:
                with contextlib.suppress(Exception):
                    nvml.nvmlShutdown()

    if out.get("driver_version") is not None and not gpus and out["pci_devices"]:
        # The driver answered but NVML listed no GPU that the bus has: ask nvidia-smi too.
        _smi_fallback(hw, out, gpus, unknown)
    elif out.get("driver_version") is None:
        if proc_version:
            out["driver_version"], out["source"] = proc_version, "proc"
        else:
            sys_version = (hw.read_text("/sys/module/nvidia/version") or "").strip()
            if sys_version:
                out["driver_version"], out["source"] = sys_version, "sysfs"
        _smi_fallback(hw, out, gpus, unknown)

    if out.get("driver_version") is None:
        reason = out["nvml_error"].message if out.get("nvml_error") else "no NVIDIA driver found"
        unknown["driver_version"] = reason
    visible = visible_gpus(out["cuda_visible_devices"], gpus)
    return Nvidia(gpus=tuple(visible), unknown=unknown, **out)


def _smi_fallback(
    hw: Hardware, out: dict[str, Any], gpus: list[Gpu], unknown: dict[str, str]
) -> None:
    """When NVML is unusable, nvidia-smi may still tell the driver, the GPUs, or why it fails."""
    fields = SMI_QUERY
    res = hw.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"], 15)
    if res.error and res.returncode == -1:
        return  # no nvidia-smi on PATH
    if not res.ok and "not a valid field" in res.stdout + res.stderr:
        # Drivers before compute_cap was queryable (R510): ask without it.
        fields = SMI_QUERY.replace(",compute_cap", "")
        res = hw.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"], 15)
    if res.ok:
        rows = parse_smi_query(res.stdout, fields)
        for row in rows:
            cc = row.get("compute_cap") or None
            mem = row.get("memory.total", "")
            gpus.append(
                Gpu(
                    index=int(row["index"]) if row["index"].isdigit() else len(gpus),
                    name=row.get("name") or None,
                    uuid=row.get("uuid") or None,
                    pci_bus_id=row.get("pci.bus_id") or None,
                    compute_capability=cc if cc and cc[0].isdigit() else None,
                    memory_total_mib=int(mem) if mem.isdigit() else None,
                )
            )
        if rows and out.get("driver_version") is None:
            out["driver_version"], out["source"] = rows[0].get("driver_version"), "nvidia-smi"
        table = hw.run(["nvidia-smi"], timeout=15)
        if table.ok:
            header = parse_smi_table(table.stdout)
            out.setdefault("cuda_driver_version", header["cuda_driver_version"])
        return
    err = parse_smi_error(res.stdout + "\n" + res.stderr)
    vague = out.get("nvml_error") is None or out["nvml_error"].kind in (
        "library_not_found",
        "unknown",
    )
    if err is not None and vague:
        # nvidia-smi carries its own NVML: when ours could not load or said nothing useful,
        # its message ("Driver/library version mismatch") is the more exact one.
        out["nvml_error"] = err
    elif err is None:
        lines = (res.stdout + res.stderr).strip().splitlines()
        unknown["nvidia-smi"] = lines[0] if lines else f"exit {res.returncode}"


def probe_other(
    hw: Hardware, os_name: str, arch: str, macos_version: Optional[str]
) -> OtherAccelerators:
    amd = pci_devices(hw)[AMD_VENDOR] if os_name == "linux" else 0
    rocm_version = None
    rocm_path = None
    for base in ("/opt/rocm",):
        text = hw.read_text(f"{base}/.info/version")
        if text:
            rocm_version, rocm_path = text.strip().split("-")[0], base
            break
    kfd = bool(hw.listdir("/sys/class/kfd")) if os_name == "linux" else False
    mps = False
    if os_name == "darwin" and arch == "arm64":
        parts = (macos_version or "0").split(".")
        major, minor = int(parts[0] or 0), int(parts[1]) if len(parts) > 1 else 0
        mps = (major, minor) >= (12, 3)  # MPS backend needs macOS 12.3+
    return OtherAccelerators(
        amd_gpus=amd, rocm_version=rocm_version, rocm_path=rocm_path, kfd=kfd, mps=mps
    )
