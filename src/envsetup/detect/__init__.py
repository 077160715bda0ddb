"""Detection: every probe returns its part of the Profile and never raises.

The probes that wait on other programs (the target interpreter, nvcc, the compilers, NVML)
run in threads side by side, so doctor costs about as much as its slowest probe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Optional, TypeVar

from envsetup import __version__
from envsetup.detect import hw as hwmod
from envsetup.detect import pythonpath
from envsetup.errors import EnvsetupError, UsageError
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
    from envsetup.detect.cuda import probe_cuda, with_pip_cudnn
    from envsetup.detect.guard import probe_guard
    from envsetup.detect.nvidia import probe_nvidia, probe_other
    from envsetup.detect.system import probe_system
    from envsetup.detect.target import build, installers, query
    from envsetup.detect.toolchain import probe_toolchain
    from envsetup.target import resolve_python

    target = resolve_python(python)  # a bad --python is the user's error: let it raise
    env = dict(os.environ) if env is None else env
    hardware = hw if hw is not None else hwmod.default()
    system = _safe(probe_system, lambda r: System(unknown={"probe": r}))()

    with ThreadPoolExecutor(max_workers=6) as pool:
        fut_target = pool.submit(query, target, deep)
        fut_tools = pool.submit(installers, env)
        fut_nvidia: Future[Nvidia] = pool.submit(
            _safe(lambda: probe_nvidia(hardware, env), lambda r: Nvidia(unknown={"probe": r}))
        )
        fut_toolchain: Future[Toolchain] = pool.submit(
            _safe(lambda: probe_toolchain(env), lambda r: Toolchain(unknown={"probe": r}))
        )
        fut_cuda: Future[Cuda] = pool.submit(
            _safe(lambda: probe_cuda(env, system.wsl), lambda r: Cuda(unknown={"probe": r}))
        )
        fut_cpu: Future[Cpu] = pool.submit(_safe(probe_cpu, lambda r: Cpu(unknown={"probe": r})))
        other = _safe(
            lambda: probe_other(hardware, system.os, system.arch, system.macos_version),
            lambda r: OtherAccelerators(),
        )()
        try:
            data = fut_target.result()
        except EnvsetupError as exc:
            raise UsageError(
                f"--python {target}: does not run as a Python interpreter ({_short(exc.message)})"
            ) from None
        py, torch = build(data, fut_tools.result())
        guard = probe_guard(py.prefix)
        path_entries, shadowed = pythonpath.shadows(env)
        if path_entries:
            py = replace(py, pythonpath=path_entries, pythonpath_shadows=shadowed)
        cuda = with_pip_cudnn(fut_cuda.result(), torch.packages)
        nvidia, toolchain, cpu = fut_nvidia.result(), fut_toolchain.result(), fut_cpu.result()

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
        guard=guard,
    )


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
