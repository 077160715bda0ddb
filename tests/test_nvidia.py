"""The NVIDIA probe against recorded real outputs, through the one hardware boundary."""

from __future__ import annotations

import pynvml
import pytest

from envsetup.detect.hw import Replay
from envsetup.detect.nvidia import (
    classify_nvml_error,
    cuda_version_from_int,
    parse_proc_driver_version,
    parse_smi_error,
    parse_smi_query,
    parse_smi_table,
    probe_nvidia,
    probe_other,
)
from machines import cpu_only, h100x8, nvml_error, pci, recorded, titanv_ada


@pytest.mark.parametrize(
    ("fixture", "version", "kind"),
    [
        ("proc-version-proprietary-384.98.txt", "384.98", "proprietary"),
        ("proc-version-proprietary-580.173.02.txt", "580.173.02", "proprietary"),
        ("proc-version-open-565.57.01.txt", "565.57.01", "open"),
        ("proc-version-open-525.60.11.txt", "525.60.11", "open"),
        ("proc-version-open-aarch64-35.3.1.txt", "35.3.1", "open"),
    ],
)
def test_proc_driver_version(fixture: str, version: str, kind: str) -> None:
    assert parse_proc_driver_version(recorded(fixture)) == (version, kind)


@pytest.mark.parametrize(
    ("fixture", "driver", "cuda", "names"),
    [
        ("nvidia-smi-580.95.05-single-rtx2000ada-laptop.txt", "580.95.05", "13.0", 1),
        ("nvidia-smi-470.63.01-single-geforce-laptop.txt", "470.63.01", "11.4", 1),
        ("nvidia-smi-440.100-single-rtx2070-laptop.txt", "440.100", "10.2", 1),
        ("nvidia-smi-565.57.01-8x-h100-sxm.txt", "565.57.01", "12.7", 8),
        ("nvidia-smi-560.35.03-2x-rtx3090.txt", "560.35.03", "12.6", 2),
        # WSL: the header's driver is the Windows driver, not the Linux nvidia-smi's version
        ("nvidia-smi-wsl2-555.52.01-win-555.99-rtx4070.txt", "555.99", "12.5", 1),
        ("nvidia-smi-wsl2-570.86.16-win-572.16-rtx4060-laptop.txt", "572.16", "12.8", 1),
        ("nvidia-smi-wsl2-545.46-win-546.80-cuda-err.txt", "546.80", None, 1),
    ],
)
def test_smi_table(fixture: str, driver: str, cuda: str | None, names: int) -> None:
    table = parse_smi_table(recorded(fixture))
    assert table["driver_version"] == driver
    assert table["cuda_driver_version"] == cuda
    assert len(table["gpus"]) == names
    assert [g.index for g in table["gpus"]] == list(range(names))
    assert all(g.pci_bus_id and g.memory_total_mib for g in table["gpus"])


def test_smi_wsl_versions_differ() -> None:
    table = parse_smi_table(recorded("nvidia-smi-wsl2-555.52.01-win-555.99-rtx4070.txt"))
    assert table["smi_version"] == "555.52.01" != table["driver_version"]


def test_smi_query_with_header_and_two_architectures() -> None:
    rows = parse_smi_query(
        recorded("nvidia-smi-query-compute-cap-mode-driver-name-index-titanv-rtx5880ada.csv"),
        "compute_cap,compute_mode,driver_version,name,index",
    )
    assert [(r["name"], r["compute_cap"]) for r in rows] == [
        ("NVIDIA TITAN V", "7.0"),
        ("NVIDIA RTX 5880 Ada Generation", "8.9"),
    ]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (0, "lib_rm_version_mismatch"),
        (3, "driver_not_loaded"),
        (4, "driver_not_loaded"),
        (5, None),  # "Failed to initialize NVML: Unknown Error": not classifiable
    ],
)
def test_smi_error_text(line: int, kind: str | None) -> None:
    text = recorded("nvml-errors.txt").splitlines()[line]
    err = parse_smi_error(text)
    assert (err.kind if err else None) == kind


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "library_not_found"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver_not_loaded"),
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "lib_rm_version_mismatch"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "no_permission"),
        (pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, "function_not_found"),
        (pynvml.NVML_ERROR_UNKNOWN, "unknown"),
        (pynvml.NVML_ERROR_GPU_IS_LOST, "unknown"),
    ],
)
def test_every_nvml_init_failure_is_classified(code: int, kind: str) -> None:
    nv = probe_nvidia(Replay(nvml_error(code)), {})  # type: ignore[arg-type]
    assert nv.nvml_error is not None and nv.nvml_error.kind == kind
    assert nv.driver_version is None and nv.gpus == ()
    assert nv.pci_devices == 1
    assert "driver_version" in nv.unknown


