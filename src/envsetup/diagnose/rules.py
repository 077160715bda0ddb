"""Profile → Findings: every problem doctor can name, each with its exact fix.

Rules are small functions over the Profile; each returns the findings it sees. A finding's
``fix`` is a command that can be pasted as it is (or None where no single command mends it);
whatever needs saying around it belongs in the message. Rules that need the compatibility table
(a build too new for the driver, a CPU build where a CUDA build fits) live in table.py beside
these; every fix that is an envsetup command is written by fixes.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable, Optional

from packaging.version import InvalidVersion, Version

from envsetup.diagnose.fixes import _py, install_fix, plan_fix
from envsetup.findings import Finding
from envsetup.profile import Gpu, Profile

Rule = Callable[[Profile], list[Finding]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def _visible(p: Profile) -> list[Gpu]:
    return [g for g in p.nvidia.gpus if g.visible]


def usable_nvidia(p: Profile) -> bool:
    """A driver answers and at least one GPU is visible to CUDA."""
    return p.nvidia.driver_version is not None and bool(_visible(p))


def is_cuda_build(p: Profile) -> bool:
    return p.torch.cuda is not None


def is_cpu_build(p: Profile) -> bool:
    return p.torch.version is not None and p.torch.cuda is None and p.torch.hip is None


def installed_build(p: Profile) -> tuple[Optional[str], Optional[str]]:
    """(public version, variant) of the installed torch: "2.4.1+cu121" → ("2.4.1", "cu121");
    a version without a local part is the plain package-index build, variant "default"."""
    if p.torch.version is None:
        return None, None
    try:
        v = Version(p.torch.version)
    except InvalidVersion:
        return None, None
    return v.public, v.local or "default"


def driver_install(p: Profile) -> tuple[Optional[str], str]:
    """(command, what to know about it) that installs the NVIDIA driver on this system."""
    distro = (p.system.distro_id or "").lower()
    if p.system.container:
        return (
            "docker run --gpus all <image>",
            "in a container the driver belongs on the host: install it there, and start the "
            "container with the GPUs passed in (the NVIDIA Container Toolkit)",
        )
    if p.system.wsl:
        return (
            None,
            "install the NVIDIA driver on Windows, not inside WSL; WSL then exposes it in "
            "/usr/lib/wsl/lib",
        )
    if distro == "ubuntu":
        return "sudo ubuntu-drivers install && sudo reboot", "Ubuntu's driver tool picks the driver"
    if distro == "debian":
        return (
            "sudo apt install nvidia-driver firmware-misc-nonfree && sudo reboot",
            "Debian's driver needs the contrib and non-free components in the APT sources",
        )
    if distro == "fedora":
        return "sudo dnf install akmod-nvidia && sudo reboot", "from the RPM Fusion repository"
    return None, "install the NVIDIA driver for this distribution (NVIDIA's installation guide)"


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
                "after a driver upgrade without a reboot). Reboot to load the new module.",
                "sudo reboot",
            )
        )
    elif err is not None and err.kind == "no_permission":
        where = (
            "start the container with the GPUs passed in (docker run --gpus all, the NVIDIA "
            "Container Toolkit)"
            if p.system.container
            else "give this user read/write access to /dev/nvidia* (ls -l /dev/nvidia*)"
        )
        out.append(
            Finding(
                "error",
                "nvml-no-permission",
                f"NVML is not permitted to open the GPU devices ({err.message}): {where}.",
                None,
            )
        )
    elif nv.driver_version is None and nv.pci_devices > 0:
        if err is not None and err.kind == "driver_not_loaded":
            out.append(
                Finding(
                    "error",
                    "driver-not-loaded",
                    f"{nv.pci_devices} NVIDIA GPU(s) on the PCI bus and a driver installed, but "
                    "the NVIDIA kernel module is not loaded. If modprobe fails with 'Key was "
                    "rejected by service', Secure Boot blocks the module: enrol its key "
                    "(mokutil) or sign it.",
                    "sudo modprobe nvidia",
                )
            )
        else:
            fix, note = driver_install(p)
            out.append(
                Finding(
                    "error",
                    "no-driver",
                    f"{nv.pci_devices} NVIDIA GPU(s) on the PCI bus, but no NVIDIA driver "
                    f"answers: {note}.",
                    fix,
                )
            )
    elif err is not None and err.kind == "function_not_found" and nv.driver_version:
        fix, note = driver_install(p)
        out.append(
            Finding(
                "warning",
                "driver-too-old-for-nvml",
                f"driver {nv.driver_version} lacks an NVML function envsetup needs "
                f"({err.message}); upgrade it: {note}.",
                fix,
            )
        )
    elif err is not None and err.kind == "unknown" and nv.pci_devices > 0:
        out.append(
            Finding(
                "warning",
                "nvml-failed",
                f"NVML failed: {err.message}. 'nvidia-smi -q' shows the driver's own error.",
                None,
            )
        )
    for key, reason in sorted(nv.unknown.items()):
        if key.startswith("gpus[") and "function_not_found" in reason:
            fix, note = driver_install(p)
            out.append(
                Finding(
                    "warning",
                    "driver-too-old-for-nvml",
                    f"{key}: {reason}; envsetup cannot check this GPU's architecture. Upgrade "
                    f"the driver: {note}.",
                    fix,
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
            "exposed to Linux. Install or update the NVIDIA driver on Windows (a WSL-capable "
            "one), run 'wsl --shutdown' in Windows and reopen WSL; do not install a Linux NVIDIA "
            "driver inside WSL.",
            None,
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
                "GPU(s): torch will see none. Unset it, or set it to the GPU indices to use.",
                "unset CUDA_VISIBLE_DEVICES",
            )
        ]
    return []


@rule
def torch_build(p: Profile) -> list[Finding]:
    t = p.torch
    out: list[Finding] = []
    if t.version is None:
        return [
            Finding(
                "info",
                "torch-not-installed",
                f"torch is not installed in {p.python.executable}.",
                install_fix(p),
            )
        ]
    if is_cuda_build(p) and not p.nvidia.gpus and p.nvidia.pci_devices == 0:
        public, _ = installed_build(p)
        out.append(
            Finding(
                "info",
                "cuda-torch-without-gpu",
                f"torch {t.version} is a CUDA {t.cuda} build but this machine has no NVIDIA GPU; "
                "it runs on the CPU and carries several GB of CUDA libraries it cannot use.",
                install_fix(p, torch=public, variant="cpu"),
            )
        )
    if t.duplicates:
        where = ", ".join(t.duplicates)
        out.append(
            Finding(
                "error",
                "duplicate-torch",
                f"torch is installed more than once on this interpreter's path ({where}); "
                f"'import torch' takes the one in {t.location or t.duplicates[0]}, and pip may "
                f"upgrade the other. Uninstall until '{_py(p)} -m pip show torch' finds none, "
                "then install once with envsetup install.",
                f"{_py(p)} -m pip uninstall -y torch",
            )
        )
    return out


@rule
def broken_torch(p: Profile) -> list[Finding]:
    """torch is installed, but what it (or a companion) needs is not: it cannot be imported."""
    t = p.torch
    if t.version is None or not t.unmet:
        return []
    public, variant = installed_build(p)
    more = f"; and {len(t.unmet) - 3} more" if len(t.unmet) > 3 else ""
    return [
        Finding(
            "error",
            "torch-broken",
            f"torch {t.version} in {p.python.executable} cannot be imported: "
            f"{'; '.join(t.unmet[:3])}{more}. Installing the same build again repairs it "
            "(envsetup checks that torch imports before it calls it installed).",
            install_fix(p, torch=public, variant=variant if variant != "default" else None),
        )
    ]


@rule
def companion_builds(p: Profile) -> list[Finding]:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    t = p.torch
    public, variant = installed_build(p)
    if public is None or t.version is None:
        return []
    torch_v = Version(t.version)
    fix = install_fix(p, torch=public, variant=variant)
    out: list[Finding] = []
    for name in ("torchvision", "torchaudio"):
        pkg = t.package(name)
        if pkg is None:
            continue
        if pkg.requires_torch and pkg.requires_torch != "any":
            try:
                spec: Optional[SpecifierSet] = SpecifierSet(pkg.requires_torch.replace(" ", ""))
            except InvalidSpecifier:
                spec = None
            if spec is not None and not spec.contains(torch_v, prereleases=True):
                out.append(
                    Finding(
                        "error",
                        "companion-torch-mismatch",
                        f"{name} {pkg.version} was built for torch{pkg.requires_torch}, but torch "
                        f"{t.version} is installed: importing it fails or crashes. Reinstalling "
                        f"torch {public} with its companions brings the {name} built for it.",
                        fix,
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
                    fix,
                )
            )
    return out


@rule
def pythonpath_shadowing(p: Profile) -> list[Finding]:
    """A torch (or companion) on PYTHONPATH wins over the installed one in the user's shell."""
    import os

    shadows = p.python.pythonpath_shadows
    if not shadows:
        return []
    dirs = {str(Path(f).parent.parent if f.endswith("__init__.py") else Path(f).parent)
            for f in shadows.values()}  # fmt: skip
    keep = [e for e in p.python.pythonpath if str(Path(e).expanduser()) not in dirs]
    fix = f"export PYTHONPATH={shlex.quote(os.pathsep.join(keep))}" if keep else "unset PYTHONPATH"
    out = []
    for name, file in sorted(shadows.items()):
        pkg = p.torch.package(name)
        installed = (
            f"the installed {name} {pkg.version}" if pkg is not None
            else f"the installed {name} {p.torch.version} ({p.torch.location})"
            if name == "torch" and p.torch.version
            else f"no installed {name}"
        )  # fmt: skip
        out.append(
            Finding(
                "error",
                f"pythonpath-shadows-{name}",
                f"PYTHONPATH puts {file} first: 'import {name}' in this shell loads it instead of "
                f"{installed}, while envsetup doctor and verify check the installed one. Remove "
                "its directory from PYTHONPATH.",
                fix,
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
            "(e.g. 'undefined symbol' or a cuDNN version error). Remove "
            f"{', '.join(dirs)} from LD_LIBRARY_PATH in the shell that runs torch, or unset it.",
            "unset LD_LIBRARY_PATH",
        )
    ]


