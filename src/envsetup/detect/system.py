"""OS, distribution, architecture, libc, WSL and containers."""

from __future__ import annotations

import os
import platform
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from envsetup.profile import System


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release`` (shell-style KEY=value lines) → dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("\"'")]
        out[key.strip()] = parts[0] if parts else ""
    return out


def detect_wsl(proc_version: Optional[str], env: Mapping[str, str]) -> Optional[str]:
    """WSL 2 kernels say "microsoft-standard-WSL2"; WSL 1 says "Microsoft" in /proc/version."""
    text = proc_version or ""
    if "microsoft" not in text.lower():
        return None
    if "WSL2" in text or "microsoft-standard" in text or env.get("WSL_INTEROP"):
        return "wsl2"
    return "wsl1"


def detect_container(root: Path, env: Mapping[str, str]) -> Optional[str]:
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if (root / "run/.containerenv").exists():
        return "podman"
    if (root / ".dockerenv").exists():
        return "docker"
    container = env.get("container")  # set by systemd-nspawn, podman, lxc
    if container:
        return container
    try:
        cgroup = (root / "proc/1/cgroup").read_text(errors="replace")
    except OSError:
        cgroup = ""
    for needle, name in (("kubepods", "kubernetes"), ("docker", "docker"), ("lxc", "lxc")):
        if needle in cgroup:
            return name
    return None


def normalise_arch(machine: str, os_name: str) -> str:
    m = machine.lower()
    if m in ("x86_64", "amd64", "x64"):
        return "x86_64"
    if m in ("aarch64", "arm64", "armv8l"):
        return "arm64" if os_name == "darwin" else "aarch64"
    return m


def probe_system(root: Path = Path("/"), env: Optional[Mapping[str, str]] = None) -> System:
    env = os.environ if env is None else env
    unknown: dict[str, str] = {}
    os_name = platform.system().lower()
    fields: dict[str, Optional[str]] = {}
    if os_name == "linux":
        for rel in ("etc/os-release", "usr/lib/os-release"):
            try:
                info = parse_os_release((root / rel).read_text(errors="replace"))
                break
            except OSError:
                continue
        else:
            info = {}
            unknown["distro_id"] = "no /etc/os-release"
        fields["distro_id"] = info.get("ID")
        fields["distro_version"] = info.get("VERSION_ID")
        fields["distro_name"] = info.get("PRETTY_NAME") or info.get("NAME")
        libc, libc_version = platform.libc_ver()
        if not libc and list((root / "lib").glob("ld-musl-*")):
            libc = "musl"
        fields["libc"] = libc or None
        fields["libc_version"] = libc_version or None
        try:
            proc_version: Optional[str] = (root / "proc/version").read_text(errors="replace")
        except OSError:
            proc_version = None
        fields["wsl"] = detect_wsl(proc_version, env)
        fields["container"] = detect_container(root, env)
    elif os_name == "darwin":
        fields["macos_version"] = platform.mac_ver()[0] or None
    elif os_name == "windows":
        fields["windows_build"] = platform.version() or None
    return System(
        os=os_name,
        release=platform.release() or None,
        arch=normalise_arch(platform.machine(), os_name),
        unknown=unknown,
        **fields,
    )
