"""Detection: every probe returns its part of the Profile and never raises.

The probes that wait on other programs (the target interpreter, nvcc, the compilers, NVML)
run in threads side by side, so doctor costs about as much as its slowest probe.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

from envsetup import __version__
from envsetup.detect import hw as hwmod
from envsetup.profile import Cpu, Cuda, Nvidia, OtherAccelerators, Profile, System, Toolchain

T = TypeVar("T")


def _safe(fn: Callable[[], T], fallback: Callable[[str], T]) -> Callable[[], T]:
    """A probe that raises is a bug; it must still not take doctor down with it."""

    def run() -> T:
        try:
            return fn()
        except Exception as exc:
            return fallback(f"probe failed: {type(exc).__name__}: {exc}")

    return run


def detect_profile(
    python: Optional[str] = None,
    deep: bool = False,
    hw: Optional[hwmod.Hardware] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Profile:
    """Probe this machine. ``python`` is the target interpreter (default: this one)."""
    from envsetup.detect.cpu import probe_cpu
    from envsetup.detect.cuda import probe_cuda
    from envsetup.detect.nvidia import probe_nvidia, probe_other
    from envsetup.detect.system import probe_system
    from envsetup.detect.target import probe_target
    from envsetup.detect.toolchain import probe_toolchain
    from envsetup.target import resolve_python

    target = resolve_python(python)  # a bad --python is the user's error: let it raise
    env = dict(os.environ) if env is None else env
    hardware = hw if hw is not None else hwmod.default()

    with ThreadPoolExecutor(max_workers=4) as pool:
        fut_target = pool.submit(probe_target, target, deep, env)
        fut_nvidia: Future[Nvidia] = pool.submit(
            _safe(lambda: probe_nvidia(hardware, env), lambda r: Nvidia(unknown={"probe": r}))
        )
        fut_tools: Future[Toolchain] = pool.submit(
            _safe(lambda: probe_toolchain(env), lambda r: Toolchain(unknown={"probe": r}))
        )
        system = _safe(probe_system, lambda r: System(unknown={"probe": r}))()
        cpu = _safe(probe_cpu, lambda r: Cpu(unknown={"probe": r}))()
        other = _safe(
            lambda: probe_other(hardware, system.os, system.arch, system.macos_version),
            lambda r: OtherAccelerators(),
        )()
        py, torch = fut_target.result()
        cuda = _safe(
            lambda: probe_cuda(env, torch.packages, system.wsl),
            lambda r: Cuda(unknown={"probe": r}),
        )()
        nvidia = fut_nvidia.result()
        toolchain = fut_tools.result()

    return Profile(
        envsetup_version=__version__,
        system=system,
        python=py,
        cpu=cpu,
        nvidia=nvidia,
        other=other,
        cuda=cuda,
        torch=torch,
        toolchain=toolchain,
    )


def replace(obj: Any, **changes: Any) -> Any:
    return dataclasses.replace(obj, **changes)
