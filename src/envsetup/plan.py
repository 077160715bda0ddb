"""The Request a user makes and the Plan the resolver returns: the contract between
``resolve`` (which builds a Plan) and ``install`` / ``verify`` (which carry it out and check it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Optional

from envsetup.profile import from_dict, to_dict

PLAN_SCHEMA_VERSION = 1
PYTORCH_INDEX = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class Request:
    torch: Optional[str] = None  # a version spec: "2.4", "2.4.1", ">=2.3,<2.6"; None = newest
    variant: str = "auto"  # auto | cpu | cu121 | rocm6.1 | default (the plain package-index build)
    vision: bool = False
    audio: bool = False
    index_base: str = PYTORCH_INDEX  # mirrors keeping the PyTorch index layout override it


@dataclass(frozen=True)
class Pin:
    name: str  # torch | torchvision | torchaudio
    version: str  # public version, "2.4.1" (the index's local version is in Plan.local_version)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Candidate:
    """One (torch version, variant) the resolver looked at, and its verdict."""

    torch: str
    variant: str  # the value --variant takes: "cu126" | "cpu" | "rocm6.1" | "default"
    accepted: bool
    reasons: tuple[str, ...] = ()
    same_as: Optional[str] = None  # the PyTorch-index variant a "default" build matches: "cu130"

    @property
    def label(self) -> str:
        """What to show: "cu126", or "default (cu130)" for the package-index build."""
        if self.variant == "default" and self.same_as and self.same_as != "default":
            return f"default ({self.same_as})"
        return self.variant


@dataclass(frozen=True)
class Refused:
    """Refused candidates that share one reason: "32 CUDA builds: no NVIDIA GPU with a driver"."""

    reason: str
    count: int
    kind: str  # "CUDA" | "ROCm" | "CPU" | "MPS" | "" (builds of several kinds)
    torch: str  # the torch versions concerned, "2.9.0 - 2.15.0" or "2.4.1"

    def __str__(self) -> str:
        what = f"{self.kind} build" if self.kind else "build"
        return f"{self.count} {what}{'s' if self.count != 1 else ''} of torch {self.torch}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    torch: str  # "2.4.1"
    variant: str  # "cu121" | "cpu" | "rocm6.1" | "default"
    pins: tuple[Pin, ...]  # torch first, then torchvision / torchaudio
    index_url: Optional[str]  # full index, e.g. https://download.pytorch.org/whl/cu121;
    #                           None: the installer's default package index
    platform: str  # linux_x86_64 | linux_aarch64 | windows_x86_64 | macos_arm64 | macos_x86_64
    python: str  # "3.11", "3.13t": the wheel tag the build needs
    local_version: Optional[str] = None  # what torch.__version__ will say, "2.4.1+cu121"
    cuda: Optional[str] = None  # torch.version.cuda of the build, "12.1"; None for CPU/ROCm/MPS
    rocm: Optional[str] = None
    cudnn: Optional[str] = None
    arch: tuple[str, ...] = ()  # compute capabilities the build has kernels for
    why: tuple[str, ...] = ()  # the reasons for this pick, in words
    candidates: tuple[Candidate, ...] = ()
    warnings: tuple[str, ...] = ()
    python_version: Optional[str] = None  # the machine's full version, "3.14.1"
    refused: tuple[Refused, ...] = ()  # the refused candidates, grouped by reason
    schema_version: int = PLAN_SCHEMA_VERSION

    def requirements(self) -> list[str]:
        return [str(p) for p in self.pins]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = to_dict(self)
        d["requirements"] = self.requirements()
        return d

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "requirements"}
            if isinstance(data.get("candidates"), list):
                data["candidates"] = [_old_candidate(c) for c in data["candidates"]]
        return from_dict(cls, data)


_OLD_DEFAULT = re.compile(r"^default \((\S+)\)$")


def _old_candidate(data: Any) -> Any:
    """Plans written before ``same_as`` carried the label as the variant: "default (cu130)"."""
    if isinstance(data, dict) and "same_as" not in data and isinstance(data.get("variant"), str):
        m = _OLD_DEFAULT.match(data["variant"])
        if m:
            return {**data, "variant": "default", "same_as": m.group(1)}
    return data


def read_plan_file(path: str, flag: str) -> Plan:
    """A plan from a file: ``plan --json`` output, ``install --json`` output, or a bare Plan.
    Anything else is the user's error, named with the flag that gave the path."""
    from envsetup import jsonfile
    from envsetup.errors import UsageError

    data = jsonfile.read(path, flag, max_bytes=4 << 20, hint="make one with envsetup plan --json")
    if isinstance(data, dict) and isinstance(data.get("plan"), dict):
        data = data["plan"]  # `plan --json` and `install --json` wrap it
    try:
        plan = Plan.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"{flag} {path}: not a plan ({exc}); make one with envsetup plan --json"
        ) from None
    if plan.index_url and "***@" in plan.index_url:  # plan --json masks the credentials
        from envsetup.secrets import unmask

        plan = replace(plan, index_url=unmask(plan.index_url))
    return plan
