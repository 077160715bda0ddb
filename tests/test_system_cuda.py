"""System, CPU, CUDA toolkit/cuDNN and toolchain probes: recorded files and this machine, for real."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from envsetup.detect.cpu import parse_proc_cpuinfo, probe_cpu
from envsetup.detect.cuda import (
    parse_cudnn_header,
    parse_nvcc_version,
    parse_version_json,
    probe_cuda,
)
from envsetup.detect.system import (
    detect_container,
    detect_wsl,
    normalise_arch,
    parse_os_release,
    probe_system,
)
from envsetup.detect.toolchain import probe_toolchain
from machines import recorded


@pytest.mark.parametrize(
    ("fixture", "distro", "version"),
    [
        ("os-release-ubuntu-22.04", "ubuntu", "22.04"),
        ("os-release-ubuntu-24.04", "ubuntu", "24.04"),
        ("os-release-debian-12", "debian", "12"),
        ("os-release-rocky-9.5", "rocky", "9.5"),
        ("os-release-alpine-3.19.8", "alpine", "3.19.8"),
    ],
)
def test_os_release(fixture: str, distro: str, version: str) -> None:
    info = parse_os_release(recorded(fixture))
    assert (info["ID"], info["VERSION_ID"]) == (distro, version)
    assert '"' not in info["PRETTY_NAME"]


@pytest.mark.parametrize(
    ("fixture", "wsl"),
    [
        ("proc-version-wsl2.txt", "wsl2"),
        ("proc-version-wsl2-4.19-microsoft-standard.txt", "wsl2"),
        ("proc-version-wsl1.txt", "wsl1"),
        ("proc-version-wsl1-3.4.0.txt", "wsl1"),
        ("proc-version-ubuntu-24.04.txt", None),
        ("proc-version-rhel-9.4-coreos.txt", None),
    ],
)
def test_wsl(fixture: str, wsl: str | None) -> None:
    assert detect_wsl(recorded(fixture), {}) == wsl


def test_probe_system_on_a_recorded_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(recorded("os-release-ubuntu-22.04"))
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/version").write_text(recorded("proc-version-wsl2.txt"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run/.containerenv").write_text("")
    s = probe_system(tmp_path, {})
    assert (s.distro_id, s.distro_version, s.wsl, s.container) == (
        "ubuntu",
        "22.04",
        "wsl2",
        "podman",
    )


def test_container_markers(tmp_path: Path) -> None:
    assert detect_container(tmp_path, {}) is None
    assert detect_container(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == "kubernetes"
    (tmp_path / ".dockerenv").write_text("")
    assert detect_container(tmp_path, {}) == "docker"


@pytest.mark.parametrize(
    ("machine", "os_name", "arch"),
    [("AMD64", "windows", "x86_64"), ("arm64", "darwin", "arm64"), ("arm64", "linux", "aarch64"),
     ("aarch64", "linux", "aarch64"), ("x86_64", "linux", "x86_64")],
)  # fmt: skip
def test_arch(machine: str, os_name: str, arch: str) -> None:
    assert normalise_arch(machine, os_name) == arch


def test_this_machine_cpu_from_proc() -> None:
    if not Path("/proc/cpuinfo").exists():
        pytest.skip("no /proc/cpuinfo here")
    cpu = probe_cpu()
    assert cpu.source == "/proc/cpuinfo"
    assert cpu.logical_cores == os.cpu_count()
    text = Path("/proc/cpuinfo").read_text()
    assert ("avx2" in cpu.flags) == (" avx2 " in text.replace("\n", " "))


def test_cpuinfo_aarch64_features() -> None:
    text = (
        "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve sve2 bf16\nCPU implementer\t: 0x41\n"
    )
    info = parse_proc_cpuinfo(text)
    assert info["vendor"] == "ARM" and {"asimd", "sve", "sve2", "bf16"} <= set(info["flags"])


@pytest.mark.parametrize(
    ("fixture", "version"),
    [("nvcc-version-13.0.txt", "13.0.88"), ("nvcc-version-10.2.89.txt", "10.2.89"),
     ("nvcc-version-10.1.243.txt", "10.1.243")],
)  # fmt: skip
def test_nvcc_version(fixture: str, version: str) -> None:
    assert parse_nvcc_version(recorded(fixture)) == version


def test_version_json() -> None:
    assert parse_version_json(recorded("cuda-version-12.8.2.json")) == "12.8.2"
    assert parse_version_json("{") is None


@pytest.mark.parametrize(
    ("fixture", "version"), [("cudnn_version-8.2.1.h", "8.2.1"), ("cudnn_version-9.6.0.h", "9.6.0")]
)
def test_cudnn_header(fixture: str, version: str) -> None:
    assert parse_cudnn_header(recorded(fixture)) == version


def test_toolkit_and_cudnn_found_under_cuda_home(tmp_path: Path) -> None:
    home = tmp_path / "cuda-12.8"
    (home / "include").mkdir(parents=True)
    (home / "version.json").write_text(recorded("cuda-version-12.8.2.json"))
    (home / "include/cudnn_version.h").write_text(recorded("cudnn_version-9.6.0.h"))
    cuda = probe_cuda({"CUDA_HOME": str(home), "PATH": ""})
    mine = [t for t in cuda.toolkits if t.path == str(home)]
    assert mine and mine[0].version == "12.8.2" and mine[0].source == "CUDA_HOME"
    assert any(c.version == "9.6.0" and c.source == "header" for c in cuda.cudnn)


@pytest.mark.skipif(not shutil.which("nvcc"), reason="no CUDA toolkit on this machine")
def test_real_toolkit_on_this_machine() -> None:
    from envsetup import proc

    cuda = probe_cuda(dict(os.environ))
    expected = parse_nvcc_version(proc.run(["nvcc", "--version"]).stdout)
    assert cuda.nvcc_version == expected
    assert any(t.version == expected for t in cuda.toolkits), cuda.toolkits
    assert all(
        Path(t.path, "bin").is_dir() or Path(t.path, "include").is_dir() for t in cuda.toolkits
    )


def test_ld_library_path_shadowing(tmp_path: Path) -> None:
    libdir = tmp_path / "cudnn-8" / "lib"
    libdir.mkdir(parents=True)
    for name in ("libcudnn.so.8", "libcudart.so.12", "libfoo.so", "libcudnn_ops_infer.so.8"):
        (libdir / name).write_bytes(b"\x7fELF")
    cuda = probe_cuda({"LD_LIBRARY_PATH": f"/nonexistent:{libdir}", "PATH": ""})
    assert len(cuda.ld_library_path) == 1
    shadow = cuda.ld_library_path[0]
    assert shadow.directory == str(libdir)
    assert set(shadow.libraries) == {"libcudnn.so.8", "libcudart.so.12", "libcudnn_ops_infer.so.8"}


def test_toolchain_real_and_missing() -> None:
    real = probe_toolchain(dict(os.environ))
    if shutil.which("cc"):
        assert real.cc is not None and real.cc.version
    broken = probe_toolchain(
        {"PATH": os.environ["PATH"], "CC": "/nonexistent/cc", "CXX": "/nonexistent/c++"}
    )
    assert broken.cc is None and broken.cxx is None
    assert "/nonexistent/cc" in broken.unknown["cc"]
    empty = probe_toolchain({"PATH": ""})
    assert empty.cc is None and "on PATH" in empty.unknown["cc"]