def compiler_install(p: Profile) -> tuple[Optional[str], str]:
    distro = (p.system.distro_id or "").lower()
    if p.system.os == "darwin":
        return "xcode-select --install", "the Xcode command line tools"
    if p.system.os == "windows":
        return None, "install the Visual Studio Build Tools ('Desktop development with C++')"
    if distro in ("ubuntu", "debian"):
        return "sudo apt install build-essential", "gcc and g++"
    if distro in ("fedora", "rhel", "rocky", "almalinux", "centos", "amzn"):
        return "sudo dnf install gcc gcc-c++", "gcc and g++"
    if distro == "alpine":
        return "apk add build-base", "gcc and g++"
    return None, "install gcc and g++ (or clang) from the distribution"


@rule
def compile_toolchain(p: Profile) -> list[Finding]:
    out: list[Finding] = []
    if p.torch.version is None:
        return out
    tc = p.toolchain
    missing = [k for k, c in (("C compiler", tc.cc), ("C++ compiler", tc.cxx)) if c is None]
    if missing:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(tc.unknown.items()))
        fix, what = compiler_install(p)
        out.append(
            Finding(
                "warning",
                "no-compiler-for-torch-compile",
                f"no working {' or '.join(missing)} ({why}): torch.compile cannot build its "
                f"kernels (inductor needs C++ on the CPU; Triton needs a C compiler on the GPU). "
                f"Install {what}.",
                fix,
            )
        )
    if (
        is_cuda_build(p)
        and p.system.os == "linux"
        and p.torch.package("triton") is None
        and p.torch.package("pytorch-triton") is None
    ):
        public, variant = installed_build(p)
        out.append(
            Finding(
                "warning",
                "no-triton",
                f"torch {p.torch.version} is a CUDA build but Triton is not installed: "
                "torch.compile cannot generate GPU kernels. Reinstalling torch brings the "
                "Triton it pins.",
                install_fix(p, torch=public, variant=variant),
            )
        )
    return out