def test_classify_a_non_nvml_exception() -> None:
    assert classify_nvml_error(OSError("libnvidia-ml.so.1: cannot open")).kind == "unknown"


def test_cuda_version_int() -> None:
    assert cuda_version_from_int(12080) == "12.8"
    assert cuda_version_from_int(13000) == "13.0"
    assert cuda_version_from_int(11040) == "11.4"


def test_nvml_eight_gpus() -> None:
    nv = probe_nvidia(Replay(h100x8()), {})
    assert nv.source == "nvml" and nv.driver_version == "565.57.01"
    assert nv.cuda_driver_version == "12.7"
    assert nv.kernel_module == "open"
    assert len(nv.gpus) == 8 and nv.pci_devices == 8
    assert {g.compute_capability for g in nv.gpus} == {"9.0"}
    assert nv.gpus[0].memory_total_mib == 81559
    assert nv.gpus[0].mig_mode is False and nv.gpus[0].persistence_mode is True
    assert all(g.visible for g in nv.gpus)


def test_mig_not_supported_is_none_not_an_error() -> None:
    nv = probe_nvidia(Replay(titanv_ada()), {})
    assert [g.compute_capability for g in nv.gpus] == ["7.0", "8.9"]
    assert all(g.mig_mode is None for g in nv.gpus)
    assert nv.unknown == {}


def test_function_missing_on_old_driver_is_reported_per_field() -> None:
    nv = probe_nvidia(Replay(titanv_ada(["nvmlDeviceGetCudaComputeCapability"])), {})
    assert nv.driver_version == "570.86.15"
    assert all(g.compute_capability is None for g in nv.gpus)
    assert "function_not_found" in nv.unknown["gpus[0].compute_capability"]


@pytest.mark.parametrize(
    ("value", "visible"),
    [
        (None, [True, True]),
        ("1", [False, True]),
        ("0,1", [True, True]),
        ("", [False, False]),
        ("-1", [False, False]),
        ("GPU-00000001", [False, True]),  # a UUID prefix
        ("0,7,1", [True, False]),  # CUDA stops at the first invalid entry
        ("NoDevFiles", [False, False]),
    ],
)
def test_cuda_visible_devices(value: str | None, visible: list[bool]) -> None:
    env = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    nv = probe_nvidia(Replay(titanv_ada()), env)
    assert [g.visible for g in nv.gpus] == visible
    assert nv.cuda_visible_devices == value


def test_proc_fallback_when_nvml_missing() -> None:
    rec = nvml_error(
        "NVML_ERROR_LIBRARY_NOT_FOUND",
        **{"/proc/driver/nvidia/version": recorded("proc-version-proprietary-580.173.02.txt")},
    )
    nv = probe_nvidia(Replay(rec), {})
    assert (nv.driver_version, nv.source, nv.kernel_module) == ("580.173.02", "proc", "proprietary")
    assert nv.nvml_error is not None and nv.nvml_error.kind == "library_not_found"


def test_sysfs_fallback() -> None:
    rec = nvml_error("NVML_ERROR_UNKNOWN", **{"/sys/module/nvidia/version": "550.54.14\n"})
    nv = probe_nvidia(Replay(rec), {})
    assert (nv.driver_version, nv.source) == ("550.54.14", "sysfs")


