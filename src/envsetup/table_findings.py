"""Doctor findings that need the compatibility table: the installed torch against this machine."""

from __future__ import annotations

from typing import Optional

from packaging.version import InvalidVersion, Version

from envsetup.compat import Build, Table
from envsetup.errors import EnvsetupError
from envsetup.findings import Finding
from envsetup.plan import Request
from envsetup.profile import Profile
from envsetup.resolve import _machine, has_kernels, platform_key, resolve, sm


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
    cuda = t.cuda
    build = _installed_build(profile, table)
    if cuda is None and build is not None:
        cuda = build.cuda
    if t.version and cuda and m.driver:
        floor = table.floor(cuda, m.driver_family)
        if floor is not None and Version(m.driver) < Version(floor[0]):
            out.append(
                Finding(
                    "error",
                    "torch-cuda-newer-than-driver",
                    f"torch {t.version} is built for CUDA {cuda}, which needs a driver >= "
                    f'{floor[0]}; this driver is {m.driver} (CUDA errors: "driver version is '
                    'insufficient").',
                    f"upgrade the NVIDIA driver to >= {floor[0]}, or run `envsetup install` for a "
                    "build this driver supports",
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
                out.append(
                    Finding(
                        "error",
                        "torch-missing-gpu-arch",
                        f"torch {t.version} has no kernels for GPU {g.index}"
                        + (f" ({g.name})" if g.name else "")
                        + f', {sm(g.compute_capability)} (it has {shown}): "no kernel image is '
                        'available for execution on the device".',
                        "run `envsetup plan` and `envsetup install` for a build with "
                        f"{sm(g.compute_capability)} kernels",
                    )
                )
    if t.version and _valid(t.version):
        try:
            plan = resolve(profile, Request(vision=False), table)
        except EnvsetupError:
            return out
        have = Version(t.version)
        gpu_now = cuda is not None
        if plan.cuda and not gpu_now and m.nvidia:
            out.append(
                Finding(
                    "warning",
                    "cuda-build-available",
                    f"torch {t.version} is a CPU build, but torch {plan.torch} {plan.variant} "
                    "runs on this machine's GPU.",
                    f"envsetup install --torch {plan.torch} --variant {plan.variant}",
                )
            )
        elif Version(plan.torch) > Version(have.public) and (bool(plan.cuda) == gpu_now):
            out.append(
                Finding(
                    "info",
                    "newer-torch-build-available",
                    f"torch {plan.torch} ({plan.variant}) fits this machine; torch {t.version} "
                    "is installed.",
                    f"envsetup install --torch {plan.torch} --variant {plan.variant}",
                )
            )
    return out