# pytorch/pytorch#191010 (2026-07): Inductor's C++ builder quotes its -I include directories but
# not its -L library directories, so the link fails ("cannot find -ltorch") when torch or Python
# lies under a path with a space; reproduced there on torch 2.13.0, and here on 2.13.0+cpu.
COMPILE_PATH_SOURCE = "pytorch/pytorch#191010"


@rule
def compile_path_space(p: Profile) -> list[Finding]:
    """torch.compile on the CPU cannot link when torch's directory has whitespace in it."""
    where = p.torch.location
    if p.torch.version is None or not where or not any(c.isspace() for c in where):
        return []
    py = "Scripts\\python.exe" if p.system.os == "windows" else "bin/python"
    return [
        Finding(
            "warning",
            "torch-compile-path-space",
            f"torch lies under a path with a space ({where}): torch.compile's C++ backend "
            "(Inductor, on the CPU) passes its library directories to the linker unquoted, so "
            'it fails with "cannot find -ltorch" '
            f"({COMPILE_PATH_SOURCE}). Everything else works; for torch.compile, make the "
            "environment under a path without spaces (python3 -m venv ~/venvs/NAME) and install "
            f"there with envsetup install --python ~/venvs/NAME/{py}.",
            None,
        )
    ]


@rule
def pep668(p: Profile) -> list[Finding]:
    if not p.python.externally_managed:
        return []
    return [
        Finding(
            "warning",
            "externally-managed-python",
            f"{p.python.executable} is managed by the system's package manager (PEP 668): "
            "envsetup will not install torch into it; use a virtual environment (on Debian and "
            "Ubuntu, 'venv' needs the python3-venv package).",
            install_fix(p),
        )
    ]