def test_nvidia_smi_fallback_gives_gpus_and_cuda() -> None:
    from envsetup.detect.nvidia import SMI_QUERY

    rec = nvml_error("NVML_ERROR_UNKNOWN")
    rec["commands"] = {
        f"nvidia-smi --query-gpu={SMI_QUERY} --format=csv,noheader,nounits": {
            "stdout": "0, NVIDIA GeForce RTX 4070, GPU-1234, 00000000:01:00.0, 12282, 555.99, 8.9\n"
        },
        "nvidia-smi": {"stdout": recorded("nvidia-smi-wsl2-555.52.01-win-555.99-rtx4070.txt")},
    }
    nv = probe_nvidia(Replay(rec), {})
    assert nv.source == "nvidia-smi" and nv.driver_version == "555.99"
    assert nv.cuda_driver_version == "12.5"
    assert [(g.name, g.compute_capability) for g in nv.gpus] == [("NVIDIA GeForce RTX 4070", "8.9")]


def test_nvidia_smi_names_the_mismatch_when_our_nvml_could_not_load() -> None:
    rec = {"files": pci([("0x10de", "0x030200")])}  # no NVML recording: library not found
    rec["commands"] = {
        "nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,memory.total,driver_version,compute_cap "
        "--format=csv,noheader,nounits": {
            "returncode": 18,
            "stdout": "\n".join(recorded("nvml-errors.txt").splitlines()[0:2]),
        }
    }
    nv = probe_nvidia(Replay(rec), {})
    assert nv.nvml_error is not None
    # nvidia-smi's own NVML said exactly what is wrong: that beats "library not found"
    assert nv.nvml_error.kind == "lib_rm_version_mismatch"


def test_no_nvidia_at_all() -> None:
    nv = probe_nvidia(Replay(cpu_only()), {})
    assert nv.pci_devices == 0 and nv.gpus == () and nv.driver_version is None


def test_amd_and_apple_presence() -> None:
    rec = {
        "files": {
            **pci([("0x1002", "0x030000"), ("0x1002", "0x038000")]),
            "/opt/rocm/.info/version": "6.2.4-120\n",
            "/sys/class/kfd/kfd": "",
        }
    }
    other = probe_other(Replay(rec), "linux", "x86_64", None)
    assert (other.amd_gpus, other.rocm_version, other.kfd) == (2, "6.2.4", True)
    assert probe_other(Replay({}), "darwin", "arm64", "14.5").mps is True
    assert probe_other(Replay({}), "darwin", "arm64", "12.2").mps is False
    assert probe_other(Replay({}), "darwin", "x86_64", "14.5").mps is False


def test_a_gpu_nvml_cannot_open_does_not_hide_the_others() -> None:
    from envsetup.detect.nvidia import SMI_QUERY

    rec = titanv_ada()
    rec["nvml"]["devices"][0] = {}  # every query of GPU 0 fails (e.g. outside this job's cgroup)
    nv = probe_nvidia(Replay(rec), {})
    assert nv.driver_version == "570.86.15"
    assert [g.name for g in nv.gpus] == [None, "NVIDIA RTX 5880 Ada Generation"]
    assert any(k.startswith("gpus[0].") for k in nv.unknown)

    rec = titanv_ada(missing=["nvmlDeviceGetHandleByIndex"])  # NVML lists no GPU at all
    rec["commands"] = {
        f"nvidia-smi --query-gpu={SMI_QUERY} --format=csv,noheader,nounits": {
            "stdout": "0, NVIDIA TITAN V, GPU-0, 00000000:01:00.0, 12288, 570.86.15, 7.0\n"
        }
    }
    nv = probe_nvidia(Replay(rec), {})
    assert [(g.name, g.compute_capability) for g in nv.gpus] == [("NVIDIA TITAN V", "7.0")]


def test_the_real_boundary_on_a_machine_without_a_driver() -> None:
    import ctypes

    from envsetup.detect.hw import Real

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        pass
    else:
        pytest.skip("this machine has an NVIDIA driver")
    nv = probe_nvidia(Real(), {})
    assert nv.nvml_error is not None and nv.nvml_error.kind == "library_not_found"
    assert "libnvidia-ml.so.1" in nv.nvml_error.message and nv.gpus == ()
