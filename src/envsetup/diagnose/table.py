"""The rules that need the compatibility table: the installed torch against this machine."""

from __future__ import annotations

from typing import Optional

from packaging.version import InvalidVersion, Version

from envsetup.compat import Build, Table
from envsetup.diagnose.fixes import install_fix
from envsetup.diagnose.rules import is_cpu_build, usable_nvidia
from envsetup.errors import EnvsetupError
from envsetup.findings import Finding
from envsetup.gpu_arch import has_kernels, sm
from envsetup.plan import Plan, Request
from envsetup.profile import Profile
from envsetup.resolve import _machine, platform_key, resolve


def _installed_build(profile: Profile, table: Table) -> Optional[Build]:
    """The table's record of the installed torch build, from its version's local part."""
    version = profile.torch.version
    if not version:
        return None
    found = table.release_of(version) if _valid(version) else None
    if found is None:
        return None
    _, rel = found
    try:
        plat = platform_key(profile)
    except EnvsetupError:
        return None
    local = version.split("+", 1)[1] if "+" in version else None
    if local and local in rel.variants and plat in rel.variants[local]:
        return rel.variants[local][plat]
    info = rel.platforms.get(plat)
    if info is not None and info.default is not None and info.default.local == local:
        return info.default
    return None


def _companions(profile: Profile) -> tuple[bool, bool]:
    """(torchvision, torchaudio) installed beside torch: the plan keeps them."""
    t = profile.torch
    return t.package("torchvision") is not None, t.package("torchaudio") is not None


def _install_fix(profile: Profile, plan: Plan) -> str:
    """The command that installs ``plan`` into the profile's interpreter, companions kept."""
    return install_fix(profile, torch=plan.torch, variant=plan.variant)


class _Best:
    """The resolver's pick for this machine (companions kept), computed at most once."""

    def __init__(self, profile: Profile, table: Table) -> None:
        self.profile, self.table = profile, table
        self._done = False
        self.plan: Optional[Plan] = None
        self.error: Optional[str] = None

    def get(self) -> Optional[Plan]:
        if not self._done:
            self._done = True
            vision, audio = _companions(self.profile)
            try:
                self.plan = resolve(self.profile, Request(vision=vision, audio=audio), self.table)
            except EnvsetupError as exc:
                self.error = exc.message
        return self.plan


def _cpu_torch_on_gpu(profile: Profile, best: _Best) -> Finding:
    """A CPU-only torch where an NVIDIA GPU is usable: the fix is the build that fits it."""
    gpu = next(g for g in profile.nvidia.gpus if g.visible)
    message = (
        f"torch {profile.torch.version} is a CPU-only build, but {gpu.name or 'an NVIDIA GPU'} "
        f"with driver {profile.nvidia.driver_version} is usable: torch will not use the GPU."
    )
    plan = best.get()
    if plan is None:
        return Finding(
            "error", "cpu-torch-on-gpu-machine", f"{message} No CUDA build fits: {best.error}"
        )
    return Finding(
        "error",
        "cpu-torch-on-gpu-machine",
        f"{message} torch {plan.torch} {plan.variant} runs on it.",
        _install_fix(profile, plan),
    )


def _valid(v: str) -> bool:
    try:
        Version(v)
    except InvalidVersion:
        return False
    return True


def table_findings(profile: Profile, table: Table) -> list[Finding]:
    """Findings about the installed torch that only the table can tell."""
    out: list[Finding] = []
    t = profile.torch
    try:
        m = _machine(profile)
    except EnvsetupError:
        return out
    best = _Best(profile, table)
    cuda = t.cuda
    build = _installed_build(profile, table)
    if cuda is None and build is not None:
        cuda = build.cuda
    if t.version and cuda and m.driver:
        floor = table.floor(cuda, m.driver_family)
        if floor is not None and Version(m.driver) < Version(floor[0]):
            plan = best.get()
            alt = (
                f" torch {plan.torch} {plan.variant} runs on this driver."
                if plan is not None
                else f" No build runs on this driver: {best.error}"
            )
            out.append(
                Finding(
                    "error",
                    "torch-cuda-newer-than-driver",
                    f"torch {t.version} is built for CUDA {cuda}, which needs a driver >= "
                    f'{floor[0]}; this driver is {m.driver} (CUDA errors: "driver version is '
                    f'insufficient"). Upgrade the NVIDIA driver to >= {floor[0]}, or install a '
                    f"build this driver supports.{alt}",
                    _install_fix(profile, plan) if plan is not None else None,
                )
            )
    arch: tuple[str, ...] = ()
    if t.deep is not None and t.deep.arch_list:
        arch = t.deep.arch_list  # what the installed torch says it was built for
    elif build is not None and build.arch:
        arch = build.arch
    if t.version and cuda and arch:
        for g in m.gpus:
            if g.compute_capability and not has_kernels(arch, g.compute_capability):
                shown = ", ".join(sm(a) for a in arch)
                plan = best.get()
                alt = (
                    f" torch {plan.torch} {plan.variant} has kernels for every visible GPU."
                    if plan is not None
                    else f" No build fits: {best.error}"
                )
                out.append(
                    Finding(
                        "error",
                        "torch-missing-gpu-arch",
                        f"torch {t.version} has no kernels for GPU {g.index}"
                        + (f" ({g.name})" if g.name else "")
                        + f', {sm(g.compute_capability)} (it has {shown}): "no kernel image is '
                        f'available for execution on the device".{alt}',
                        _install_fix(profile, plan) if plan is not None else None,
                    )
                )
    if is_cpu_build(profile) and usable_nvidia(profile):
        out.append(_cpu_torch_on_gpu(profile, best))
    if t.version and _valid(t.version):
        plan = best.get()
        if plan is None:
            return out
        have = Version(t.version)
        gpu_now = cuda is not None
        fix = _install_fix(profile, plan)
        said = any(f.fix == fix for f in out)  # an error above already gives this command
        if Version(plan.torch) > Version(have.public) and bool(plan.cuda) == gpu_now and not said:
            out.append(
                Finding(
                    "info",
                    "newer-torch-build-available",
                    f"torch {plan.torch} ({plan.variant}) fits this machine; torch {t.version} "
                    "is installed.",
                    fix,
                )
            )
    return out