@rule
def deep_checks(p: Profile) -> list[Finding]:
    d = p.torch.deep
    if d is None:
        return []
    out: list[Finding] = []
    if not d.imported:
        if p.torch.unmet:  # torch-broken says why, with the same fix
            return []
        public, variant = installed_build(p)
        return [
            Finding(
                "error",
                "torch-import-fails",
                f"'import torch' fails in {p.python.executable}: {d.error}. Installing the same "
                "build again repairs it.",
                install_fix(p, torch=public, variant=variant if variant != "default" else None),
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
                + ": usually a driver too old for this build. 'envsetup plan' shows the build "
                "this driver supports.",
                install_fix(p),
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
        rocm = ".".join((o.rocm_version or "").split(".")[:2])
        out.append(
            Finding(
                "info",
                "amd-gpu-without-rocm-torch",
                f"{o.amd_gpus} AMD GPU(s) present"
                + (f" (ROCm {o.rocm_version})" if o.rocm_version else "")
                + f" but torch {p.torch.version} is not a ROCm build; 'envsetup compat list' "
                "shows the ROCm builds.",
                plan_fix(p, variant=f"rocm{rocm}") if rocm else None,
            )
        )
    return out


@rule
def guarded_build(p: Profile) -> list[Finding]:
    """The torch build envsetup recorded in the environment is not the one there now."""
    g = p.guard
    if g is None or not g.packages:
        return []
    # the distributions' own versions: what the guard recorded (torch.__version__ may add a
    # local part the wheel's metadata does not have)
    have: dict[str, Optional[str]] = {}
    for n in ("torch", "torchvision", "torchaudio"):
        pkg = p.torch.package(n)
        have[n] = pkg.version if pkg else (p.torch.version if n == "torch" else None)
    changed = [
        f"{n} {have[n] or 'removed'} (recorded {want})"
        for n, want in g.packages.items()
        if n in have and have[n] != want
    ]
    if not changed:
        return []
    want = g.packages.get("torch", "")
    public = want.split("+", 1)[0] or None
    how = (
        "uv pip install and an install with PIP_CONSTRAINT set do not read pip's configuration"
        if g.active
        else "the guard's pip configuration no longer names its constraints"
    )
    return [
        Finding(
            "error",
            "torch-replaced",
            f"envsetup installed torch {want} here ({g.path}), but now: {', '.join(changed)}. "
            f"Something replaced the build ({how}). Reinstalling puts the recorded build back.",
            install_fix(p, torch=public, variant=g.variant if g.variant != "default" else None),
        )
    ]


@rule
def guard_pip_only(p: Profile) -> list[Finding]:
    """The guard stops pip; uv reads no configuration in an environment, so it is told apart."""
    g = p.guard
    if g is None or not g.active or g.uv_constraint is not False or not g.constraints:
        return []
    torch = g.packages.get("torch", "torch")
    windows = p.system.os == "windows"
    from envsetup.detect.guard import pip_token

    value = pip_token(g.constraints)  # one word: uv splits UV_CONSTRAINT on spaces, as pip does
    setting = (
        f"$env:UV_CONSTRAINT = '{value}'"
        if windows
        else f"export UV_CONSTRAINT={shlex.quote(value)}"
    )
    return [
        Finding(
            "info",
            "guard-pip-only",
            f"torch {torch} is guarded for pip only: pip refuses to replace it in this "
            "environment, but uv reads no configuration inside an environment, so a plain "
            "'uv pip install torch==VERSION' would replace it. To guard uv as well, set "
            "UV_CONSTRAINT to the guard's constraints file in the shell that runs uv (your "
            "shell's profile, or the project's .envrc).",
            setting,
        )
    ]


def toolkit_problems(torch_cuda: Optional[str], nvcc_version: Optional[str]) -> list[str]:
    """What is wrong with the CUDA toolkit for compiling extensions against the installed torch
    (doctor): no nvcc, or an nvcc of another CUDA major than torch's build."""
    if not torch_cuda:
        return []
    major = torch_cuda.split(".")[0]
    if not nvcc_version:
        return [f"no nvcc found: extensions for this torch need nvcc from CUDA {major}.x"]
    have = nvcc_version.split(".")[0]
    if have != major:
        return [
            f"nvcc is CUDA {nvcc_version} but torch is built with CUDA {torch_cuda}: "
            f"torch.utils.cpp_extension refuses a different CUDA major; install CUDA {major}.x "
            "and point CUDA_HOME at it"
        ]
    return []


@rule
def extension_toolkit(p: Profile) -> list[Finding]:
    """Extensions compiled against torch (flash-attn, ...) need nvcc of torch's CUDA major."""
    if p.torch.cuda is None:
        return []
    built = list(p.guard.builds) if p.guard is not None else []
    problems = toolkit_problems(p.torch.cuda, p.cuda.nvcc_version)
    if not problems or (p.cuda.nvcc_version is None and not built):
        return []  # no nvcc and nothing that needs one
    what = (
        f"{', '.join(built)} compile{'s' if len(built) == 1 else ''} against torch"
        if built
        else "packages that compile against torch (flash-attn, ...) will not build"
    )
    return [Finding("warning", "extension-toolkit-mismatch", f"{problems[0]}: {what}.", None)]
