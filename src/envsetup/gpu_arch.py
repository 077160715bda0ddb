"""Which compiled GPU code serves which GPU: the one place for binary-compatibility rules.

NVIDIA (CUDA) is the vendor covered today; a ROCm rule (gfx targets, which have no
cross-target compatibility) belongs beside it as another ``Vendor`` entry, so that callers ask
``runs_on(vendor, targets, gpu)`` and never spell a vendor's rule themselves.

Targets are written as the table writes them (``"8.6"``: SASS for compute capability 8.6) or as
``torch.cuda.get_arch_list()`` does (``"sm_86"``, ``"sm_90a"``, ``"sm_100f"``, ``"compute_90"``).

The CUDA rules, with their sources:

1. SASS ``sm_XY`` (a cubin) runs on a GPU of compute capability X.Z with Z >= Y, and on no other
   major. NVIDIA Blackwell Compatibility Guide for CUDA Applications, section 1.2
   (docs.nvidia.com/cuda/blackwell-compatibility-guide): "A cubin generated for a certain compute
   capability is supported to run on any GPU with the same major revision and same or higher
   minor revision of compute capability ... a cubin generated with compute capability 8.x is not
   supported to run on a GPU with compute capability 9.0."
2. Tegra GPUs are the exception: "Binary compatibility is supported only for the desktop. It is
   not supported for Tegra." (CUDA C++ Programming Guide, binary compatibility; quoted and
   measured on Orin in jax-ml/jax#40492: sm_80 SASS gives "no kernel image is available" on
   compute capability 8.7, compute_80 PTX runs). A Tegra GPU runs SASS of its own compute
   capability only. pytorch/pytorch#166185 tabulates the result for torch: "8.0 serves
   >=8.0,<9.0 except 8.7; 10.0 serves >=10.0,<11.0 except 10.1".
3. Jetson Thor is 10.1 up to CUDA 12.9 and 11.0 from CUDA 13.0 (the 10.1a -> 11.0a rename in
   pytorch/pytorch#175029): 10.0 code serves neither (10.1 by rule 2, 11.0 by rule 1).
4. Family-specific SASS ``sm_XYf`` runs on the GPUs of its family: the same major, minor >= Y
   (NVIDIA blog "NVIDIA Blackwell and NVIDIA CUDA 12.9 Introduce Family-Specific Architecture
   Features": sm_100f runs on 10.0 and 10.3, sm_120f on 12.0 and 12.1); for compatibility it is
   rule 1 with rule 2's exceptions.
5. Architecture-specific ``sm_XYa`` runs on compute capability X.Y only (same blog; CUDA C++
   Programming Guide, "architecture-specific feature set ... not guaranteed to be available ...
   on subsequent compute architectures").
6. PTX ``compute_XY`` is JIT-compiled by the driver for any GPU of compute capability >= X.Y,
   Tegra included (rule 2's measurement); ``compute_XYa`` only for X.Y, ``compute_XYf`` for its
   family.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

CC = tuple[int, int]

# Tegra (integrated) GPUs, without binary compatibility across minors (rule 2): TK1, TX1, TX2,
# Xavier, Orin, and Thor under CUDA 12 numbering.
TEGRA: frozenset[CC] = frozenset({(3, 2), (5, 3), (6, 2), (7, 2), (8, 7), (10, 1)})

_TARGET = re.compile(r"^(?:(sm|compute)_(\d+?)(\d)([af]?)|(\d+)\.(\d)([af]?))$")


def parse_cc(text: Optional[str]) -> Optional[CC]:
    """``"8.6"``, ``"sm_86"``, ``"86"``, ``"120"`` -> (8, 6) / (12, 0); None for anything else."""
    if not text:
        return None
    s = text.strip().lower()
    m = re.fullmatch(r"(\d+)\.(\d)", s)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = re.fullmatch(r"(?:sm_|compute_)?(\d+?)(\d)[af]?", s)
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


def sm(cc: str) -> str:
    """``"8.6"`` -> ``"sm_86"`` (names the way torch.cuda.get_arch_list() does)."""
    c = parse_cc(cc)
    return f"sm_{c[0]}{c[1]}" if c else cc


@dataclass(frozen=True)
class Target:
    """One compiled target of a build: SASS or PTX, for a compute capability, plain or a/f."""

    code: str  # "sass" | "ptx"
    cc: CC
    suffix: str = ""  # "" | "a" (architecture-specific) | "f" (family-specific)

    def serves(self, gpu: CC) -> bool:
        if self.suffix == "a":
            return gpu == self.cc  # rule 5
        if self.code == "ptx" and not self.suffix:
            return gpu >= self.cc  # rule 6
        # SASS (plain or family) and family PTX: same major, same or higher minor (rules 1, 4)
        if gpu[0] != self.cc[0] or gpu[1] < self.cc[1]:
            return False
        return self.code == "ptx" or gpu not in TEGRA or gpu == self.cc  # rule 2


def parse_target(text: str) -> Optional[Target]:
    """A Target from ``"8.6"``, ``"sm_86"``, ``"sm_90a"``, ``"sm_100f"``, ``"compute_90"``."""
    m = _TARGET.match(text.strip().lower())
    if not m:
        return None
    if m.group(1):
        code = "ptx" if m.group(1) == "compute" else "sass"
        return Target(code, (int(m.group(2)), int(m.group(3))), m.group(4))
    return Target("sass", (int(m.group(5)), int(m.group(6))), m.group(7))


def how_it_runs(targets: Iterable[str], cc: str) -> Optional[str]:
    """``"sass"`` when a target has kernels for compute capability ``cc``, ``"ptx"`` when only
    PTX serves it (JIT-compiled at first use), None when nothing does (CUDA's "no kernel image
    is available for execution on the device")."""
    gpu = parse_cc(cc)
    if gpu is None:
        return None
    ptx = False
    for t in filter(None, map(parse_target, targets)):
        if t.serves(gpu):
            if t.code == "sass":
                return "sass"
            ptx = True
    return "ptx" if ptx else None


def has_kernels(targets: Iterable[str], cc: str) -> bool:
    """Whether a build with these targets runs on compute capability ``cc`` (SASS or PTX)."""
    return how_it_runs(targets, cc) is not None


def ptx_target(cc: str) -> str:
    """The PTX spelling of a table's ``ptx`` field (``"12.0"`` -> ``"compute_120"``)."""
    c = parse_cc(cc)
    return f"compute_{c[0]}{c[1]}" if c else cc


# Vendors whose compiled-target rules are known here. ROCm's (gfx targets run only on their own
# gfx architecture, with generic targets such as gfx9-generic) is the next to sit beside CUDA.
VENDORS = ("cuda",)


def runs_on(vendor: str, targets: Iterable[str], gpu_arch: str) -> Optional[str]:
    """``how_it_runs`` for a vendor; ``"unchecked"`` for a vendor without rules here yet."""
    if vendor == "cuda":
        return how_it_runs(targets, gpu_arch)
    return "unchecked"
