"""CUDA toolkits, cuDNN, and LD_LIBRARY_PATH entries that can shadow a torch wheel's libraries."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from envsetup import proc
from envsetup.profile import Cuda, Cudnn, LibraryShadow, Package, Toolkit

# Libraries a torch CUDA wheel bundles (or pulls in as nvidia-* wheels): a copy of these found
# first on LD_LIBRARY_PATH is loaded instead of the wheel's own, often a mismatched version.
SHADOWING = re.compile(
    r"^lib(cudart|cudnn[a-z_]*|cublas|cublasLt|cufft|curand|cusparse|cusolver|nccl|nvrtc|"
    r"nvJitLink|cupti)\.so(\.\d+)*$"
)


def parse_nvcc_version(text: str) -> Optional[str]:
    m = re.search(r"release \d+\.\d+, V(\d+\.\d+\.\d+)", text)
    if m:
        return m.group(1)
    m = re.search(r"release (\d+\.\d+)", text)
    return m.group(1) if m else None


def parse_version_json(text: str) -> Optional[str]:
    try:
        data = json.loads(text)
        return str(data["cuda"]["version"])
    except (ValueError, KeyError, TypeError):
        return None


def parse_version_txt(text: str) -> Optional[str]:
    m = re.search(r"CUDA Version (\d+\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else None


def parse_cudnn_header(text: str) -> Optional[str]:
    parts = []
    for name in ("CUDNN_MAJOR", "CUDNN_MINOR", "CUDNN_PATCHLEVEL"):
        m = re.search(rf"#define\s+{name}\s+(\d+)", text)
        if not m:
            return None
        parts.append(m.group(1))
    return ".".join(parts)


def toolkit_version(path: Path) -> Optional[str]:
    for name, parse in (("version.json", parse_version_json), ("version.txt", parse_version_txt)):
        try:
            v = parse((path / name).read_text(errors="replace"))
        except OSError:
            continue
        if v:
            return v
    nvcc = path / "bin" / ("nvcc.exe" if os.name == "nt" else "nvcc")
    if nvcc.exists():
        res = proc.run([str(nvcc), "--version"], timeout=10)
        if res.ok:
            return parse_nvcc_version(res.stdout)
    return None


def is_toolkit(path: Path) -> bool:
    """A CUDA toolkit has the runtime's header or library (a bare bin/ is not one)."""
    markers = ("include/cuda_runtime.h", "version.json", "version.txt", "lib64/libcudart.so",
               "lib/libcudart.so", "lib/x64/cudart.lib")  # fmt: skip
    return any((path / m).exists() for m in markers)


def _candidates(env: Mapping[str, str], nvcc: Optional[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if nvcc:
        out.append((str(Path(os.path.realpath(nvcc)).parent.parent), "nvcc-on-PATH"))
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(var):
            out.append((env[var], var))
    if os.name != "nt":
        for path in ["/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*")), "/opt/cuda"]:
            out.append((path, "default-location"))
    return out


def _cudnn_in(dirs: list[Path]) -> list[Cudnn]:
    found = []
    for d in dirs:
        for header in sorted(d.glob("cudnn_version*.h")):
            try:
                v = parse_cudnn_header(header.read_text(errors="replace"))
            except OSError:
                continue
            found.append(Cudnn(version=v, path=str(header), source="header"))
    return found


def _cudnn_libs(dirs: list[Path]) -> list[Cudnn]:
    found = []
    for d in dirs:
        for lib in sorted(d.glob("libcudnn.so.*")):
            m = re.match(r"libcudnn\.so\.(\d+(?:\.\d+)*)$", lib.name)
            if m and not lib.is_symlink():
                found.append(Cudnn(version=m.group(1), path=str(lib), source="library"))
    return found


def with_pip_cudnn(cuda: Cuda, target_packages: tuple[Package, ...]) -> Cuda:
    """Add the cuDNN that pip installed into the target (nvidia-cudnn-cu12, …)."""
    pip = tuple(
        Cudnn(version=p.version, path=p.location or "", source="pip")
        for p in target_packages
        if p.name.startswith("nvidia-cudnn")
    )
    return dataclasses.replace(cuda, cudnn=cuda.cudnn + pip) if pip else cuda


def probe_cuda(env: Mapping[str, str], wsl: Optional[str] = None) -> Cuda:
    nvcc = shutil.which("nvcc", path=env.get("PATH"))
    toolkits: list[Toolkit] = []
    seen: set[str] = set()
    for path, source in _candidates(env, nvcc):
        real = os.path.realpath(path)
        if real in seen or not os.path.isdir(real):
            continue
        seen.add(real)
        p = Path(path)
        if not is_toolkit(p):
            continue
        toolkits.append(Toolkit(path=path, version=toolkit_version(p), source=source))

    include_dirs = [Path(t.path) / "include" for t in toolkits]
    include_dirs += [Path("/usr/include"), *map(Path, glob.glob("/usr/include/*-linux-gnu"))]
    lib_dirs = [Path(t.path) / sub for t in toolkits for sub in ("lib64", "lib")]
    lib_dirs += [Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib/aarch64-linux-gnu")]
    cudnn = _cudnn_in(include_dirs) + _cudnn_libs(lib_dirs)

    shadows = []
    for entry in env.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if not entry or not os.path.isdir(entry):
            continue
        try:
            libs = sorted(n for n in os.listdir(entry) if SHADOWING.match(n))
        except OSError:
            continue
        if libs:
            shadows.append(LibraryShadow(directory=entry, libraries=tuple(libs)))

    nvcc_version = None
    if nvcc:
        res = proc.run([nvcc, "--version"], timeout=10)
        nvcc_version = parse_nvcc_version(res.stdout) if res.ok else None

    wsl_lib = None
    if wsl:
        wsl_lib = any(
            os.path.exists(f"/usr/lib/wsl/lib/{n}") for n in ("libcuda.so.1", "libcuda.so")
        )
    return Cuda(
        toolkits=tuple(toolkits),
        nvcc=nvcc,
        nvcc_version=nvcc_version,
        cuda_home=env.get("CUDA_HOME") or env.get("CUDA_PATH"),
        cudnn=tuple(cudnn),
        ld_library_path=tuple(shadows),
        wsl_lib=wsl_lib,
    )
