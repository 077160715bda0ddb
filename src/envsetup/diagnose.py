"""Profile → Findings: every problem doctor can name, each with its exact fix.

Rules are small functions over the Profile; each returns the findings it sees. Table-based rules
(a build too new for the driver, a better build available) live with the compatibility table and
are added by :func:`diagnose` when the table loads.
"""

from __future__ import annotations

import shlex
from typing import Callable, Optional

from envsetup.findings import Finding, sort_findings
from envsetup.profile import Gpu, Profile

Rule = Callable[[Profile], list[Finding]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def _py(p: Profile) -> str:
    return shlex.quote(p.python.executable or "python3")


def _visible(p: Profile) -> list[Gpu]:
    return [g for g in p.nvidia.gpus if g.visible]


def usable_nvidia(p: Profile) -> bool:
    """A driver answers and at least one GPU is visible to CUDA."""
    return p.nvidia.driver_version is not None and bool(_visible(p))


def is_cuda_build(p: Profile) -> bool:
    return p.torch.cuda is not None


def is_cpu_build(p: Profile) -> bool:
    return p.torch.version is not None and p.torch.cuda is None and p.torch.hip is None


def driver_install_fix(p: Profile) -> str:
    distro = (p.system.distro_id or "").lower()
    if p.system.wsl:
        return (
            "install the NVIDIA driver on Windows (not inside WSL); WSL then exposes it "
            "in /usr/lib/wsl/lib"
        )
    if distro == "ubuntu":
        return "sudo ubuntu-drivers install && sudo reboot"
    if distro == "debian":
        return "sudo apt install nvidia-driver firmware-misc-nonfree && sudo reboot (needs the non-free components)"
    if distro in ("fedora",):
        return "sudo dnf install akmod-nvidia && sudo reboot (from RPM Fusion)"
    return "install the NVIDIA driver for your distribution (NVIDIA's driver installation guide), then reboot"


@rule
def driver_problems(p: Profile) -> list[Finding]:
    nv = p.nvidia
    err = nv.nvml_error
    out: list[Finding] = []
    if err is not None and err.kind == "lib_rm_version_mismatch":
        out.append(
            Finding(
                "error",
                "driver-library-mismatch",
                "NVML reports a driver/library version mismatch: the NVIDIA kernel module "
                "loaded now is not the version of the user-space driver libraries (usually "
                "after a driver upgrade without a reboot).",
                "sudo reboot",
            )
        )
    elif err is not None and err.kind == "no_permission":
        out.append(
            Finding(
                "error",
                "nvml-no-permission",
                f"NVML is not permitted to open the GPU devices ({err.message}).",
                "give this user access to /dev/nvidia* (e.g. the 'video' group); in a container, "
                "start it with the GPUs passed in (docker run --gpus all …)",
            )
        )
    elif nv.driver_version is None and nv.pci_devices > 0:
        loaded_elsewhere = err is not None and err.kind == "driver_not_loaded"
        out.append(
            Finding(
                "error",
                "driver-not-loaded" if loaded_elsewhere else "no-driver",
                (
                    f"{nv.pci_devices} NVIDIA GPU(s) on the PCI bus, but "
                    + (
                        "the NVIDIA kernel module is not loaded."
                        if loaded_elsewhere
                        else "no NVIDIA driver is installed."
                    )
                ),
                "sudo modprobe nvidia (if it fails with 'Key was rejected by service', "
                "Secure Boot blocks the module: enrol its key with mokutil or sign it)"
                if loaded_elsewhere
                else driver_install_fix(p),
            )
        )
    elif err is not None and err.kind == "function_not_found" and nv.driver_version:
        out.append(
            Finding(
                "warning",
                "driver-too-old-for-nvml",
                f"driver {nv.driver_version} lacks an NVML function envsetup needs ({err.message}).",
                driver_install_fix(p),
            )
        )
    elif err is not None and err.kind == "unknown" and nv.pci_devices > 0:
        out.append(
            Finding("warning", "nvml-failed", f"NVML failed: {err.message}.", "nvidia-smi -q")
        )
    for key, reason in sorted(nv.unknown.items()):
        if key.startswith("gpus[") and "function_not_found" in reason:
            out.append(
                Finding(
                    "warning",
                    "driver-too-old-for-nvml",
                    f"{key}: {reason}; envsetup cannot check this GPU's architecture.",
                    driver_install_fix(p),
                )
            )
            break
    return out


@rule
def wsl_problems(p: Profile) -> list[Finding]:
    if p.system.wsl != "wsl2" or p.cuda.wsl_lib is not False:
        return []
    return [
        Finding(
            "error",
            "wsl-no-driver-libs",
            "WSL 2 without /usr/lib/wsl/lib/libcuda.so.1: the Windows NVIDIA driver is not "
            "exposed to Linux.",
            "install or update the NVIDIA driver on Windows (a WSL-capable one), then run "
            "'wsl --shutdown' in Windows and reopen WSL; do not install a Linux NVIDIA driver "
            "inside WSL",
        )
    ]


@rule
def visibility(p: Profile) -> list[Finding]:
    nv = p.nvidia
    if nv.gpus and not _visible(p):
        return [
            Finding(
                "error",
                "cuda-visible-devices-hides-all",
                f"CUDA_VISIBLE_DEVICES={nv.cuda_visible_devices!r} hides all {len(nv.gpus)} "
                "GPU(s): torch will see none.",
                "unset CUDA_VISIBLE_DEVICES (or set it to the GPU indices to use, e.g. 0)",
            )
        ]
    return []


@rule
def torch_build(p: Profile) -> list[Finding]:
    t = p.torch
    out: list[Finding] = []
    if t.version is None:
        if not t.unknown.get("version", "").startswith("torch is not installed"):
            return []
        return [
            Finding(
                "info",
                "torch-not-installed",
                f"torch is not installed in {p.python.executable}.",
                f"envsetup install --python {_py(p)}",
            )
        ]
    if is_cuda_build(p) and not p.nvidia.gpus and p.nvidia.pci_devices == 0:
        out.append(
            Finding(
                "info",
                "cuda-torch-without-gpu",
                f"torch {t.version} is a CUDA {t.cuda} build but this machine has no NVIDIA GPU; "
                "it runs on the CPU and carries several GB of CUDA libraries it cannot use.",
                f"envsetup install --python {_py(p)} --variant cpu --yes",
            )
        )
    if t.duplicates:
        where = ", ".join(t.duplicates)
        out.append(
            Finding(
                "error",
                "duplicate-torch",
                f"torch is installed more than once on this interpreter's path ({where}); "
                f"'import torch' takes the one in {t.duplicates[0] if t.location is None else t.location}, "
                "and pip may upgrade the other.",
                f"{_py(p)} -m pip uninstall -y torch   (repeat until '{_py(p)} -m pip show torch' "
                "finds none), then envsetup install",
            )
        )
    return out


@rule
def companions(p: Profile) -> list[Finding]:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    t = p.torch
    if t.version is None:
        return []
    try:
        torch_v = Version(t.version)
    except InvalidVersion:
        return []
    out: list[Finding] = []
    for name in ("torchvision", "torchaudio"):
        pkg = t.package(name)
        if pkg is None:
            continue
        if pkg.requires_torch and pkg.requires_torch != "any":
            try:
                spec = SpecifierSet(pkg.requires_torch.replace(" ", ""))
            except InvalidSpecifier:
                spec = None
            if spec is not None and not spec.contains(torch_v, prereleases=True):
                out.append(
                    Finding(
                        "error",
                        "companion-torch-mismatch",
                        f"{name} {pkg.version} was built for torch{pkg.requires_torch}, but torch "
                        f"{t.version} is installed: importing it fails or crashes.",
                        f"envsetup install --python {_py(p)} --torch {torch_v.public} --yes  "
                        f"(installs the {name} built for this torch)",
                    )
                )
                continue
        try:
            comp_local = Version(pkg.version).local
        except InvalidVersion:
            continue
        if comp_local and torch_v.local and comp_local != torch_v.local:
            out.append(
                Finding(
                    "warning",
                    "companion-variant-mismatch",
                    f"{name} {pkg.version} is the {comp_local} build but torch {t.version} is "
                    f"the {torch_v.local} build.",
                    f"envsetup install --python {_py(p)} --torch {torch_v.public} --yes",
                )
            )
    return out


@rule
def library_shadowing(p: Profile) -> list[Finding]:
    if not p.cuda.ld_library_path or p.torch.version is None or p.torch.cuda is None:
        return []
    dirs = [s.directory for s in p.cuda.ld_library_path]
    libs = sorted({lib for s in p.cuda.ld_library_path for lib in s.libraries})
    return [
        Finding(
            "warning",
            "ld-library-path-shadows-torch",
            f"LD_LIBRARY_PATH holds CUDA libraries ({', '.join(libs[:4])}"
            f"{'…' if len(libs) > 4 else ''} in {', '.join(dirs)}); they load before the ones "
            f"torch {p.torch.version} bundles and can break it with a version mismatch "
            "(e.g. 'undefined symbol' or a cuDNN version error).",
            "remove " + ", ".join(dirs) + " from LD_LIBRARY_PATH (or unset LD_LIBRARY_PATH) "
            "in the shell that runs torch",
        )
    ]


def compiler_fix(p: Profile) -> str:
    distro = (p.system.distro_id or "").lower()
    if p.system.os == "darwin":
        return "xcode-select --install"
    if p.system.os == "windows":
        return "install the Visual Studio Build Tools (MSVC, 'Desktop development with C++')"
    if distro in ("ubuntu", "debian"):
        return "sudo apt install build-essential"
    if distro in ("fedora", "rhel", "rocky", "almalinux", "centos", "amzn"):
        return "sudo dnf install gcc gcc-c++"
    if distro == "alpine":
        return "apk add build-base"
    return "install gcc and g++ (or clang) from your distribution"


@rule
def compile_toolchain(p: Profile) -> list[Finding]:
    out: list[Finding] = []
    if p.torch.version is None:
        return out
    tc = p.toolchain
    missing = [k for k, c in (("C compiler", tc.cc), ("C++ compiler", tc.cxx)) if c is None]
    if missing:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(tc.unknown.items()))
        out.append(
            Finding(
                "warning",
                "no-compiler-for-torch-compile",
                f"no working {' or '.join(missing)} ({why}): torch.compile cannot build its "
                "kernels (inductor needs C++ on the CPU; Triton needs a C compiler on the GPU).",
                compiler_fix(p),
            )
        )
    if (
        is_cuda_build(p)
        and p.system.os == "linux"
        and p.torch.package("triton") is None
        and p.torch.package("pytorch-triton") is None
    ):
        from packaging.version import Version

        public = Version(p.torch.version).public
        out.append(
            Finding(
                "warning",
                "no-triton",
                f"torch {p.torch.version} is a CUDA build but Triton is not installed: "
                "torch.compile cannot generate GPU kernels.",
                f"envsetup install --python {_py(p)} --torch {public} --yes  (reinstalls torch "
                "with the Triton it pins)",
            )
        )
    return out


