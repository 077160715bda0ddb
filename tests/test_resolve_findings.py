"""Doctor's table-based findings about the installed torch."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

import envsetup.diagnose.table as table_findings_module
from conftest import make_venv, run_cli
from envsetup.compat import load_table
from envsetup.diagnose.table import table_findings
from envsetup.profile import Profile


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


# ---------------------------------------------------------------- the fix commands

TARGET = "/opt/my envs/gpu/bin/python"  # a path that needs quoting in a shell


def with_target(data: dict[str, Any], *companions: tuple[str, str]) -> dict[str, Any]:
    packages = [{"name": n, "version": v} for n, v in companions]
    torch = {**data["torch"], "packages": packages}
    return {**data, "python": {"executable": TARGET}, "torch": torch}


FIX_CASES = [
    (
        "torch-cuda-newer-than-driver",
        with_target(
            {
                "nvidia": gpu("525.60.13", "8.6"),
                "torch": {"version": "2.9.1+cu130", "cuda": "13.0"},
            },
            ("torchvision", "0.24.1"),
            ("torchaudio", "2.9.1"),
        ),
        "vision,audio",
    ),
    (
        "torch-missing-gpu-arch",
        with_target(
            {
                "nvidia": gpu("570.124.06", "12.0"),
                "torch": {"version": "2.5.1+cu124", "cuda": "12.4"},
            },
            ("torchvision", "0.20.1"),
        ),
        "vision",
    ),
    (
        "newer-torch-build-available",
        with_target(
            {
                "nvidia": gpu("570.124.06", "8.9"),
                "torch": {"version": "2.4.1+cu121", "cuda": "12.1"},
            }
        ),
        None,
    ),
    (
        "cpu-torch-on-gpu-machine",
        with_target(
            {"nvidia": gpu("570.124.06", "8.9"), "torch": {"version": "2.9.1+cpu"}},
            ("torchvision", "0.24.1"),
        ),
        "vision",
    ),
]


def fix_of(data: dict[str, Any], code: str) -> str:
    (f,) = [f for f in table_findings(Profile.from_dict(data), load_table()) if f.code == code]
    assert f.fix is not None, f
    return f.fix


@pytest.mark.parametrize(("code", "data", "with_"), FIX_CASES, ids=[c[0] for c in FIX_CASES])
def test_fix_targets_the_interpreter_and_keeps_companions(
    code: str, data: dict[str, Any], with_: str | None
) -> None:
    argv = shlex.split(fix_of(data, code))
    assert argv[:4] == ["envsetup", "install", "--python", TARGET]
    assert ("--with" in argv) == (with_ is not None)
    if with_ is not None:
        assert argv[argv.index("--with") + 1] == with_
    # a command only: every word is a flag or a flag's value, no prose
    flags = argv[2::2]
    assert all(f.startswith("--") for f in flags), argv


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("code", "data", "with_"), FIX_CASES, ids=[c[0] for c in FIX_CASES])
def test_fix_runs_as_written(
    tmp_path: Path, code: str, data: dict[str, Any], with_: str | None
) -> None:
    """The fix, pointed at a real venv, is accepted by the real CLI (--dry-run changes nothing)."""
    py = str(make_venv(tmp_path / "v", pip=False))
    data = {**data, "python": {"executable": py}}
    argv = shlex.split(fix_of(data, code))
    assert argv[:4] == ["envsetup", "install", "--python", py]
    r = run_cli(*argv[1:], "--dry-run", "--json", "--yes", timeout=120)
    assert r.returncode == 0, r
    plan = r.json()["plan"]
    assert plan["torch"] == argv[argv.index("--torch") + 1]
    assert plan["variant"] == argv[argv.index("--variant") + 1]
    names = {p["name"] for p in plan["pins"]}
    assert names == {"torch", *(("torch" + w) for w in (with_ or "").split(",") if w)}


def test_one_resolve_for_every_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = table_findings_module.resolve

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(table_findings_module, "resolve", counting)
    cpu = {"nvidia": gpu("570.124.06", "8.9"), "torch": {"version": "2.9.1+cpu"}}
    assert "cpu-torch-on-gpu-machine" in codes(cpu)
    assert len(calls) == 1
    calls.clear()
    old = {"nvidia": gpu("525.60.13", "8.6"), "torch": {"version": "2.9.1+cu130", "cuda": "13.0"}}
    found = table_findings(Profile.from_dict(old), load_table())
    assert len(calls) == 1
    # the error already gives the command: the newer-build note does not repeat it
    assert [f.code for f in found] == ["torch-cuda-newer-than-driver"]
