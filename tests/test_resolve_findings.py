"""Doctor's table-based findings about the installed torch."""

from __future__ import annotations

from typing import Any

from envsetup.compat import load_table
from envsetup.profile import Profile
from envsetup.table_findings import table_findings


def codes(data: dict[str, Any]) -> set[str]:
    return {f.code for f in table_findings(Profile.from_dict(data), load_table())}


def gpu(driver: str, cc: str) -> dict[str, Any]:
    return {"driver_version": driver, "gpus": [{"index": 0, "compute_capability": cc}]}


def test_cuda_newer_than_driver() -> None:
    data = {"nvidia": gpu("525.60.13", "8.6"), "torch": {"version": "2.13.0+cu130", "cuda": "13.0"}}
    assert "torch-cuda-newer-than-driver" in codes(data)
    data["nvidia"] = gpu("580.65.06", "8.6")
    assert "torch-cuda-newer-than-driver" not in codes(data)


def test_blackwell_on_cu124_build() -> None:
    data = {
        "nvidia": gpu("570.124.06", "12.0"),
        "torch": {"version": "2.5.1+cu124", "cuda": "12.4"},
    }
    assert "torch-missing-gpu-arch" in codes(data)


def test_measured_arch_list_wins() -> None:
    deep = {"imported": True, "arch_list": ["sm_80", "sm_90"]}
    data = {
        "nvidia": gpu("580.65.06", "8.6"),
        "torch": {"version": "2.14.1+cu130", "cuda": "13.0", "deep": deep},
    }
    assert "torch-missing-gpu-arch" not in codes(data)  # sm_80 kernels run on 8.6
    data["nvidia"] = gpu("580.65.06", "7.5")
    assert "torch-missing-gpu-arch" in codes(data)


def test_cpu_build_on_gpu_machine_and_newer_release() -> None:
    cpu = {"nvidia": gpu("570.124.06", "8.9"), "torch": {"version": "2.9.1+cpu"}}
    assert "cpu-torch-on-gpu-machine" in codes(cpu)
    too_old = {"nvidia": gpu("450.51.06", "8.9"), "torch": {"version": "2.9.1+cpu"}}
    assert "cpu-torch-on-gpu-machine" in codes(too_old)  # still wrong, but no build fixes it
    old = {"nvidia": gpu("570.124.06", "8.9"), "torch": {"version": "2.4.1+cu121", "cuda": "12.1"}}
    assert codes(old) == {"newer-torch-build-available"}
    assert codes({"nvidia": gpu("570.124.06", "8.9")}) == set()  # no torch installed