@rule
def pep668(p: Profile) -> list[Finding]:
    if not p.python.externally_managed:
        return []
    return [
        Finding(
            "warning",
            "externally-managed-python",
            f"{p.python.executable} is managed by the system's package manager (PEP 668): "
            "envsetup will not install torch into it.",
            "python3 -m venv ~/.venvs/torch && envsetup install --python ~/.venvs/torch/bin/python",
        )
    ]


@rule
def deep_checks(p: Profile) -> list[Finding]:
    d = p.torch.deep
    if d is None:
        return []
    out: list[Finding] = []
    if not d.imported:
        return [
            Finding(
                "error",
                "torch-import-fails",
                f"'import torch' fails in {p.python.executable}: {d.error}.",
                f"envsetup install --python {_py(p)} --yes",
            )
        ]
    if is_cuda_build(p) and usable_nvidia(p) and d.cuda_available is False:
        out.append(
            Finding(
                "error",
                "cuda-not-available",
                f"torch {d.version} is a CUDA {p.torch.cuda} build and a GPU is present, "
                "but torch.cuda.is_available() is False"
                + (f" ({d.error})" if d.error else "")
                + ": usually a driver too old for this build.",
                "envsetup plan  (shows the build this driver supports), then envsetup install",
            )
        )
    return out


@rule
def nothing_to_accelerate(p: Profile) -> list[Finding]:
    if p.nvidia.gpus or p.nvidia.pci_devices or p.other.amd_gpus or p.other.mps:
        return []
    return [
        Finding(
            "info",
            "no-gpu",
            "no NVIDIA, AMD or Apple GPU found: torch will run on the CPU.",
            None,
        )
    ]


@rule
def amd_or_apple(p: Profile) -> list[Finding]:
    out: list[Finding] = []
    o = p.other
    if o.amd_gpus and p.torch.version and p.torch.hip is None:
        out.append(
            Finding(
                "info",
                "amd-gpu-without-rocm-torch",
                f"{o.amd_gpus} AMD GPU(s) present"
                + (f" (ROCm {o.rocm_version})" if o.rocm_version else "")
                + f" but torch {p.torch.version} is not a ROCm build.",
                "envsetup plan --variant rocm<version>  (see envsetup compat list)",
            )
        )
    return out


def diagnose(profile: Profile, extra: Optional[list[Rule]] = None) -> list[Finding]:
    findings: list[Finding] = []
    for r in [*RULES, *(extra or [])]:
        findings.extend(r(profile))
    return sort_findings(findings)
